import Foundation

/// Why and when a run was asked for: the history row's trigger, scheduled
/// instant and attempt number.
public struct RunRequest: Sendable, Equatable {
    /// "manual", "schedule", "catch-up", …
    public var trigger: String
    public var scheduledAt: Date?
    /// 1 for the first attempt.
    public var attempt: Int

    public init(trigger: String = "manual", scheduledAt: Date? = nil, attempt: Int = 1) {
        self.trigger = trigger; self.scheduledAt = scheduledAt; self.attempt = attempt
    }
}
