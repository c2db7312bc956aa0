import Foundation

/// Something an operator must hear about, decided by `AlertStateMachine`.
public struct AlertEvent: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// ok → failing (or the first run ever failed).
        case failed
        /// failing → ok.
        case recovered
        /// Still failing `remind_every` after the last message.
        case reminder
        /// A scheduled run did not start (the daemon was down, or the instant was skipped).
        case missed
        /// The newest successful backup is older than `stale_after`.
        case stale
        /// A restore verification failed (a failure of a verify job: the backup may be bad).
        case verifyFailed = "verify_failed"
        /// Retention refused to delete (the newest backup is older than keep_days: backups are failing).
        case retentionRefused = "retention_refused"
        /// A run started (ping channels only: healthchecks' /start).
        case started
        /// A run succeeded (ping channels only; the success ping). A failed
        /// run pings `failed` whatever the state machine decides.
        case succeeded
    }

    public var kind: Kind
    public var job: String
    /// What happened, in one line ("backup failed: pg_dump: connection refused").
    public var what: String
    /// When the job started failing (failed, reminder, recovered), or the missed instant.
    public var since: Date?
    /// The job's last successful run.
    public var lastSuccess: Date?
    /// When the machine decided it.
    public var at: Date
    /// The run that caused it, when one did.
    public var runID: Int64?
    /// The job's kind (backup, verify, retention, migrate, probe), when known.
    public var jobKind: String?
    /// The tail of the run's log (a failed run's), for channels that carry it.
    public var logTail: String?

    public init(kind: Kind, job: String, what: String, since: Date? = nil, lastSuccess: Date? = nil, at: Date, runID: Int64? = nil,
                jobKind: String? = nil) {
        self.kind = kind; self.job = job; self.what = what; self.since = since
        self.lastSuccess = lastSuccess; self.at = at; self.runID = runID; self.jobKind = jobKind
    }

    /// The command that shows more.
    public var command: String { "cairn history \(job)" }
}
