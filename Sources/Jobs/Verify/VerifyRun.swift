import Config
import Core
import Foundation
import State

/// A verify unit, run by `JobRunner`: resolves the backup job's store,
/// prefix and keys, runs `VerifyJob`, and reports restore time (RTO) and the
/// newest verified backup's age (RPO) in the outcome's summary.
public enum VerifyRun {
    public static func run(job: JobConfig, spec: VerifySpec, config: CairnConfig, env: [String: String], state: StateStore?,
                           started: @Sendable (any JobProgress) -> Void) async throws -> JobOutcome {
        guard let backup = config.jobs[spec.backupJob]?.backup else {
            throw CairnError(.config, "verify job \(job.name): backup_job '\(spec.backupJob)' is not a backup job in \(config.jobsDir)")
        }
        let storage = try Resources.storage(named: job.storage, in: config)
        let store = try Resources.store(storage, env: env)
        let keyring = try Resources.keyring(config.keys, env: env, requireActive: false)
        let report = try await withoutActuallyEscaping(started) { started in
            var verify = VerifyJob(name: job.name, spec: spec, prefix: backup.prefix, store: store, keyring: keyring, stateDir: config.stateDir)
            verify.started = { started($0) }
            verify.state = state
            return try await verify.run()
        }
        return JobOutcome(backupID: report.record?.backupID, summary: report.summary)
    }
}

