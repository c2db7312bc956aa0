import ArgumentParser
import Config
import Core
import Foundation
import Jobs
import Logging
import ObjectStore
import Postgres
import Scheduler
import State

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job now: through the running daemon, or in this process when none runs.",
        discussion: """
        With `cairn serve` running, the daemon runs the job (recorded, subject to the job's
        overlap rule) and `cairn run` returns at once; `--wait` follows the run's progress and
        exits with its result. With no daemon (or with --key-file, whose keys only this process has), the job runs in this process under the same
        per-job lock the daemon uses, so a manual run and a scheduled run never overlap.
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Job name (a file in the jobs directory, without .toml).") var job: String
    @Flag(help: "With a daemon running: wait for the run to end and exit with its result.") var wait = false
    @Flag(help: "Run in this process even when a daemon is running (still under the job's lock).") var local = false

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let config = try options.load()
            let job = try options.job(job, in: config)
            // --key-file keys exist only in this process: such a run is local.
            if !local, options.keyFiles.isEmpty, let conn = try ControlClient.connectIfRunning(path: config.daemon.socketPath(stateDir: config.stateDir)) {
                try await runThroughDaemon(conn)
                return
            }
            try await LocalJobRun(config: config).run(job)
        }
    }

    /// Asks the daemon to run the job; with --wait follows it to its end.
    func runThroughDaemon(_ conn: ControlConnection) async throws {
        defer { conn.close() }
        guard await conn.send(ControlMessage(op: "run", job: job, wait: wait)) else {
            throw CairnError(.io, "lost the connection to cairn serve")
        }
        guard let reply = try await conn.receive() else { throw CairnError(.io, "cairn serve closed the connection without answering") }
        switch reply.type {
        case "accepted":
            print("cairn serve started run \(reply.run ?? 0) of \(job)" + (wait ? "" : " (follow it with `cairn status`, or use --wait)"))
        case "queued":
            print("\(job) is running; cairn serve queued run \(reply.run ?? 0) to start when it ends")
        default:
            throw CairnError(ErrorCode(rawValue: reply.code ?? "") ?? .busy, reply.error ?? "cairn serve refused the run")
        }
        guard wait else { return }
        let tty = isatty(2) == 1
        var progressShown = false
        while let m = try await conn.receive() {
            switch m.type {
            case "started":
                if (m.attempt ?? 1) > 1 { FileHandle.standardError.write(Data("attempt \(m.attempt!) of \(job) started\n".utf8)) }
            case "progress":
                if tty {
                    FileHandle.standardError.write(Data("\r  \(m.line ?? "")   ".utf8))
                    progressShown = true
                }
            case "retry":
                if progressShown { FileHandle.standardError.write(Data("\n".utf8)); progressShown = false }
                FileHandle.standardError.write(Data("run failed; attempt \(m.attempt ?? 0) at \(m.at.map(utc) ?? "?") UTC\n".utf8))
            case "finished":
                if progressShown { FileHandle.standardError.write(Data("\n".utf8)) }
                if m.result == "ok" {
                    print(m.summary ?? "\(job): ok")
                    // Succeeded, but the daemon could not record it: its state error decides the status.
                    if let code = m.code { throw CairnError(ErrorCode(rawValue: code) ?? .io, m.error ?? "run \(m.run ?? 0) of \(job) is not in the history") }
                    return
                }
                throw CairnError(ErrorCode(rawValue: m.code ?? "") ?? .internal, "run \(m.run ?? 0) of \(job) \(m.result ?? "failed"): \(m.error ?? "no error text")")
            default:
                continue
            }
        }
        throw CairnError(.io, "lost the connection to cairn serve before run of \(job) ended (it goes on in the daemon; see `cairn history \(job)`)")
    }
}
