import Crypto
import Foundation

/// The webhook channel's signature: `X-Cairn-Signature: sha256=HEX`, the
/// HMAC-SHA256 of the raw request body keyed with the secret file's bytes
/// (surrounding whitespace trimmed). The body carries `timestamp` (Unix
/// seconds), equal to the `X-Cairn-Timestamp` header, so a receiver can
/// refuse replays (docs/ALERTS.md).
public enum WebhookSignature {
    public static let signatureHeader = "X-Cairn-Signature"
    public static let timestampHeader = "X-Cairn-Timestamp"

    /// The key: the secret's bytes without surrounding whitespace.
    public static func key(fromSecret secret: String) -> Data {
        Data(secret.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
    }

    /// `sha256=` + lower-case hex HMAC-SHA256(key, body).
    public static func sign(body: Data, key: Data) -> String {
        "sha256=" + Digest.hmacSHA256(key: key, body).hexString
    }
}
