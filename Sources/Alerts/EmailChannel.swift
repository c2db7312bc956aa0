import Config
import Crypto
import Foundation
import HTTP

/// Email through SMTP (STARTTLS or implicit TLS, AUTH, several recipients).
struct EmailChannel: AlertChannel {
    let name: String
    let config: AlertChannelKind.EmailChannel
    let caFile: String?
    let secrets: SecretReader
    let clock: @Sendable () -> Date
    var typeName: String { "email" }

    static func message(_ m: AlertMessage, from: String, to: [String], date: Date, messageID: String) -> MailMessage {
        MailMessage(from: from, to: to, subject: AlertRenderer.subject(m), body: AlertRenderer.text(m), date: date,
                    messageID: messageID, extraHeaders: [("X-Cairn-Event", m.event.rawValue), ("X-Cairn-Job", m.job)])
    }

    func send(_ message: AlertMessage, recipients: [String]?) async -> DeliveryResult {
        var password: String? = nil
        if let f = config.passwordFile {
            do { password = try await secrets.read(f, key: "password_file") } catch {
                return DeliveryResult.from(channel: name, error: error)
            }
        }
        let to = recipients ?? config.to
        let domain = config.from.split(separator: "@").last.map(String.init) ?? "cairn.invalid"
        let id = ((try? SecureRandom.bytes(16)) ?? Data(UUID().uuidString.utf8)).hexString + "@" + domain
        let mail = Self.message(message, from: config.from, to: config.to, date: clock(), messageID: id)
        let client = SMTPClient(configuration: .init(url: config.url, requireTLS: config.security != .none,
                                                     username: config.username, password: password, caBundle: caFile,
                                                     connectTimeout: 10, timeout: 60))
        do {
            let reply = try await client.send(from: config.from, recipients: to, message: mail.rendered())
            return DeliveryResult(channel: name, delivered: true, status: reply.code, bodyExcerpt: "message <\(id)> accepted")
        } catch {
            var r = DeliveryResult.from(channel: name, error: error)
            r.failedRecipients = to
            return r
        }
    }
}
