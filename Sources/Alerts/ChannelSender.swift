import Config
import Foundation

/// The queue's sender over the configured channels (`AlertChannels`): a
/// decided alert becomes an `AlertMessage` rendered per channel; a run's
/// start and end become pings of the ping channels.
public struct ChannelSender: AlertSender {
    let channels: [String: any AlertChannel]
    public let pingChannels: Set<String>

    public init(_ config: AlertsConfig, env: [String: String] = ProcessInfo.processInfo.environment) {
        let channels = AlertChannels.make(config, env: env)
        self.channels = channels
        self.pingChannels = Set(channels.filter { $0.value is PingChannel }.keys)
    }

    public func send(_ event: AlertEvent, host: String, channel: String, recipients: [String]?) async -> DeliveryAttempt {
        guard let c = channels[channel] else {
            return DeliveryAttempt(delivered: false, retryable: false, detail: "no alert channel named '\(channel)' in the configuration now")
        }
        let result: DeliveryResult
        if let ping = c as? PingChannel {
            switch event.kind {
            case .started: result = await ping.ping(.start)
            case .succeeded, .recovered: result = await ping.ping(.success)
            default: result = await ping.ping(.failure(event.what + (event.logTail.map { "\n\n" + $0 } ?? "")))
            }
        } else {
            guard let message = Self.message(event, host: host) else {
                return DeliveryAttempt(delivered: true, retryable: false, detail: "nothing to send for \(event.kind.rawValue)")
            }
            result = await c.send(message, recipients: recipients)
        }
        return DeliveryAttempt(delivered: result.delivered, retryable: result.retryable, detail: result.description,
                               failedRecipients: result.failedRecipients)
    }

    /// The message of a decided alert (nil for the ping-only kinds).
    static func message(_ e: AlertEvent, host: String) -> AlertMessage? {
        let probe = e.jobKind == "probe"
        let event: AlertMessage.Event
        switch e.kind {
        case .failed: event = probe ? .probeFailed : .failed
        case .recovered: event = probe ? .probeRecovered : .recovered
        case .reminder: event = .reminder
        case .missed: event = .missed
        case .stale: event = .stale
        case .verifyFailed: event = .verifyFailed
        case .retentionRefused: event = .retentionRefused
        case .started, .succeeded: return nil
        }
        return AlertMessage(event: event, job: e.job, host: host, what: e.what, since: e.since, lastSuccess: e.lastSuccess,
                            command: e.command, logTail: e.logTail, runID: e.runID, time: e.at)
    }
}
