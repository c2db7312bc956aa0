import Foundation

/// How one delivery attempt went.
public struct DeliveryAttempt: Sendable, Equatable {
    public var delivered: Bool
    /// Worth trying again later (5xx, 429, a network error); false for an answer that will not change (4xx, bad config).
    public var retryable: Bool
    /// The receiver's answer or the error, one line ("201 Created {\"sid\": …}", "connection refused").
    public var detail: String
    /// Recipients the channel could not reach when others got it (an SMS to two numbers, one refused):
    /// a retry goes to these only, so nobody gets the same message twice.
    public var failedRecipients: [String]

    public init(delivered: Bool, retryable: Bool, detail: String, failedRecipients: [String] = []) {
        self.delivered = delivered; self.retryable = retryable; self.detail = detail; self.failedRecipients = failedRecipients
    }
}

/// Sends an event through a configured channel (webhook, Slack, email,
/// Termii, Twilio, Sentry, ping). Never throws: the attempt says how it went.
public protocol AlertSender: Sendable {
    /// `recipients`: nil = every configured recipient; else only these (a retry after a partial delivery).
    func send(_ event: AlertEvent, host: String, channel: String, recipients: [String]?) async -> DeliveryAttempt
    /// The channels that are pings (dead-man's switches): told of every run's start and end, not only of alerts.
    var pingChannels: Set<String> { get }
}

extension AlertSender {
    public var pingChannels: Set<String> { [] }
}

/// What the queue stores for one delivery.
struct QueuedAlert: Codable, Sendable {
    var event: AlertEvent
    var host: String
    /// After a partial delivery: the recipients still to reach.
    var recipients: [String]?
}
