import Config
import Core
import Crypto
import Foundation
import Logging
import ObjectStore

/// A retention unit's run, as `JobRunner.run` calls it: resolves the backup
/// job's store and prefix, runs `RetentionJob`, logs the plan and turns a
/// refusal or undeletable objects into the run's error.
public enum RetentionRun {
    /// The `RetentionJob` for a retention unit (also used by `cairn backups prune --dry-run`).
    public static func job(_ job: JobConfig, spec: RetentionSpec, config: CairnConfig,
                           env: [String: String] = ProcessInfo.processInfo.environment,
                           now: @escaping @Sendable () -> Date = { Date() }) throws -> RetentionJob {
        guard let backupJob = config.jobs[spec.backupJob] else {
            throw CairnError(.config, "retention job \(job.name): no job named '\(spec.backupJob)'")
        }
        guard let backup = backupJob.backup else {
            throw CairnError(.config, "retention job \(job.name): job '\(spec.backupJob)' is a \(backupJob.kind.rawValue) job; expected a backup job")
        }
        let storage = try Resources.storage(named: job.storage.isEmpty ? backupJob.storage : job.storage, in: config)
        let store = try Resources.store(storage, env: env)
        // Manifest MACs are checked when the keys are at hand; retention does not need them.
        let keyring = try? Resources.keyring(config.keys, env: env, requireActive: false)
        return RetentionJob(job: job.name, backupJob: spec.backupJob, prefix: backup.prefix, store: store, keyring: keyring,
                            rules: spec, timeZone: job.timeZone, dryRun: spec.dryRun, now: now)
    }

    /// Runs a retention unit. The summary line gives the kept and deleted counts.
    public static func run(job: JobConfig, spec: RetentionSpec, config: CairnConfig, env: [String: String],
                           started: @Sendable (any JobProgress) -> Void) async throws -> JobOutcome {
        let logger = Logger.cairn("retention")
        let progress = RetentionProgress()
        started(progress)
        let report = try await Self.job(job, spec: spec, config: config, env: env).run()
        try check(report, logger: logger)
        return JobOutcome(summary: report.summary)
    }

    /// Logs the plan (every line of the table when it is a dry run) and
    /// throws for a refused plan or objects the store would not delete.
    public static func check(_ report: PruneReport, logger: Logger = Logger.cairn("retention")) throws {
        if report.dryRun {
            for line in report.table().split(separator: "\n") { logger.info("\(line)", metadata: ["job": "\(report.job)"]) }
        }
        if let refusal = report.plan.refusal {
            throw CairnError(.notFound, "retention of \(report.backupJob) (\(report.location)): \(refusal)", cause: refusal)
        }
        if let first = report.failures.first {
            let listed = report.failures.prefix(10).map { "\($0.key) (\($0.code))" }.joined(separator: ", ")
            let more = report.failures.count > 10 ? " and \(report.failures.count - 10) more" : ""
            throw CairnError(first.errorCode, "retention of \(report.backupJob): \(report.failures.count) object(s) could not be deleted (Object Lock retention or permissions; their backups are kept): \(listed)\(more); \(report.summary)")
        }
    }
}

/// A retention run's progress line.
final class RetentionProgress: JobProgress {
    var line: String { "planning and deleting" }
    var fields: [String: String] { [:] }
}
