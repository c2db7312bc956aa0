import Config
import Core
import Foundation
import Jobs
import Scheduler
import State

/// Runs a job in this process, the way every CLI entry runs one (`cairn run`
/// without a daemon, `cairn verify`, `cairn backups prune`): under the job's
/// lock (and the cluster claim with `[cluster]`), recorded in the history,
/// with a progress line on a TTY and SIGINT/SIGTERM turned into cancellation.
/// Prints the outcome's summary; throws the run's error (its exit status).
struct LocalJobRun {
    let config: CairnConfig

    func run(_ job: JobConfig) async throws {
        // One run of a job at a time on this host (shared with the daemon), recorded in the history.
        let lock = try JobLock(stateDir: config.stateDir, job: job.name)
        defer { withExtendedLifetime(lock) {} }
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
        let outcome: Result<JobOutcome, any Error>
        do { outcome = .success(try await runJob(job)) } catch { outcome = .failure(error) }
        switch outcome {
        case .success(let o):
            if let (c, claim) = cluster { await c.finish(claim, result: "ok", error: nil) }
            try recordRunEnd(state, runID: runID, job: job.name, error: nil, bytes: o.bytes, backupID: o.backupID)
        case .failure(let error):
            let cancelled = error is CancellationError || (error as? CairnError)?.code == .cancelled
            if let (c, claim) = cluster { await c.finish(claim, result: cancelled ? "cancelled" : "failed", error: historyText(error)) }
            try recordRunEnd(state, runID: runID, job: job.name, error: error)
        }
    }

    /// Runs the job in this process, with a progress line on a TTY.
    private func runJob(_ job: JobConfig) async throws -> JobOutcome {
        let reporter = ProgressReporter(job: job.name)
        defer { reporter.stop() }
        let config = self.config
        let outcome = try await withSignalCancellation {
            try await JobRunner(config: config).run(job) { reporter.start($0) }
        }
        reporter.stop()
        print(outcome.summary)
        return outcome
    }
}
