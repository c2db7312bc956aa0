import ArgumentParser
import Core
import Foundation
import Logging

@main
struct Cairn: AsyncParsableCommand {
    static func main() async {
        // The daemon runs its tasks on Cairn's own pool, first thing (before
        // any task starts a libdispatch worker): an idle daemon then sleeps
        // with no wake-ups (CooperativePool). CAIRN_EXECUTOR=dispatch keeps
        // libdispatch's pool, for comparison or if a problem is suspected.
        if CommandLine.arguments.dropFirst().first == "serve",
           ProcessInfo.processInfo.environment["CAIRN_EXECUTOR"] != "dispatch" {
            CooperativePool.installAsGlobalExecutor()
        }
        MemoryTuning.apply()
        _ = ProcessSignals.ignoreSIGPIPE
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // ArgumentParser exits 64 (EX_USAGE) for bad arguments; Cairn's
            // usage status is 2, like every other usage error (README).
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ErrorCode.usage.exitStatus)
            }
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "Keeps a platform's data safe: encrypted PostgreSQL backups, retention, restore verification and uploads migration to S3-compatible storage.",
        version: CairnVersion.current,
        subcommands: [VersionCommand.self, ServeCommand.self, RunCommand.self, MigrateCommand.self, BackupsCommand.self, RestoreCommand.self, KeyCommand.self, ConfigCommand.self, StorageCommand.self, CronCommand.self, NextCommand.self, StatusCommand.self, HistoryCommand.self, VerifyCommand.self, AlertCommand.self]
    )
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["CAIRN_LOG_LEVEL"] ?? "warning"
    @Option(name: .long, help: "Log line format: logfmt (default) or json. Under systemd, lines carry a journal priority prefix and no timestamp.")
    var logFormat: String = ProcessInfo.processInfo.environment["CAIRN_LOG_FORMAT"] ?? "logfmt"

    func bootstrap() throws {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard let format = LogFormat(rawValue: logFormat.lowercased()) else {
            throw ValidationError("--log-format must be logfmt or json")
        }
        LogSetup.bootstrap(level: level, format: format)
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print Cairn's version.")
    func run() { print("cairn \(CairnVersion.current)") }
}

/// Runs a command body, turning a CairnError into a one-line message on
/// stderr and the exit status of its code (ErrorCode.exitStatus).
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as CairnError {
        FileHandle.standardError.write(Data("cairn: error: \(e.description)\n".utf8))
        throw ExitCode(e.code.exitStatus)
    } catch is CancellationError {
        FileHandle.standardError.write(Data("cairn: cancelled\n".utf8))
        throw ExitCode(ErrorCode.cancelled.exitStatus)
    }
}
