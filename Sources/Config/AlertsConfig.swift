import Core
import Foundation

/// `[alerts]` in cairn.toml: the channels (`[alerts.NAME]`) and the
/// reminder interval. Holds no secret: every secret is named by a file or a
/// systemd credential and read with `SecretFile.read` when a message is sent.
public struct AlertsConfig: Sendable, Equatable, CustomStringConvertible {
    /// Channels by name.
    public var channels: [String: AlertChannelConfig]
    /// `[alerts] remind_every`: how often a job that stays failing is reminded of (default 24 h).
    public var remindEvery: Duration

    public static let defaultRemindEvery: Duration = .seconds(24 * 3600)

    public init(channels: [String: AlertChannelConfig] = [:], remindEvery: Duration = AlertsConfig.defaultRemindEvery) {
        self.channels = channels
        self.remindEvery = remindEvery
    }

    public var description: String {
        var parts = ["alerts: remind_every=\(ConfigUnits.formatDuration(remindEvery))"]
        for name in channels.keys.sorted() { parts.append("\(name)=\(channels[name]!.kind.typeName)") }
        return parts.joined(separator: " ")
    }
}

/// `[alerts.NAME]`: one channel.
public struct AlertChannelConfig: Sendable, Equatable {
    public var name: String
    public var kind: AlertChannelKind
    /// A CA bundle (PEM) trusted in addition to nothing else for this channel's
    /// TLS connections; verification stays on either way.
    public var caFile: String?

    public init(name: String, kind: AlertChannelKind, caFile: String? = nil) {
        self.name = name
        self.kind = kind
        self.caFile = caFile
    }

    /// The channel's secret settings as `(key, file or credential:NAME)`.
    public var secretFiles: [(key: String, file: String)] {
        switch kind {
        case .webhook(let c): return [("secret_file", c.secretFile)]
        case .slack(let c): return [("url_file", c.urlFile)]
        case .email(let c): return c.passwordFile.map { [("password_file", $0)] } ?? []
        case .termii(let c): return [("api_key_file", c.apiKeyFile)]
        case .twilio(let c): return [("auth_token_file", c.authTokenFile)]
        case .sentry(let c): return [("dsn_file", c.dsnFile)]
        case .ping: return []
        }
    }

    /// Reads every secret of the channel (as a send would) and throws the
    /// first problem: a missing file, one readable by others, an empty one.
    public func checkSecrets(env: [String: String] = ProcessInfo.processInfo.environment) throws {
        for (key, file) in secretFiles {
            _ = try SecretFile.read(file, what: "alert channel '\(name)' \(key)", env: env)
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw CairnError(.config, "alert channel '\(name)' ca_file \(caFile): not readable")
        }
    }
}

/// The `type` of a channel with its own fields.
public enum AlertChannelKind: Sendable, Equatable {
    case webhook(WebhookChannel)
    case slack(SlackChannel)
    case email(EmailChannel)
    case termii(TermiiChannel)
    case twilio(TwilioChannel)
    case sentry(SentryChannel)
    case ping(PingChannel)

    public static let typeNames = ["webhook", "slack", "email", "termii", "twilio", "sentry", "ping"]

    public var typeName: String {
        switch self {
        case .webhook: return "webhook"
        case .slack: return "slack"
        case .email: return "email"
        case .termii: return "termii"
        case .twilio: return "twilio"
        case .sentry: return "sentry"
        case .ping: return "ping"
        }
    }

    /// A generic JSON webhook signed with HMAC-SHA256 (docs/ALERTS.md).
    public struct WebhookChannel: Sendable, Equatable {
        public var url: String
        /// File (or `credential:NAME`) with the HMAC key.
        public var secretFile: String
        public init(url: String, secretFile: String) { self.url = url; self.secretFile = secretFile }
    }

    /// A Slack incoming webhook; its URL is a secret, so it is read from a file.
    public struct SlackChannel: Sendable, Equatable {
        public var urlFile: String
        public init(urlFile: String) { self.urlFile = urlFile }
    }

    /// Email over SMTP (libcurl).
    public struct EmailChannel: Sendable, Equatable {
        public enum Security: String, Sendable, Equatable {
            /// `smtp://`: STARTTLS, required (the session fails without it).
            case starttls
            /// `smtps://`: TLS from the first byte.
            case implicitTLS
            /// `smtp://` with `starttls = false`: plain text (a local relay only).
            case none
        }
        /// `smtp://HOST:PORT` or `smtps://HOST:PORT`.
        public var url: String
        public var security: Security
        public var from: String
        public var to: [String]
        public var username: String?
        public var passwordFile: String?
        public init(url: String, security: Security, from: String, to: [String], username: String? = nil, passwordFile: String? = nil) {
            self.url = url; self.security = security; self.from = from; self.to = to
            self.username = username; self.passwordFile = passwordFile
        }
    }

    /// SMS, DND SMS or WhatsApp through Termii.
    public struct TermiiChannel: Sendable, Equatable {
        public enum Route: String, Sendable, Equatable, CaseIterable { case generic, dnd, whatsapp }
        public var apiURL: String
        public var apiKeyFile: String
        /// Sender id.
        public var from: String
        public var to: [String]
        public var route: Route
        public init(apiURL: String, apiKeyFile: String, from: String, to: [String], route: Route) {
            self.apiURL = apiURL; self.apiKeyFile = apiKeyFile; self.from = from; self.to = to; self.route = route
        }
    }

    /// SMS or WhatsApp (`whatsapp:+233…`) through Twilio's Messages API.
    public struct TwilioChannel: Sendable, Equatable {
        public var apiURL: String
        public var accountSID: String
        public var authTokenFile: String
        public var from: String
        public var to: [String]
        public init(apiURL: String, accountSID: String, authTokenFile: String, from: String, to: [String]) {
            self.apiURL = apiURL; self.accountSID = accountSID; self.authTokenFile = authTokenFile; self.from = from; self.to = to
        }
    }

    /// An event in Sentry, from a DSN kept in a file.
    public struct SentryChannel: Sendable, Equatable {
        public var dsnFile: String
        public var environment: String?
        public init(dsnFile: String, environment: String? = nil) { self.dsnFile = dsnFile; self.environment = environment }
    }

    /// Dead-man's-switch pings (healthchecks.io style or an Uptime Kuma push URL).
    public struct PingChannel: Sendable, Equatable {
        public enum Style: String, Sendable, Equatable, CaseIterable {
            /// `URL/start`, `URL`, `URL/fail`.
            case healthchecks
            /// `URL?status=up&msg=…`, `URL?status=down&msg=…`; no start ping.
            case uptimeKuma = "uptime_kuma"
        }
        public var url: String
        public var style: Style
        public init(url: String, style: Style = .healthchecks) { self.url = url; self.style = style }
    }
}
