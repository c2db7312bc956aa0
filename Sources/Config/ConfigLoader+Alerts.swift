import Core
import Foundation

/// `[alerts]`, `[alerts.NAME]`, `[defaults] alerts` and the job units'
/// `alerts` / `stale_after` keys.
extension ConfigLoader {
    private enum ChannelType: String, CaseIterable { case webhook, slack, email, termii, twilio, sentry, ping }

    /// Keys of each channel type (besides `type` and `ca_file`).
    private static let channelKeys: [ChannelType: [String]] = [
        .webhook: ["url", "secret_file"],
        .slack: ["url_file"],
        .email: ["url", "from", "to", "username", "password_file", "starttls"],
        .termii: ["api_url", "api_key_file", "from", "to", "channel"],
        .twilio: ["api_url", "account_sid", "auth_token_file", "from", "to"],
        .sentry: ["dsn_file", "environment"],
        .ping: ["url", "style"],
    ]

    /// Secrets written inline, and the `_file` key to use instead.
    private static let inlineSecrets: [ChannelType: [String: String]] = [
        .webhook: ["secret": "secret_file"],
        .slack: ["url": "url_file", "webhook_url": "url_file"],
        .email: ["password": "password_file"],
        .termii: ["api_key": "api_key_file"],
        .twilio: ["auth_token": "auth_token_file"],
        .sentry: ["dsn": "dsn_file"],
        .ping: [:],
    ]

    /// Parses `[alerts]` (and `[defaults] alerts`) into `m`.
    func parseAlertsSection(_ r: TableReader, into m: MainParts, configDir: String) {
        if r.has("alerts"), let a = r.table("alerts") {
            m.alerts = parseAlerts(a, configDir: configDir)
            m.alertTables = Set(a.values.compactMap { k, v in if case .table = v { return k } else { return nil } })
        }
        if case .table = r.values["defaults"], let d = r.table("defaults"), d.has("alerts") {
            let names = d.stringArray("alerts") ?? []
            for n in names where !m.alertTables.contains(n) {
                d.report(.reference, "alerts", "no alert channel named '\(n)' (defined: \(Self.nameList(m.alertTables)))")
            }
            m.defaults.alerts = names
        }
    }

    func parseAlerts(_ a: TableReader, configDir: String) -> AlertsConfig {
        var config = AlertsConfig()
        if let d = a.duration("remind_every", min: .seconds(60)) { config.remindEvery = d }
        for key in a.values.keys.sorted() where key != "remind_every" {
            guard case .table = a.values[key] else {
                a.ctx.add(.unknownKey, at: a.keyPath(key), key: a.name(key),
                          "unknown key '\(key)' in [alerts]; expected remind_every or a channel table [alerts.NAME] with a type (\(AlertChannelKind.typeNames.joined(separator: ", ")))")
                continue
            }
            guard let t = a.table(key) else { continue }
            if !isValidName(key, allowUpper: true) {
                t.ctx.add(.invalidValue, at: t.path, key: t.name(""), "alert channel name '\(key)' must match [A-Za-z0-9][A-Za-z0-9_-]*")
                continue
            }
            if let c = parseAlertChannel(name: key, t, configDir: configDir) { config.channels[key] = c }
        }
        return config
    }

    private func parseAlertChannel(name: String, _ t: TableReader, configDir: String) -> AlertChannelConfig? {
        guard let type = t.choice("type", ChannelType.self) else {
            if !t.has("type") {
                t.ctx.add(.missing, at: t.path, key: t.name("type"),
                          "\(t.name("type")): required key is missing (one of \(ChannelType.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")))")
            }
            return nil
        }
        var skip: Set<String> = []
        for (inline, fileKey) in Self.inlineSecrets[type]! where t.has(inline) {
            skip.insert(inline)
            t.report(.inlineSecret, inline,
                     "secrets are not accepted inline; put it in a file (chmod 600) and set \(fileKey) = \"/path\" (or \"credential:NAME\" under systemd's LoadCredential=)")
        }
        t.rejectUnknownKeys(allowed: ["type", "ca_file"] + Self.channelKeys[type]!, except: skip)
        let caFile = t.string("ca_file").map { absoluteAlertPath($0, relativeTo: configDir) }
        guard skip.isEmpty else { return nil }

        let kind: AlertChannelKind
        switch type {
        case .webhook:
            guard let url = httpURL(t, "url", required: "the URL the JSON is POSTed to"),
                  let secret = secretFileKey(t, "secret_file", configDir: configDir, required: "the file holding the HMAC key")
            else { return nil }
            kind = .webhook(.init(url: url, secretFile: secret))
        case .slack:
            guard let f = secretFileKey(t, "url_file", configDir: configDir, required: "the file holding the incoming-webhook URL (it is a secret)")
            else { return nil }
            kind = .slack(.init(urlFile: f))
        case .email:
            guard let email = parseEmail(t, configDir: configDir) else { return nil }
            kind = .email(email)
        case .termii:
            let apiURL = httpURL(t, "api_url", required: nil) ?? "https://api.ng.termii.com"
            let key = secretFileKey(t, "api_key_file", configDir: configDir, required: "the file holding the Termii API key")
            let from = t.string("from", required: "the sender id registered with Termii")
            let to = phoneNumbers(t)
            let route = t.choice("channel", AlertChannelKind.TermiiChannel.Route.self) ?? .generic
            guard let key, let from, let to else { return nil }
            kind = .termii(.init(apiURL: apiURL, apiKeyFile: key, from: from, to: to, route: route))
        case .twilio:
            let apiURL = httpURL(t, "api_url", required: nil) ?? "https://api.twilio.com"
            var sid = t.string("account_sid", required: "the account SID, AC followed by 32 hex digits")
            if let s = sid, !(s.hasPrefix("AC") && s.count == 34 && s.dropFirst(2).allSatisfy(\.isHexDigit)) {
                t.report(.invalidValue, "account_sid", "expected AC followed by 32 hex digits, got \"\(s)\"")
                sid = nil
            }
            let token = secretFileKey(t, "auth_token_file", configDir: configDir, required: "the file holding the auth token")
            let from = t.string("from", required: "a Twilio number such as \"+15005550006\" or \"whatsapp:+14155238886\"")
            let to = phoneNumbers(t)
            guard let sid, let token, let from, let to else { return nil }
            let whatsapp = from.hasPrefix("whatsapp:")
            if to.contains(where: { $0.hasPrefix("whatsapp:") != whatsapp }) {
                t.report(.invalidValue, "to", whatsapp
                         ? "from is a whatsapp: number, so every recipient must be one too (\"whatsapp:+233…\")"
                         : "a whatsapp: recipient needs a whatsapp: sender in from")
                return nil
            }
            kind = .twilio(.init(apiURL: apiURL, accountSID: sid, authTokenFile: token, from: from, to: to))
        case .sentry:
            guard let dsn = secretFileKey(t, "dsn_file", configDir: configDir, required: "the file holding the project's DSN")
            else { return nil }
            kind = .sentry(.init(dsnFile: dsn, environment: t.string("environment")))
        case .ping:
            let style = t.choice("style", AlertChannelKind.PingChannel.Style.self) ?? .healthchecks
            guard let url = httpURL(t, "url", required: "the check's ping URL, such as \"https://hc-ping.com/UUID\"")
            else { return nil }
            kind = .ping(.init(url: url.hasSuffix("/") && style == .healthchecks ? String(url.dropLast()) : url, style: style))
        }
        return AlertChannelConfig(name: name, kind: kind, caFile: caFile)
    }

    private func parseEmail(_ t: TableReader, configDir: String) -> AlertChannelKind.EmailChannel? {
        var security: AlertChannelKind.EmailChannel.Security? = nil
        let url = t.string("url", required: "\"smtp://HOST:587\" (STARTTLS) or \"smtps://HOST:465\"")
        if let url {
            let parsed = URL(string: url)
            let scheme = parsed?.scheme?.lowercased()
            if (scheme == "smtp" || scheme == "smtps"), let host = parsed?.host, !host.isEmpty,
               parsed?.user == nil, parsed?.password == nil, (parsed?.path ?? "").count <= 1 {
                security = scheme == "smtps" ? .implicitTLS : .starttls
            } else {
                t.report(.invalidValue, "url", "expected \"smtp://HOST:PORT\" (STARTTLS) or \"smtps://HOST:PORT\" without user or path, got \"\(url)\"")
            }
        }
        if let s = t.bool("starttls") {
            if security == .implicitTLS {
                t.report(.invalidValue, "starttls", "applies only to smtp:// URLs; smtps:// is TLS from the start")
            } else if security == .starttls, !s {
                security = AlertChannelKind.EmailChannel.Security.none
            }
        }
        let from = t.string("from", required: "the sender address, such as \"cairn@example.com\"")
        if let from, !Self.isPlainAddress(from) { t.report(.invalidValue, "from", "expected one address like \"cairn@example.com\", got \"\(from)\"") }
        var to: [String]? = nil
        if t.has("to") {
            to = t.stringArray("to")
            if let list = to {
                if list.isEmpty { t.report(.invalidValue, "to", "must name at least one address"); to = nil }
                for a in list where !Self.isPlainAddress(a) {
                    t.report(.invalidValue, "to", "expected addresses like \"ops@example.com\", got \"\(a)\""); to = nil
                }
            }
        } else {
            t.missing("to", "a list of recipient addresses")
        }
        let username = t.string("username")
        let password = secretFileKey(t, "password_file", configDir: configDir, required: nil)
        if username != nil, password == nil, !t.has("password_file") { t.missing("password_file", "required with username") }
        if password != nil, username == nil, !t.has("username") { t.missing("username", "required with password_file") }
        guard let url, let security, let from, Self.isPlainAddress(from), let to else { return nil }
        return .init(url: url, security: security, from: from, to: to, username: username, passwordFile: password)
    }

    /// An address without display name, spaces or header-breaking characters.
    static func isPlainAddress(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty
            && !s.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7f || "<>()[],;:\"\\".unicodeScalars.contains($0) }
    }

    private func phoneNumbers(_ t: TableReader) -> [String]? {
        guard t.has("to") else { t.missing("to", "a list of phone numbers such as [\"+233201234567\"]"); return nil }
        guard let list = t.stringArray("to") else { return nil }
        guard !list.isEmpty else { t.report(.invalidValue, "to", "must name at least one number"); return nil }
        for n in list {
            let digits = n.hasPrefix("whatsapp:") ? String(n.dropFirst(9)) : n
            let body = digits.hasPrefix("+") ? digits.dropFirst() : Substring(digits)
            guard (7...15).contains(body.count), body.allSatisfy(\.isASCII), body.allSatisfy(\.isNumber) else {
                t.report(.invalidValue, "to", "expected international numbers like \"+233201234567\" (or \"whatsapp:+233…\" for Twilio), got \"\(n)\"")
                return nil
            }
        }
        return list
    }

    private func httpURL(_ t: TableReader, _ key: String, required: String?) -> String? {
        guard let s = t.string(key, required: required) else { return nil }
        guard let u = URL(string: s), let scheme = u.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = u.host, !host.isEmpty, u.user == nil, u.password == nil else {
            t.report(.invalidValue, key, "expected an http(s) URL without user:password, got \"\(s)\"")
            return nil
        }
        return s
    }

    private func secretFileKey(_ t: TableReader, _ key: String, configDir: String, required: String?) -> String? {
        guard let s = t.string(key, required: required) else { return nil }
        if s.hasPrefix("credential:") {
            guard KeySource(configValue: s) != nil else {
                t.report(.invalidValue, key, "\"\(s)\" is not a usable credential name")
                return nil
            }
            return s
        }
        return absoluteAlertPath(s, relativeTo: configDir)
    }

    private func absoluteAlertPath(_ path: String, relativeTo dir: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: dir, isDirectory: true)).standardizedFileURL.path
    }

    /// A unit's `alerts` (else `[defaults] alerts`) and `stale_after`, with
    /// channel names checked against `[alerts.NAME]` when cairn.toml loaded.
    func applyAlertKeys(_ r: TableReader, to job: inout JobConfig, main: MainParts?) {
        if r.has("alerts") {
            let names = r.stringArray("alerts") ?? []
            if let main {
                for n in names where !main.alertTables.contains(n) {
                    r.report(.reference, "alerts", "no alert channel named '\(n)' in \(main.ctx.display) (defined: \(Self.nameList(main.alertTables)))")
                }
            }
            job.alerts = names
        } else {
            job.alerts = main?.defaults.alerts ?? []
        }
        if r.has("stale_after") {
            if job.kind == .backup {
                job.staleAfter = r.duration("stale_after", min: .seconds(60))
            } else {
                r.report(.invalidValue, "stale_after", "applies only to backup jobs (the age of the newest backup); this is a \(job.kind.rawValue) job")
            }
        }
    }

    static func nameList<S: Sequence>(_ names: S) -> String where S.Element == String {
        let sorted = names.sorted()
        return sorted.isEmpty ? "none" : sorted.joined(separator: ", ")
    }
}
