import Foundation

/// What an alert says: one value, rendered per channel by `AlertRenderer`.
/// `Codable`, so a delivery queue can keep it as JSON.
public struct AlertMessage: Sendable, Equatable, Codable {
    public enum Event: String, Sendable, Codable, CaseIterable {
        case failed, recovered, reminder, missed, stale
        case verifyFailed = "verify_failed"
        case retentionRefused = "retention_refused"
        case probeFailed = "probe_failed"
        case probeRecovered = "probe_recovered"
        case test

        /// Short upper-case label used in subjects and SMS.
        public var label: String {
            switch self {
            case .failed: return "FAILED"
            case .recovered: return "RECOVERED"
            case .reminder: return "STILL FAILING"
            case .missed: return "MISSED"
            case .stale: return "STALE"
            case .verifyFailed: return "VERIFY FAILED"
            case .retentionRefused: return "RETENTION REFUSED"
            case .probeFailed: return "DOWN"
            case .probeRecovered: return "UP"
            case .test: return "TEST"
            }
        }

        /// Good news (a recovery) or a test, rather than a problem.
        public var isProblem: Bool { !(self == .recovered || self == .probeRecovered || self == .test) }
    }

    public var event: Event
    public var job: String
    public var host: String
    /// What happened, in one line (the error of the run, "no run started at 02:30", ...).
    public var what: String
    /// Since when the job has been failing.
    public var since: Date?
    public var lastSuccess: Date?
    /// The command that shows more, such as `cairn history JOB`.
    public var command: String
    public var logTail: String?
    public var runID: Int64?
    /// When the event happened.
    public var time: Date

    public init(event: Event, job: String, host: String, what: String, since: Date? = nil, lastSuccess: Date? = nil,
                command: String? = nil, logTail: String? = nil, runID: Int64? = nil, time: Date) {
        self.event = event
        self.job = job
        self.host = host
        self.what = what
        self.since = since
        self.lastSuccess = lastSuccess
        self.command = command ?? "cairn history \(job)"
        self.logTail = logTail
        self.runID = runID
        self.time = time
    }

    /// The message `cairn alert test CHANNEL` sends.
    public static func test(channel: String, host: String, time: Date) -> AlertMessage {
        AlertMessage(event: .test, job: "alert-test", host: host,
                     what: "test message for alert channel \(channel)", command: "cairn alert test \(channel)", time: time)
    }
}
