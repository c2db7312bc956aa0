import Config
import Foundation
import HTTP

/// SMS, DND SMS or WhatsApp through Termii: one `POST {api_url}/api/sms/send`
/// per recipient, JSON `{to, from, sms, type: "plain", channel, api_key}`.
struct TermiiChannel: AlertChannel {
    let name: String
    let config: AlertChannelKind.TermiiChannel
    let http: ChannelHTTP
    let secrets: SecretReader
    var typeName: String { "termii" }

    /// Termii wants international numbers without the leading `+`.
    static func body(sms: String, to: String, from: String, route: AlertChannelKind.TermiiChannel.Route, apiKey: String) -> Data {
        let number = to.hasPrefix("+") ? String(to.dropFirst()) : to
        return ChannelHTTP.json(["to": number, "from": from, "sms": sms, "type": "plain",
                                 "channel": route.rawValue, "api_key": apiKey])
    }

    func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult {
        let key: String
        do { key = try await secrets.read(config.apiKeyFile, key: "api_key_file") } catch {
            var r = DeliveryResult.from(channel: name, error: error)
            r.failedRecipients = recipients ?? config.to
            return r
        }
        let sms = AlertRenderer.sms(message)
        let url = ChannelHTTP.trimSlash(config.apiURL) + "/api/sms/send"
        return await sendEach(recipients ?? config.to, channel: name) { to in
            HTTPRequest(method: "POST", url: url, headers: ["Content-Type": "application/json", "Accept": "application/json"],
                        body: .data(Self.body(sms: sms, to: to, from: config.from, route: config.route, apiKey: key)))
        } deliver: { req in await http.deliver(req, channel: name, what: "POST \(req.redactedURL)") }
    }
}

/// SMS or WhatsApp through Twilio's Messages API: one form-encoded
/// `POST {api_url}/2010-04-01/Accounts/{SID}/Messages.json` per recipient,
/// HTTP basic auth SID:token.
struct TwilioChannel: AlertChannel {
    let name: String
    let config: AlertChannelKind.TwilioChannel
    let http: ChannelHTTP
    let secrets: SecretReader
    var typeName: String { "twilio" }

    func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult {
        let token: String
        do { token = try await secrets.read(config.authTokenFile, key: "auth_token_file") } catch {
            var r = DeliveryResult.from(channel: name, error: error)
            r.failedRecipients = recipients ?? config.to
            return r
        }
        let sms = AlertRenderer.sms(message)
        let url = ChannelHTTP.trimSlash(config.apiURL) + "/2010-04-01/Accounts/\(config.accountSID)/Messages.json"
        let auth = "Basic " + Data("\(config.accountSID):\(token)".utf8).base64EncodedString()
        return await sendEach(recipients ?? config.to, channel: name) { to in
            HTTPRequest(method: "POST", url: url,
                        headers: ["Content-Type": "application/x-www-form-urlencoded", "Authorization": auth, "Accept": "application/json"],
                        body: .data(ChannelHTTP.form([("To", to), ("From", config.from), ("Body", sms)])))
        } deliver: { req in await http.deliver(req, channel: name, what: "POST \(req.redactedURL)") }
    }
}

/// Sends one request per recipient; the result is delivered when all were,
/// lists the ones that failed, and is retryable when every failure is.
func sendEach(_ recipients: [String], channel: String, request: (String) -> HTTPRequest,
              deliver: (HTTPRequest) async -> DeliveryResult) async -> DeliveryResult {
    var failed: [DeliveryResult] = []
    var failedTo: [String] = []
    var last: DeliveryResult? = nil
    for to in recipients {
        let r = await deliver(request(to))
        last = r
        if !r.delivered { failed.append(r); failedTo.append(to) }
    }
    guard var result = failed.first ?? last else {
        return DeliveryResult(channel: channel, delivered: false, error: "no recipients")
    }
    if !failed.isEmpty {
        result.retryable = failed.allSatisfy(\.retryable)
        result.failedRecipients = failedTo
        if recipients.count > 1 { result.error = "\(failedTo.count) of \(recipients.count) recipients failed; first: " + (result.error ?? "") }
    }
    return result
}
