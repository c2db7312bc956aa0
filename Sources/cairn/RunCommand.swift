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
            // One run of a job at a time on this host (shared with the daemon), recorded in the history.
            let lock = try JobLock(stateDir: config.stateDir, job: job.name)
            // With [cluster], also the job's lock in the lock database: no node runs it meanwhile.
            var cluster: (ClusterCoordinator, ClusterClaim)?
            if let c = config.cluster {
                let coordinator = ClusterCoordinator(config: c)
                try await coordinator.prepare()
                switch try await coordinator.claimManual(job: job.name) {
                case .claimed(let claim): cluster = (coordinator, claim)
                case .runningElsewhere(let node), .alreadyRan(let node as String?):
                    throw CairnError(.busy, "job \(job.name) is running on cluster node \(node ?? "?")")
                }
            }
            // A run that cannot be recorded does not start: the state error (with its SQLite cause) is the answer.
            let state: StateStore, runID: Int64
            do {
                state = try StateStore(stateDir: config.stateDir)
                runID = try state.start(job: job.name, trigger: "manual")
            } catch {
                if let (c, claim) = cluster { await c.finish(claim, result: "failed", error: historyText(error)) }
                throw error
            }
            try await finishRun(job, runID, state: state, config: config, cluster: cluster)
            withExtendedLifetime(lock) {}
        }
    }

    /// Runs the job and records its end. The job's outcome is reported
    /// first; when its end cannot be recorded, the state error follows it,
    /// and decides the exit status (a run that is not in the history is not
    /// reported as a success).
    func finishRun(_ job: JobConfig, _ runID: Int64, state: StateStore, config: CairnConfig,
                   cluster: (ClusterCoordinator, ClusterClaim)?) async throws {
        let name = job.name
        let outcome: Result<(Int64?, String?), any Error>
        do { outcome = .success(try await runJob(job, config: config)) } catch { outcome = .failure(error) }
        switch outcome {
        case .success(let (bytes, backupID)):
            if let (c, claim) = cluster { await c.finish(claim, result: "ok", error: nil) }
            try recordRunEnd(state, runID: runID, job: name, error: nil, bytes: bytes, backupID: backupID)
        case .failure(let error):
            let cancelled = error is CancellationError || (error as? CairnError)?.code == .cancelled
            if let (c, claim) = cluster { await c.finish(claim, result: cancelled ? "cancelled" : "failed", error: historyText(error)) }
            try recordRunEnd(state, runID: runID, job: name, error: error)
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

    /// Runs the job in this process, with a progress line on a TTY.
    func runJob(_ job: JobConfig, config: CairnConfig) async throws -> (Int64?, String?) {
        let reporter = ProgressReporter(job: job.name)
        defer { reporter.stop() }
        let outcome = try await withSignalCancellation {
            try await JobRunner(config: config).run(job) { reporter.start($0) }
        }
        reporter.stop()
        print(outcome.summary)
        return (outcome.bytes, outcome.backupID)
    }
}

