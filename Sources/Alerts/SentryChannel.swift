import Config
import Core
import Crypto
import Foundation
import HTTP

/// An event in Sentry through the store endpoint of the DSN's project.
struct SentryChannel: AlertChannel {
    let name: String
    let config: AlertChannelKind.SentryChannel
    let http: ChannelHTTP
    let secrets: SecretReader
    let clock: @Sendable () -> Date
    var typeName: String { "sentry" }

    static var client: String { "cairn/\(CairnVersion.current)" }

    /// The event: event_id (32 hex), timestamp, level, logger, platform,
    /// server_name, release `cairn@VERSION`, environment, message, tags
    /// (job, host, event), extra (log_tail, since, last_success, run,
    /// command), fingerprint (job and event, so one job's failures group together).
    static func event(_ m: AlertMessage, eventID: String, environment: String?, now: Date) -> Data {
        var extra: [String: Any] = ["command": m.command, "what": m.what]
        if let t = m.logTail { extra["log_tail"] = t }
        if let s = m.since { extra["since"] = AlertRenderer.rfc3339(s) }
        if let l = m.lastSuccess { extra["last_success"] = AlertRenderer.rfc3339(l) }
        if let r = m.runID { extra["run"] = NSNumber(value: r) }
        var o: [String: Any] = [
            "event_id": eventID,
            "timestamp": AlertRenderer.rfc3339(now),
            "level": m.event.isProblem ? "error" : "info",
            "logger": "cairn",
            "platform": "other",
            "server_name": m.host,
            "release": "cairn@\(CairnVersion.current)",
            "message": ["formatted": AlertRenderer.subject(m)],
            "tags": ["job": m.job, "host": m.host, "event": m.event.rawValue],
            "extra": extra,
            "fingerprint": ["cairn", m.job, m.event.rawValue],
        ]
        if let environment { o["environment"] = environment }
        return ChannelHTTP.json(o)
    }

    func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult {
        let text: String
        do { text = try await secrets.read(config.dsnFile, key: "dsn_file") } catch {
            return DeliveryResult.from(channel: name, error: error)
        }
        guard let dsn = SentryDSN(text) else {
            return DeliveryResult(channel: name, delivered: false,
                                  error: "dsn_file of alert channel '\(name)' does not hold a DSN like https://KEY@HOST/PROJECT_ID")
        }
        let id = ((try? SecureRandom.bytes(16)) ?? Data(UUID().uuidString.utf8).prefix(16)).hexString
        let body = Self.event(message, eventID: id, environment: config.environment, now: clock())
        let req = HTTPRequest(method: "POST", url: dsn.storeURL,
                              headers: ["Content-Type": "application/json", "X-Sentry-Auth": dsn.authHeader(client: Self.client)],
                              body: .data(body))
        return await http.deliver(req, channel: name, what: "POST \(req.redactedURL)")
    }
}
