import Config
import Core
import Foundation
import HTTP

/// A configured channel that can carry an `AlertMessage`. `send` never
/// throws: every outcome, failures included, is a `DeliveryResult`.
public protocol AlertChannel: Sendable {
    var name: String { get }
    /// `webhook`, `slack`, `email`, `termii`, `twilio`, `sentry` or `ping`.
    var typeName: String { get }
    /// Sends `message`. `recipients`: nil = every configured recipient; else
    /// only these (a retry of an earlier result's `failedRecipients`).
    func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult
}

extension AlertChannel {
    public func send(_ message: AlertMessage) async -> DeliveryResult { await send(message, recipients: nil) }
}

/// Builds channels from configuration. Secrets are read (off the cooperative
/// pool) on every send, so a rotated secret file takes effect at once.
public enum AlertChannels {
    /// The channel for `config`.
    /// - Parameters:
    ///   - env: where `credential:NAME` secrets find `$CREDENTIALS_DIRECTORY`.
    ///   - clock: the time put in webhook timestamps, Sentry events and email Date headers.
    public static func make(_ config: AlertChannelConfig,
                            env: [String: String] = ProcessInfo.processInfo.environment,
                            clock: @escaping @Sendable () -> Date = { Date() }) -> any AlertChannel {
        let http = ChannelHTTP(caFile: config.caFile)
        let secrets = SecretReader(channel: config.name, env: env)
        switch config.kind {
        case .webhook(let c): return WebhookChannel(name: config.name, config: c, http: http, secrets: secrets, clock: clock)
        case .slack(let c): return SlackChannel(name: config.name, config: c, http: http, secrets: secrets)
        case .email(let c): return EmailChannel(name: config.name, config: c, caFile: config.caFile, secrets: secrets, clock: clock)
        case .termii(let c): return TermiiChannel(name: config.name, config: c, http: http, secrets: secrets)
        case .twilio(let c): return TwilioChannel(name: config.name, config: c, http: http, secrets: secrets)
        case .sentry(let c): return SentryChannel(name: config.name, config: c, http: http, secrets: secrets, clock: clock)
        case .ping(let c): return PingChannel(name: config.name, config: c, http: http)
        }
    }

    /// The channels of `config` by name.
    public static func make(_ config: AlertsConfig, env: [String: String] = ProcessInfo.processInfo.environment) -> [String: any AlertChannel] {
        config.channels.mapValues { make($0, env: env) }
    }
}

/// Reads a channel's secret files on a blocking thread.
struct SecretReader: Sendable {
    let channel: String
    let env: [String: String]

    func read(_ file: String, key: String) async throws -> String {
        let what = "alert channel '\(channel)' \(key)"
        let env = env
        return try await runBlocking { try SecretFile.read(file, what: what, env: env) }
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One HTTP client per channel (its CA file), with short timeouts: an alert
/// that cannot be delivered in 30 s is retried later, not waited for.
struct ChannelHTTP: Sendable {
    let client: HTTPClient

    init(caFile: String?) {
        client = HTTPClient(configuration: .init(connectTimeout: 10, lowSpeedLimit: 1, lowSpeedTime: 30, requestTimeout: 30,
                                                 caBundle: caFile, userAgent: "cairn/\(CairnVersion.current)", maxIdleHandles: 2))
    }

    /// Sends and turns the answer or the failure into a result.
    func deliver(_ request: HTTPRequest, channel: String, what: String) async -> DeliveryResult {
        do {
            let response = try await client.send(request, maxBodySize: 64 << 10)
            return DeliveryResult.from(channel: channel, response: response, what: what)
        } catch {
            return DeliveryResult.from(channel: channel, error: error)
        }
    }

    static func json(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }

    /// `application/x-www-form-urlencoded` (RFC 3986 unreserved characters kept, the rest percent-encoded).
    static func form(_ fields: [(String, String)]) -> Data {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        func enc(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: allowed) ?? "" }
        return Data(fields.map { "\(enc($0.0))=\(enc($0.1))" }.joined(separator: "&").utf8)
    }

    static func trimSlash(_ url: String) -> String {
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        return u
    }
}
