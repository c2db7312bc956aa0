import Config
import Alerts
import Core
import Foundation
import Jobs
import Logging
import Scheduler
import State

/// Runs a job in this process through the one run path (`RunExecutor`: the
/// job's lock, the cluster claim with `[cluster]`, the history, the unit's
/// timeout and retries, observers), the way every CLI entry runs one: `cairn
/// run` without a daemon, `cairn migrate`, `cairn verify`, `cairn backups
/// prune`. A progress line on a TTY; SIGINT/SIGTERM cancel the job, which
/// cleans up and is recorded as cancelled. Prints the job's report and
/// summary; throws the run's error (its exit status).
struct LocalJobRun {
    let config: CairnConfig
    /// How long a run outside the daemon tries to deliver its alerts before it exits.
    static let alertAttempt: Duration = .seconds(5)

    func run(_ job: JobConfig) async throws {
        let config = self.config
        // A run that cannot be recorded does not start: the state error (with its SQLite cause) is the answer.
        let state = try await runBlocking { try StateStore(stateDir: config.stateDir) }
        var claims: (any RunClaims)?
        if let c = config.cluster {
            let coordinator = ClusterCoordinator(config: c)
            try await coordinator.prepare()
            claims = ClusterRunClaims(coordinator)
        }
        var observers: [any RunObserver] = [RunLogObserver(level: .info, failureLevel: .info)]
        // Reads the alert state (SQLite): off the cooperative pool.
        let alerts = try await runBlocking { try AlertSetup.center(config, state: state, env: ProcessInfo.processInfo.environment) }
        if let alerts { observers.append(AlertRunObserver(center: alerts)) }
        if let path = config.metricsFile { observers.append(MetricsObserver(config: config, state: state, path: path)) }
        let executor = RunExecutor(config: config, state: state, claims: claims, observers: observers,
                                   cancelReason: "interrupted by a signal")
        let reporter = ProgressReporter(job: job.name)
        defer { reporter.stop() }
        let r = try await withSignalCancellation {
            await executor.executeWithRetries(job, RunRequest(trigger: "manual"), started: { reporter.start($0) },
                                              report: { text in reporter.stop(); print(text) },
                                              retrying: { r, delay in
                reporter.stop()
                let why = r.error?.message ?? "failed"
                FileHandle.standardError.write(Data("cairn: attempt \(r.request.attempt) of \(job.name) failed: \(why); attempt \(r.request.attempt + 1) of \(job.retries + 1) in \(ConfigUnits.formatDuration(delay))\n".utf8))
            })
        }
        reporter.stop()
        if let alerts {
            // A bounded first attempt at the alerts this run queued; the daemon delivers what is left (its exit status stays the job's).
            await alerts.deliverDue(until: .now + Self.alertAttempt)
        }
        if let o = r.outcome { print(o.summary) }
        if let h = r.historyError {
            // The outcome is printed; the state error decides the status, its message saying how the run ended.
            let ended: String
            switch r.ending {
            case .succeeded: ended = "succeeded" + (r.outcome?.backupID.map { " (backup \($0))" } ?? "")
            case .skipped: ended = "was skipped (\(r.error?.message ?? ""))"
            case .cancelled: ended = "was cancelled (\(r.error?.message ?? ""))"
            case .failed, .timedOut, .busy: ended = "failed (\(r.error?.message ?? ""))"
            }
            throw CairnError(h.code, "run of \(job.name) \(ended), but its end is not in the history: \(h.message)", cause: h.cause)
        }
        if let e = r.error, r.ending != .succeeded { throw e }
    }
}
