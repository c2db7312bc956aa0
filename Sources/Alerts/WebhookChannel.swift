import Config
import Foundation
import HTTP

/// POSTs a signed JSON document (docs/ALERTS.md, "webhook").
struct WebhookChannel: AlertChannel {
    let name: String
    let config: AlertChannelKind.WebhookChannel
    let http: ChannelHTTP
    let secrets: SecretReader
    let clock: @Sendable () -> Date
    var typeName: String { "webhook" }

    /// The JSON body: event, job, host, message, subject, since,
    /// last_success, run, command, log_tail, time, timestamp.
    static func body(_ m: AlertMessage, timestamp: Int64) -> Data {
        var o: [String: Any] = [
            "event": m.event.rawValue, "job": m.job, "host": m.host, "message": m.what,
            "subject": AlertRenderer.subject(m), "command": m.command,
            "time": AlertRenderer.rfc3339(m.time), "timestamp": timestamp,
            "since": m.since.map(AlertRenderer.rfc3339) ?? NSNull(),
            "last_success": m.lastSuccess.map(AlertRenderer.rfc3339) ?? NSNull(),
            "run": m.runID.map { NSNumber(value: $0) } ?? NSNull(),
            "log_tail": m.logTail ?? NSNull(),
        ]
        o["version"] = 1
        return ChannelHTTP.json(o)
    }

    func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult {
        let secret: String
        do { secret = try await secrets.read(config.secretFile, key: "secret_file") } catch {
            return DeliveryResult.from(channel: name, error: error)
        }
        let ts = Int64(clock().timeIntervalSince1970.rounded(.down))
        let body = Self.body(message, timestamp: ts)
        var headers = HTTPHeaders()
        headers["Content-Type"] = "application/json"
        headers[WebhookSignature.timestampHeader] = String(ts)
        headers[WebhookSignature.signatureHeader] = WebhookSignature.sign(body: body, key: WebhookSignature.key(fromSecret: secret))
        let req = HTTPRequest(method: "POST", url: config.url, headers: headers, body: .data(body))
        return await http.deliver(req, channel: name, what: "POST \(req.redactedURL)")
    }
}

/// POSTs `{"text": …}` to a Slack incoming webhook (its URL is the secret).
struct SlackChannel: AlertChannel {
    let name: String
    let config: AlertChannelKind.SlackChannel
    let http: ChannelHTTP
    let secrets: SecretReader
    var typeName: String { "slack" }

    static func body(_ m: AlertMessage) -> Data {
        var text = "*\(AlertRenderer.subject(m))*\n" + AlertRenderer.text(m)
        if text.count > 3500 { text = String(text.prefix(3500)) + "\n..." }
        return ChannelHTTP.json(["text": text])
    }

    func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult {
        let url: String
        do { url = try await secrets.read(config.urlFile, key: "url_file") } catch {
            return DeliveryResult.from(channel: name, error: error)
        }
        guard let u = URL(string: url), u.scheme == "https" || u.scheme == "http", u.host != nil else {
            return DeliveryResult(channel: name, delivered: false, error: "url_file of alert channel '\(name)' does not hold an http(s) URL")
        }
        let req = HTTPRequest(method: "POST", url: url, headers: ["Content-Type": "application/json"], body: .data(Self.body(message)))
        // The URL is the secret: never show it, not even without its query.
        var result = await http.deliver(req, channel: name, what: "POST to the Slack webhook")
        result.error = result.error?.replacingOccurrences(of: req.redactedURL, with: "the Slack webhook")
        return result
    }
}
