import Core
import Foundation
import HTTP

/// The outcome of one delivery attempt through one channel, as data: what the
/// receiver answered (status, body excerpt) or how the transfer failed (curl
/// code), and whether trying again can help.
public struct DeliveryResult: Sendable, Equatable, CustomStringConvertible {
    public var channel: String
    public var delivered: Bool
    /// 5xx, 429, 408, connection errors and timeouts: yes; other 4xx, bad
    /// configuration (a missing secret file, a malformed DSN): no.
    public var retryable: Bool
    /// The receiver's answer to the last request: HTTP status or SMTP reply code.
    public var status: Int?
    /// The `CURLcode` when the transfer itself failed.
    public var curlCode: Int?
    /// The start of the receiver's answer, one line (≤ 200 characters).
    public var bodyExcerpt: String
    /// One line: what failed; nil when delivered.
    public var error: String?
    /// Recipients (phone numbers) whose message did not go out; a retry
    /// sends only to these. Empty for single-target channels.
    public var failedRecipients: [String]

    public init(channel: String, delivered: Bool, retryable: Bool = false, status: Int? = nil, curlCode: Int? = nil,
                bodyExcerpt: String = "", error: String? = nil, failedRecipients: [String] = []) {
        self.channel = channel
        self.delivered = delivered
        self.retryable = retryable
        self.status = status
        self.curlCode = curlCode
        self.bodyExcerpt = bodyExcerpt
        self.error = error
        self.failedRecipients = failedRecipients
    }

    public var description: String {
        var s = "\(channel): " + (delivered ? "delivered" : "failed")
        if let status { s += " status \(status)" }
        if let curlCode { s += " curl code \(curlCode)" }
        if let error { s += ": \(error)" }
        if !bodyExcerpt.isEmpty { s += " — \(bodyExcerpt)" }
        return s
    }

    /// Whether an HTTP status is worth retrying: 5xx, 429 (rate limited), 408.
    public static func isRetryable(status: Int) -> Bool {
        status >= 500 || status == 429 || status == 408
    }

    /// One line of at most `limit` characters from a response body.
    public static func excerpt(_ body: Data, limit: Int = 200) -> String {
        let text = String(decoding: body.prefix(4096), as: UTF8.self)
        let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        return line.count > limit ? String(line.prefix(limit)) + "..." : line
    }

    /// The result of an HTTP response.
    static func from(channel: String, response: HTTPResponse, what: String) -> DeliveryResult {
        let excerpt = excerpt(response.body)
        if response.isSuccess {
            return DeliveryResult(channel: channel, delivered: true, status: response.status, bodyExcerpt: excerpt)
        }
        return DeliveryResult(channel: channel, delivered: false, retryable: isRetryable(status: response.status),
                              status: response.status, bodyExcerpt: excerpt, error: "\(what): HTTP \(response.status)")
    }

    /// The result of a thrown error (transfer failure, unreadable secret, ...).
    static func from(channel: String, error: any Error) -> DeliveryResult {
        if let e = error as? CairnError {
            let curl = e.cause as? CurlFailure
            // An SMTP 5xx reply (recipient or message refused) is permanent; 4xx and transport failures are not.
            let permanentReply = (curl?.responseCode ?? 0) >= 500
            let retryable = !permanentReply && e.code != .config && e.code != .tls && (e.isTransient || (curl?.isTransient ?? false))
            return DeliveryResult(channel: channel, delivered: false, retryable: retryable,
                                  status: curl.flatMap { $0.responseCode > 0 ? $0.responseCode : nil },
                                  curlCode: curl?.code, error: e.message)
        }
        if error is CancellationError {
            return DeliveryResult(channel: channel, delivered: false, retryable: true, error: "cancelled")
        }
        return DeliveryResult(channel: channel, delivered: false, retryable: false, error: "\(error)")
    }
}
