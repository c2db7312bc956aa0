import Foundation
import Testing
import Core
import Crypto
import HTTP
import Config
@testable import Alerts

/// The alert receivers of scripts/services (scripts/testservers/alert_receiver.py).
struct AlertReceiver {
    let base: String
    let http = HTTPClient()

    init() throws { base = try TestEnv.value("CAIRN_TEST_ALERT_HTTP_URL") }

    static var httpsBase: String { get throws { try TestEnv.value("CAIRN_TEST_ALERT_HTTPS_URL") } }
    static var caFile: String { get throws { try TestEnv.value("CAIRN_TEST_ALERT_CA") } }

    struct Recorded: Decodable {
        var method: String
        var path: String
        var query: String
        var headers: [String: String]
        var body_base64: String
        var status: Int?
        var scheme: String
        var fault: String?
        var violations: [String]
        var body: Data { Data(base64Encoded: body_base64)! }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    struct Mail: Decodable {
        var mail_from: String
        var rcpt_tos: [String]
        var data: String
        var subject: String
        var body: String
        var headers: [String: String]
        var tls: Bool
        var implicit_tls: Bool
        var auth_user: String?
        var authenticated: Bool
        var violations: [String]
    }

    func requests(under prefix: String) async throws -> [Recorded] {
        let q = prefix.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? prefix
        let r = try await http.send(HTTPRequest(method: "GET", url: base + "/__control/requests?path_prefix=" + q))
        return try JSONDecoder().decode([Recorded].self, from: r.body)
    }

    func mail(to rcpt: String) async throws -> [Mail] {
        let q = rcpt.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? rcpt
        let r = try await http.send(HTTPRequest(method: "GET", url: base + "/__control/mail?rcpt=" + q))
        return try JSONDecoder().decode([Mail].self, from: r.body)
    }

    /// Ends the faults under `prefix` (the receiver is back).
    func clearFail(_ prefix: String) async throws {
        let q = prefix.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? prefix
        let r = try await http.send(HTTPRequest(method: "DELETE", url: base + "/__control/fail?path_prefix=" + q))
        #expect(r.status == 200)
    }

    func fail(_ prefix: String, status: Int = 503, count: Int? = nil, action: String = "status") async throws {
        var o: [String: Any] = ["path_prefix": prefix, "status": status, "action": action]
        if let count { o["count"] = count }
        let body = try JSONSerialization.data(withJSONObject: o)
        let r = try await http.send(HTTPRequest(method: "POST", url: base + "/__control/fail",
                                                headers: ["Content-Type": "application/json"], body: .data(body)))
        #expect(r.status == 200)
    }
}

/// A directory of 0600 secret files.
final class SecretDir {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-alert-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    func write(_ name: String, _ text: String) throws -> String {
        let p = path + "/" + name
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        return p
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// HMAC-SHA256 written out from RFC 2104 over plain SHA-256, so the check
/// does not reuse the HMAC the webhook channel signs with.
func rfc2104HMAC(key: Data, _ message: Data) -> Data {
    var k = key.count > 64 ? Digest.sha256(key) : key
    k.append(Data(repeating: 0, count: 64 - k.count))
    let inner = Digest.sha256(Data(k.map { $0 ^ 0x36 }) + message)
    return Digest.sha256(Data(k.map { $0 ^ 0x5c }) + inner)
}

private let t0 = Date(timeIntervalSince1970: 1_796_457_600) // 2026-12-05T08:00:00Z

private func failure(job: String) -> AlertMessage {
    AlertMessage(event: .failed, job: job, host: "backup-1", what: "pg_dump: error: connection to server failed",
                 since: t0, lastSuccess: t0.addingTimeInterval(-86_400), logTail: "line 1\nERROR: connection refused\n",
                 runID: 42, time: t0)
}

private func scope(_ tag: String) -> String { "\(tag)-\(UUID().uuidString.prefix(8).lowercased())" }

@Suite struct AlertChannelsAgainstRealReceivers {
    @Test func webhookBodyIsSignedWithTheTrimmedSecretAndCarriesTheTimestamp() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("hook")
        let file = try secrets.write("hook-secret", "  s3cr3t-key \n")
        let channel = AlertChannels.make(AlertChannelConfig(name: "ops-hook", kind: .webhook(.init(url: rx.base + "/hook/\(s)", secretFile: file))),
                                         clock: { t0.addingTimeInterval(5) })
        let result = await channel.send(failure(job: "db-\(s)"))
        #expect(result.delivered, "\(result)")
        #expect(result.status == 200)

        let reqs = try await rx.requests(under: "/hook/\(s)")
        try #require(reqs.count == 1)
        let r = reqs[0]
        #expect(r.violations.isEmpty, "\(r.violations)")
        #expect(r.method == "POST")
        #expect(r.headers["content-type"] == "application/json")
        #expect(r.headers["x-cairn-timestamp"] == String(Int(t0.timeIntervalSince1970) + 5))
        let expected = "sha256=" + rfc2104HMAC(key: Data("s3cr3t-key".utf8), r.body).hexString
        #expect(r.headers["x-cairn-signature"] == expected)
        let j = r.json
        #expect(j["event"] as? String == "failed")
        #expect(j["job"] as? String == "db-\(s)")
        #expect(j["host"] as? String == "backup-1")
        #expect(j["message"] as? String == "pg_dump: error: connection to server failed")
        #expect(j["since"] as? String == "2026-12-05T08:00:00Z")
        #expect(j["last_success"] as? String == "2026-12-04T08:00:00Z")
        #expect(j["run"] as? Int == 42)
        #expect(j["command"] as? String == "cairn history db-\(s)")
        #expect(j["timestamp"] as? Int == Int(t0.timeIntervalSince1970) + 5)
        #expect(j["log_tail"] as? String == "line 1\nERROR: connection refused\n")
    }

    @Test func httpsChannelsVerifyTheReceiverAgainstTheirCAFile() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("tls")
        let file = try secrets.write("k", "key")
        let kind = AlertChannelKind.webhook(.init(url: try AlertReceiver.httpsBase + "/hook/\(s)", secretFile: file))

        let trusted = AlertChannels.make(AlertChannelConfig(name: "tls", kind: kind, caFile: try AlertReceiver.caFile))
        let ok = await trusted.send(failure(job: "db"))
        #expect(ok.delivered, "\(ok)")

        let untrusted = AlertChannels.make(AlertChannelConfig(name: "tls", kind: kind))
        let refused = await untrusted.send(failure(job: "db"))
        #expect(!refused.delivered)
        #expect(!refused.retryable)
        #expect(refused.curlCode == 60)    // CURLE_PEER_FAILED_VERIFICATION
        let reqs = try await rx.requests(under: "/hook/\(s)")
        #expect(reqs.count == 1 && reqs[0].scheme == "https")
    }

    @Test func slackGetsTextInItsDocumentedShape() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("slack")
        let file = try secrets.write("slack-url", rx.base + "/slack/services/T000/B000/\(s)\n")
        let channel = AlertChannels.make(AlertChannelConfig(name: "ops-slack", kind: .slack(.init(urlFile: file))))
        let m = failure(job: "db")
        let result = await channel.send(m)
        #expect(result.delivered, "\(result)")
        #expect(result.bodyExcerpt == "ok")
        let reqs = try await rx.requests(under: "/slack/services/T000/B000/\(s)")
        try #require(reqs.count == 1)
        #expect(reqs[0].violations.isEmpty)
        let text = try #require(reqs[0].json["text"] as? String)
        #expect(text.hasPrefix("*\(AlertRenderer.subject(m))*\n"))
        #expect(text.contains("See more:      cairn history db"))
    }

    @Test func twilioGetsBasicAuthAndFormFieldsPerRecipient() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("twilio")
        let sid = "AC" + String(repeating: "0123456789abcdef", count: 2)
        let token = try secrets.write("twilio-token", "tok-\(s)\n")
        let cfg = AlertChannelKind.TwilioChannel(apiURL: rx.base + "/twilio", accountSID: sid, authTokenFile: token,
                                                 from: "+15005550006", to: ["+233201234567", "+233241234567"])
        let channel = AlertChannels.make(AlertChannelConfig(name: "ops-sms", kind: .twilio(cfg)))
        let m = failure(job: "job-\(s)")
        let result = await channel.send(m)
        #expect(result.delivered, "\(result)")
        #expect(result.status == 201)
        #expect(result.bodyExcerpt.contains("\"sid\": \"SM"))

        let reqs = try await rx.requests(under: "/twilio/2010-04-01/Accounts/\(sid)/Messages.json")
            .filter { String(decoding: $0.body, as: UTF8.self).contains(s) }
        try #require(reqs.count == 2)
        for (r, to) in zip(reqs, ["+233201234567", "+233241234567"]) {
            #expect(r.violations.isEmpty, "\(r.violations)")
            #expect(r.method == "POST")
            #expect(r.headers["content-type"] == "application/x-www-form-urlencoded")
            #expect(r.headers["authorization"] == "Basic " + Data("\(sid):tok-\(s)".utf8).base64EncodedString())
            let form = URLComponents(string: "?" + String(decoding: r.body, as: UTF8.self))!.queryItems!
            let fields = Dictionary(uniqueKeysWithValues: form.map { ($0.name, $0.value ?? "") })
            #expect(Set(fields.keys) == ["To", "From", "Body"])
            #expect(fields["To"] == to)
            #expect(fields["From"] == "+15005550006")
            #expect(fields["Body"] == AlertRenderer.sms(m))
            #expect((GSM7.septets(fields["Body"] ?? "") ?? 999) <= 160)
        }
    }

    @Test func termiiGetsItsJSONFieldsPerRecipient() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("termii")
        let key = try secrets.write("termii-key", "TL-key-\(s)\n")
        let cfg = AlertChannelKind.TermiiChannel(apiURL: rx.base + "/termii/", apiKeyFile: key, from: "Cairn",
                                                 to: ["+233201234567"], route: .dnd)
        let channel = AlertChannels.make(AlertChannelConfig(name: "ops-termii", kind: .termii(cfg)))
        let m = failure(job: "job-\(s)")
        let result = await channel.send(m)
        #expect(result.delivered, "\(result)")
        #expect(result.status == 200)
        #expect(result.bodyExcerpt.contains("message_id"))

        let reqs = try await rx.requests(under: "/termii/api/sms/send").filter { $0.json["api_key"] as? String == "TL-key-\(s)" }
        try #require(reqs.count == 1)
        let j = reqs[0].json
        #expect(reqs[0].violations.isEmpty, "\(reqs[0].violations)")
        #expect(reqs[0].headers["content-type"] == "application/json")
        #expect(j["to"] as? String == "233201234567")
        #expect(j["from"] as? String == "Cairn")
        #expect(j["sms"] as? String == AlertRenderer.sms(m))
        #expect(j["type"] as? String == "plain")
        #expect(j["channel"] as? String == "dnd")
        #expect(Set(j.keys) == ["to", "from", "sms", "type", "channel", "api_key"])
    }

    @Test func sentryGetsAnAuthenticatedEventWithJobHostReleaseAndLogTail() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("sentry")
        let port = URL(string: rx.base)!.port!
        let dsn = try secrets.write("dsn", "http://pubkey\(s.suffix(8))@127.0.0.1:\(port)/sentry/4242\n")
        let channel = AlertChannels.make(AlertChannelConfig(name: "sentry", kind: .sentry(.init(dsnFile: dsn, environment: "production"))),
                                         clock: { t0 })
        let m = failure(job: "job-\(s)")
        let result = await channel.send(m)
        #expect(result.delivered, "\(result)")

        let reqs = try await rx.requests(under: "/sentry/api/4242/store/").filter {
            (($0.json["tags"] as? [String: Any])?["job"] as? String) == "job-\(s)"
        }
        try #require(reqs.count == 1)
        let r = reqs[0]
        #expect(r.violations.isEmpty, "\(r.violations)")
        #expect(r.headers["x-sentry-auth"] == "Sentry sentry_version=7, sentry_client=cairn/\(CairnVersion.current), sentry_key=pubkey\(s.suffix(8))")
        let j = r.json
        let id = try #require(j["event_id"] as? String)
        #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
        #expect(result.bodyExcerpt == "{\"id\": \"\(id)\"}")
        #expect(j["timestamp"] as? String == "2026-12-05T08:00:00Z")
        #expect(j["level"] as? String == "error")
        #expect(j["release"] as? String == "cairn@\(CairnVersion.current)")
        #expect(j["server_name"] as? String == "backup-1")
        #expect(j["environment"] as? String == "production")
        #expect((j["message"] as? [String: Any])?["formatted"] as? String == AlertRenderer.subject(m))
        #expect((j["tags"] as? [String: Any])?["host"] as? String == "backup-1")
        #expect((j["extra"] as? [String: Any])?["log_tail"] as? String == "line 1\nERROR: connection refused\n")
    }

    @Test func pingsHitStartSuccessAndFailWithTheLogTail() async throws {
        let rx = try AlertReceiver()
        let s = scope("ping")
        let channel = try #require(AlertChannels.make(AlertChannelConfig(name: "hc", kind: .ping(.init(url: rx.base + "/ping/\(s)", style: .healthchecks)))) as? PingChannel)
        #expect(await channel.ping(.start).delivered)
        #expect(await channel.ping(.success).delivered)
        #expect(await channel.ping(.failure("ERROR: disk full\n")).delivered)
        let reqs = try await rx.requests(under: "/ping/\(s)")
        #expect(reqs.map { "\($0.method) \($0.path)" } == ["GET /ping/\(s)/start", "GET /ping/\(s)", "POST /ping/\(s)/fail"])
        #expect(reqs.last.map { String(decoding: $0.body, as: UTF8.self) } == "ERROR: disk full\n")

        let kuma = try #require(AlertChannels.make(AlertChannelConfig(name: "kuma", kind: .ping(.init(url: rx.base + "/ping/kuma-\(s)", style: .uptimeKuma)))) as? PingChannel)
        #expect(await kuma.send(failure(job: "db")).delivered)
        #expect(await kuma.ping(.success).delivered)
        let k = try await rx.requests(under: "/ping/kuma-\(s)")
        try #require(k.count == 2)
        #expect(k[0].query.hasPrefix("status=down&msg=%5Bcairn%5D%20FAILED%20db%20on%20backup-1"))
        #expect(k[1].query == "status=up&msg=OK")
    }

    @Test func emailArrivesOverSTARTTLSWithAuthRecipientsAndHeaders() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("mail")
        let pw = try secrets.write("smtp-pw", try TestEnv.value("CAIRN_TEST_SMTP_PASSWORD") + "\n")
        let to = ["ops-\(s)@example.com", "oncall-\(s)@example.org"]
        for (url, implicit) in [(try TestEnv.value("CAIRN_TEST_SMTP_URL"), false), (try TestEnv.value("CAIRN_TEST_SMTPS_URL"), true)] {
            let cfg = AlertChannelKind.EmailChannel(url: url, security: implicit ? .implicitTLS : .starttls, from: "cairn@backup-1.example.com",
                                                    to: to, username: try TestEnv.value("CAIRN_TEST_SMTP_USER"), passwordFile: pw)
            let channel = AlertChannels.make(AlertChannelConfig(name: "ops-mail", kind: .email(cfg), caFile: try AlertReceiver.caFile))
            let m = failure(job: "job-\(s)")
            let result = await channel.send(m)
            #expect(result.delivered, "\(result)")
            #expect(result.status == 250)

            let mails = try await rx.mail(to: to[0]).filter { $0.implicit_tls == implicit }
            try #require(mails.count == 1)
            let mail = mails[0]
            #expect(mail.violations.isEmpty, "\(mail.violations)")
            #expect(mail.tls)
            #expect(mail.authenticated)
            #expect(mail.auth_user == "cairn-test")
            #expect(mail.mail_from == "cairn@backup-1.example.com")
            #expect(mail.rcpt_tos == to)
            #expect(mail.subject == AlertRenderer.subject(m))
            #expect(mail.headers["To"] == to.joined(separator: ", "))
            #expect(mail.headers["Content-Type"] == "text/plain; charset=utf-8")
            #expect(mail.headers["Message-ID"]?.hasSuffix("@backup-1.example.com>") == true)
            #expect(mail.headers["Date"]?.hasSuffix(" +0000") == true)
            #expect(mail.body.contains("See more:      cairn history job-\(s)"))
        }
    }

    @Test func aWrongSMTPPasswordIsAPermanentFailureWithItsCurlCode() async throws {
        let secrets = try SecretDir()
        let pw = try secrets.write("smtp-pw", "wrong")
        let cfg = AlertChannelKind.EmailChannel(url: try TestEnv.value("CAIRN_TEST_SMTP_URL"), security: .starttls, from: "cairn@example.com",
                                                to: ["ops@example.com"], username: "cairn-test", passwordFile: pw)
        let channel = AlertChannels.make(AlertChannelConfig(name: "ops-mail", kind: .email(cfg), caFile: try AlertReceiver.caFile))
        let result = await channel.send(failure(job: "db"))
        #expect(!result.delivered)
        #expect(!result.retryable)
        #expect(result.curlCode == 67)   // CURLE_LOGIN_DENIED
        #expect(result.status == 535)
    }

    @Test func receiverFailuresAreClassifiedForRetries() async throws {
        let rx = try AlertReceiver()
        let secrets = try SecretDir()
        let s = scope("fail")
        let file = try secrets.write("k", "key")
        func hook(_ tail: String) -> any AlertChannel {
            AlertChannels.make(AlertChannelConfig(name: "h", kind: .webhook(.init(url: rx.base + "/hook/\(s)/\(tail)", secretFile: file))))
        }
        try await rx.fail("/hook/\(s)/503", status: 503, count: 1)
        try await rx.fail("/hook/\(s)/429", status: 429, count: 1)
        try await rx.fail("/hook/\(s)/410", status: 410, count: 1)
        try await rx.fail("/hook/\(s)/down", action: "drop")
        let r503 = await hook("503").send(failure(job: "db"))
        #expect(!r503.delivered && r503.retryable && r503.status == 503)
        let r429 = await hook("429").send(failure(job: "db"))
        #expect(!r429.delivered && r429.retryable && r429.status == 429)
        let r410 = await hook("410").send(failure(job: "db"))
        #expect(!r410.delivered && !r410.retryable && r410.status == 410)
        let down = await hook("down").send(failure(job: "db"))
        #expect(!down.delivered && down.retryable && down.status == nil)
        #expect(down.curlCode == 52)   // CURLE_GOT_NOTHING
        // The fault was used up: the same channel delivers now.
        let again = await hook("503").send(failure(job: "db"))
        #expect(again.delivered)

        let missing = AlertChannels.make(AlertChannelConfig(name: "h", kind: .webhook(.init(url: rx.base + "/hook/\(s)", secretFile: secrets.path + "/absent"))))
        let noSecret = await missing.send(failure(job: "db"))
        #expect(!noSecret.delivered)
        #expect(noSecret.error?.contains("secret_file") == true)
    }

    @Test func cairnAlertTestSendsThroughTheConfiguredChannelAndPrintsTheAnswer() async throws {
        let rx = try AlertReceiver()
        let dir = try SecretDir()
        let s = scope("cli")
        _ = try dir.write("hook-secret", "cli-secret")
        _ = try dir.write("cairn.toml", """
        [alerts.ops-hook]
        type = "webhook"
        url = "\(rx.base)/hook/\(s)/ok"
        secret_file = "hook-secret"

        [alerts.broken]
        type = "webhook"
        url = "\(rx.base)/hook/\(s)/broken"
        secret_file = "hook-secret"
        """)
        try await rx.fail("/hook/\(s)/broken", status: 500)
        let ok = try await CLI.run(["alert", "test", "ops-hook", "--config", dir.path + "/cairn.toml"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "ops-hook (webhook): delivered, status 200: {\"ok\": true}\n")
        let reqs = try await rx.requests(under: "/hook/\(s)/ok")
        try #require(reqs.count == 1)
        #expect(reqs[0].json["event"] as? String == "test")
        #expect(reqs[0].headers["x-cairn-signature"] == "sha256=" + rfc2104HMAC(key: Data("cli-secret".utf8), reqs[0].body).hexString)

        let bad = try await CLI.run(["alert", "test", "broken", "--config", dir.path + "/cairn.toml"])
        #expect(bad.status == ErrorCode.network.exitStatus)
        #expect(bad.stdout.hasPrefix("broken (webhook): FAILED, status 500"))
        let lines = bad.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.hasPrefix("cairn: error: alert channel 'broken': POST \(rx.base)/hook/\(s)/broken: HTTP 500") == true)

        let unknown = try await CLI.run(["alert", "test", "nope", "--config", dir.path + "/cairn.toml"])
        #expect(unknown.status == ErrorCode.notFound.exitStatus)
        #expect(unknown.stderr.contains("no alert channel 'nope'"))
    }

    @Test func configCheckPreflightReadsEachChannelsSecrets() async throws {
        let dir = try SecretDir()
        _ = try dir.write("hook-secret", "s")
        _ = try dir.write("cairn.toml", """
        [alerts.ok-hook]
        type = "webhook"
        url = "https://hooks.example/a"
        secret_file = "hook-secret"

        [alerts.sms]
        type = "termii"
        api_key_file = "missing-key"
        from = "Cairn"
        to = ["+233201234567"]
        """)
        let plain = try await CLI.run(["config", "check", "--config", dir.path + "/cairn.toml"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(plain.stdout.contains("  alert ok-hook          webhook    used by no job\n"))
        let pre = try await CLI.run(["config", "check", "--preflight", "--config", dir.path + "/cairn.toml"])
        #expect(pre.status == ErrorCode.io.exitStatus)
        #expect(pre.stdout.contains("  alert ok-hook          webhook    used by no job: ok\n"))
        #expect(pre.stdout.contains("  alert sms              termii     used by no job: alert channel 'sms' api_key_file \(dir.path)/missing-key: No such file or directory\n"))
    }
}
