import Foundation

/// What the alert state machine remembers about one job (kept in SQLite, so
/// a restart neither repeats an alert nor forgets a failure).
public struct AlertJobState: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable { case unknown, ok, failing }
    public var status: Status = .unknown
    /// The first failure of the current failing streak.
    public var failingSince: Date?
    /// The last failure's one line.
    public var lastError: String?
    /// Consecutive failed runs.
    public var failures: Int = 0
    /// The first of the consecutive failures (before `fail_after` flips the status).
    public var firstFailure: Date?
    public var lastSuccess: Date?
    /// The last failed/reminder message sent for this streak.
    public var lastNotified: Date?
    /// The newest success a stale alert was sent for (one alert per stale backup).
    public var staleNotifiedFor: Date?
    /// The latest scheduled instant reported missed (never twice).
    public var missedNotifiedFor: Date?

    public init() {}
}
