import CCurl
import Core

/// A failed libcurl transfer, kept as data: the `CURLcode` and, when the
/// server answered before it failed, its last response code (HTTP status or
/// SMTP reply). It is the `cause` of the `CairnError`s that HTTP throws for
/// transfers that did not complete.
public struct CurlFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `CURLcode` (for example 7 = could not connect, 28 = timed out, 67 = login denied).
    public var code: Int
    /// The server's last response code, 0 when none arrived.
    public var responseCode: Int

    public init(code: Int, responseCode: Int = 0) {
        self.code = code
        self.responseCode = responseCode
    }

    /// Connection refused, DNS, timeouts, dropped connections: the same request may succeed later.
    public var isTransient: Bool {
        switch code {
        case 5, 6, 7, 28, 35, 52, 55, 56: return true   // proxy, host, connect, timeout, TLS connect, empty reply, send, recv
        default: return false
        }
    }

    public var description: String { "curl code \(code)" + (responseCode > 0 ? ", server reply \(responseCode)" : "") }

    /// The `CairnError` for a failed transfer `what` (`METHOD URL` or `SMTP host`).
    static func error(_ rc: CURLcode, what: String, detail: String, responseCode: Int = 0) -> CairnError {
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(rc)) : detail
        let cause = CurlFailure(code: Int(rc.rawValue), responseCode: responseCode)
        switch rc {
        case CURLE_OPERATION_TIMEDOUT:
            return CairnError(.timeout, "\(what): timed out (\(text))", cause: cause)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_USE_SSL_FAILED:
            return CairnError(.tls, "\(what): TLS verification failed (\(text))", cause: cause)
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            return CairnError(.config, "\(what): bad URL (\(text))", cause: cause)
        case CURLE_LOGIN_DENIED:
            return CairnError(.config, "\(what): login denied (\(text))", cause: cause, transient: false)
        default:
            return CairnError(.network, "\(what): \(text)", cause: cause,
                              transient: responseCode >= 500 ? false : nil)   // an SMTP 5xx reply is permanent
        }
    }
}
