import Config
import Foundation
import State

/// The figures an operator (or Prometheus) watches per job, computed from
/// the state database: `cairn status --json` and the metrics file carry the
/// same values.
public struct JobFigures: Sendable, Codable, Equatable {
    public var job: String
    public var kind: String
    /// ok, failed, cancelled; nil: never ran.
    public var lastResult: String?
    public var lastRunAt: Date?
    public var lastDurationSeconds: Double?
    public var lastBytes: Int64?
    public var lastAttempt: Int?
    public var lastSuccessAt: Date?
    /// Backup jobs: the age of the newest successful backup (its run's start).
    public var newestBackupAgeSeconds: Double?
    /// Backup jobs: the age of the newest backup that a verification restored and proved (RPO proof);
    /// verify jobs: the same for their backup job.
    public var newestVerifiedBackupAgeSeconds: Double?
    /// Verify jobs: how long the last verification's restore took (the measured RTO).
    public var lastRestoreSeconds: Double?
    /// Probe jobs: the last request's latency.
    public var probeLatencySeconds: Double?

    public init(job: String, kind: String) { self.job = job; self.kind = kind }

    /// Figures of every configured job at `now`.
    public static func collect(_ config: CairnConfig, state: StateStore, now: Date = Date()) throws -> [JobFigures] {
        let latest = try state.latestRuns()
        let successes = try state.lastSuccesses()
        return config.sortedJobs.map { job in
            var f = JobFigures(job: job.name, kind: job.kind.rawValue)
            if let r = latest[job.name] {
                f.lastResult = r.result.rawValue
                f.lastRunAt = r.startedAt
                f.lastDurationSeconds = r.duration
                f.lastBytes = r.bytes
                f.lastAttempt = r.attempt
                if job.kind == .probe { f.probeLatencySeconds = r.latency }
            }
            if let ok = successes[job.name] {
                f.lastSuccessAt = ok.finishedAt ?? ok.startedAt
                if job.kind == .backup { f.newestBackupAgeSeconds = max(0, now.timeIntervalSince(ok.startedAt)) }
            }
            // Verification: the newest backup a restore proved (RPO proof), and the last restore's time (RTO).
            let backupJob: String? = job.verify?.backupJob ?? (job.kind == .backup ? job.name : nil)
            if let backupJob, let rows = try? state.verifications(backupJob: backupJob, limit: 200) {
                let proved = rows.filter(\.ok).compactMap { BackupLayout.startTime(ofID: $0.backupID) }.max()
                f.newestVerifiedBackupAgeSeconds = proved.map { max(0, now.timeIntervalSince($0)) }
                if job.kind == .verify {
                    f.lastRestoreSeconds = rows.filter { $0.verifyJob == job.name }.max { $0.verifiedAt < $1.verifiedAt }?.restoreSeconds
                }
            }
            return f
        }
    }
}
