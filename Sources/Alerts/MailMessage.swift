import Foundation

/// An RFC 5322 plain-text message: the bytes an `EmailChannel` hands to SMTP.
public struct MailMessage: Sendable, Equatable {
    public var from: String
    public var to: [String]
    public var subject: String
    public var body: String
    public var date: Date
    /// Without angle brackets: `RANDOM@HOST`.
    public var messageID: String
    public var extraHeaders: [(String, String)] = []

    public static func == (a: MailMessage, b: MailMessage) -> Bool { a.rendered() == b.rendered() }

    public init(from: String, to: [String], subject: String, body: String, date: Date, messageID: String,
                extraHeaders: [(String, String)] = []) {
        self.from = from; self.to = to; self.subject = subject; self.body = body
        self.date = date; self.messageID = messageID; self.extraHeaders = extraHeaders
    }

    /// `Sat, 05 Dec 2026 07:49:09 +0000` (RFC 5322 §3.3), English names
    /// whatever the process's locale, always in UTC.
    public static func rfc5322Date(_ d: Date) -> String {
        let c = AlertRenderer.components(d)
        let t = AlertRenderer.self
        return "\(t.weekdays[(c.weekday ?? 1) - 1]), \(t.two(c.day)) \(t.months[(c.month ?? 1) - 1]) \(c.year ?? 0) \(t.two(c.hour)):\(t.two(c.minute)):\(t.two(c.second)) +0000"
    }

    /// A header value: ASCII as it is; anything else as RFC 2047 `=?utf-8?B?…?=` words.
    static func encodedHeader(_ value: String) -> String {
        let clean = value.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        if clean.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7f }) { return clean }
        // Encoded words are at most 75 characters: split into pieces of ≤ 45 UTF-8 bytes on character boundaries.
        var words: [String] = []
        var piece = Data()
        for ch in clean {
            let bytes = Data(String(ch).utf8)
            if piece.count + bytes.count > 45 {
                words.append("=?utf-8?B?\(piece.base64EncodedString())?=")
                piece = Data()
            }
            piece.append(bytes)
        }
        if !piece.isEmpty { words.append("=?utf-8?B?\(piece.base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }

    /// The message with CRLF line ends. The body is sent as 7bit when it is
    /// ASCII with lines of at most 998 characters, else as base64.
    public func rendered() -> Data {
        var h: [(String, String)] = [
            ("Date", Self.rfc5322Date(date)),
            ("From", from),
            ("To", to.joined(separator: ", ")),
            ("Subject", Self.encodedHeader(subject)),
            ("Message-ID", "<\(messageID)>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
        let lines = body.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
        let plain = body.unicodeScalars.allSatisfy { $0.isASCII } && lines.allSatisfy { $0.utf8.count <= 998 }
        var text: String
        if plain {
            h.append(("Content-Transfer-Encoding", "7bit"))
            text = lines.joined(separator: "\r\n")
        } else {
            h.append(("Content-Transfer-Encoding", "base64"))
            let b64 = Data(body.utf8).base64EncodedString()
            var chunks: [Substring] = []
            var i = b64.startIndex
            while i < b64.endIndex {
                let j = b64.index(i, offsetBy: 76, limitedBy: b64.endIndex) ?? b64.endIndex
                chunks.append(b64[i..<j]); i = j
            }
            text = chunks.joined(separator: "\r\n")
        }
        for (k, v) in extraHeaders { h.append((k, Self.encodedHeader(v))) }
        if !text.hasSuffix("\r\n") { text += "\r\n" }
        let head = h.map { "\($0.0): \($0.1)" }.joined(separator: "\r\n")
        return Data((head + "\r\n\r\n" + text).utf8)
    }
}
