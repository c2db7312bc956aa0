import ArgumentParser
import Config
import Core
import Foundation
import Logging
import Scheduler

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the scheduler daemon (what systemd starts).",
        discussion: """
        Checks the whole configuration first (schedules, storages, keys, state directory) and
        refuses to start on any problem. Then runs every enabled job on its schedule, answers
        `cairn run`/`cairn status` on the control socket, reloads on SIGHUP (a broken new
        configuration is reported and the running one kept), and on SIGTERM stops scheduling,
        lets running jobs finish within [daemon] stop_grace_period, cancels them after that,
        and exits 0. Logs go to stderr (the journal under systemd).
        """)
    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["CAIRN_LOG_LEVEL"] ?? "info"

    func validate() throws {
        if !options.keyFiles.isEmpty {
            throw ValidationError("cairn serve reads its keys from cairn.toml only (it re-reads them on reload); --key-file is for one-off commands")
        }
    }

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        LogSetup.bootstrap(level: level)
        try await reportingErrors {
            let daemon = try Daemon(options: Daemon.Options(configPath: options.path))
            try await daemon.run()
        }
    }
}
