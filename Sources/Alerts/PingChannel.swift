import Config
import Foundation
import HTTP

/// What a run tells a dead-man's switch.
public enum PingSignal: Sendable, Equatable {
    /// The run started.
    case start
    /// The run succeeded.
    case success
    /// The run failed; the body (the log's tail) is sent with it.
    case failure(String)
    /// A note that changes nothing (`cairn alert test`).
    case log(String)
}

/// healthchecks.io-style pings (`URL/start`, `URL`, `URL/fail`, `URL/log`),
/// or an Uptime Kuma push URL (`?status=up|down&msg=…`; no start ping).
public struct PingChannel: AlertChannel {
    public let name: String
    let config: AlertChannelKind.PingChannel
    let http: ChannelHTTP
    public var typeName: String { "ping" }

    init(name: String, config: AlertChannelKind.PingChannel, http: ChannelHTTP) {
        self.name = name
        self.config = config
        self.http = http
    }

    /// The request for `signal`, or nil when the style has none (Uptime Kuma's start).
    func request(_ signal: PingSignal) -> HTTPRequest? {
        switch config.style {
        case .healthchecks:
            let base = config.url
            switch signal {
            case .start: return HTTPRequest(method: "GET", url: base + "/start")
            case .success: return HTTPRequest(method: "GET", url: base)
            case .failure(let body):
                return HTTPRequest(method: "POST", url: base + "/fail", headers: ["Content-Type": "text/plain; charset=utf-8"],
                                   body: .data(Data(Self.limit(body).utf8)))
            case .log(let body):
                return HTTPRequest(method: "POST", url: base + "/log", headers: ["Content-Type": "text/plain; charset=utf-8"],
                                   body: .data(Data(Self.limit(body).utf8)))
            }
        case .uptimeKuma:
            let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
            func q(_ status: String, _ msg: String) -> HTTPRequest {
                let m = String(AlertRenderer.oneLine(msg).prefix(200)).addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
                return HTTPRequest(method: "GET", url: config.url + (config.url.contains("?") ? "&" : "?") + "status=\(status)&msg=\(m)")
            }
            switch signal {
            case .start: return nil
            case .success: return q("up", "OK")
            case .failure(let body): return q("down", body)
            case .log(let body): return q("up", body)
            }
        }
    }

    /// healthchecks.io keeps the first 100 kB of a body.
    static func limit(_ s: String) -> String {
        s.utf8.count <= 100_000 ? s : String(decoding: Data(s.utf8).suffix(100_000), as: UTF8.self)
    }

    /// Sends one ping.
    public func ping(_ signal: PingSignal) async -> DeliveryResult {
        guard let req = request(signal) else {
            return DeliveryResult(channel: name, delivered: true, bodyExcerpt: "no start ping for uptime_kuma")
        }
        var r = await http.deliver(req, channel: name, what: "\(req.method) ping")
        // Ping URLs hold the check's token: never show them.
        r.error = r.error?.replacingOccurrences(of: req.redactedURL, with: "the ping URL")
        return r
    }

    /// Alerts as pings: problems → fail (what and the log's tail as the body),
    /// recoveries → success, a test → log (up with a message for Uptime Kuma).
    public func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult {
        switch message.event {
        case .recovered, .probeRecovered: return await ping(.success)
        case .test: return await ping(.log(AlertRenderer.subject(message)))
        default:
            var body = AlertRenderer.subject(message)
            if let t = message.logTail, !t.isEmpty { body += "\n\n" + t }
            return await ping(.failure(body))
        }
    }
}
