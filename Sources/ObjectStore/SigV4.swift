import Foundation
import Core
import Crypto
import HTTP

/// AWS credentials. `description`, `debugDescription` and the mirror used by
/// `dump` never show the secret key or the session token.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working; nil for long-term keys.
    public var expiration: Date?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String {
        var s = "AWSCredentials(accessKeyId: \(accessKeyId), secretAccessKey: <redacted>"
        if sessionToken != nil { s += ", sessionToken: <redacted>" }
        if let expiration { s += ", expiration: \(expiration)" }
        return s + ")"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "accessKeyId": accessKeyId,
            "secretAccessKey": "<redacted>",
            "sessionToken": sessionToken == nil ? "nil" : "<redacted>",
            "expiration": expiration as Any,
        ], displayStyle: .struct)
    }
}

/// The parts of an absolute, already encoded URL, split by hand so that
/// nothing is re-encoded or normalised on the way.
public struct RawURL: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int?
    /// The encoded path, `/` when the URL has none.
    public var path: String
    /// The encoded query without `?`, nil when there is no `?`.
    public var query: String?

    public init(_ url: String) {
        var rest = Substring(url)
        if let r = rest.range(of: "://") {
            scheme = rest[..<r.lowerBound].lowercased()
            rest = rest[r.upperBound...]
        } else {
            scheme = "https"
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var hostPart = authority
        var portPart: Substring?
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            hostPart = authority[...close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        host = String(hostPart)
        port = portPart.flatMap { Int($0) }
        if let q = rest.firstIndex(of: "?") {
            path = String(rest[..<q])
            query = String(rest[rest.index(after: q)...])
        } else {
            path = String(rest)
            query = nil
        }
        if path.isEmpty { path = "/" }
    }

    public var defaultPort: Int? {
        switch scheme {
        case "https": return 443
        case "http": return 80
        default: return nil
        }
    }

    /// The `Host` header value: host, plus `:port` unless it is the scheme's default.
    public var hostHeader: String {
        if let port, port != defaultPort { return "\(host):\(port)" }
        return host
    }
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), header and query-string
/// (presigned URL) forms.
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty string.
    public static let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public let credentials: AWSCredentials
    public let region: String
    public let service: String
    /// Lower-cased names of headers that are never signed. `content-length`
    /// and `expect` are set or removed by the HTTP layer (curl) on the wire,
    /// `user-agent` and `x-amzn-trace-id` may be rewritten by proxies
    /// (the same list as botocore, plus `content-length`).
    public var unsignedHeaders: Set<String> = ["authorization", "content-length", "expect", "user-agent", "x-amzn-trace-id"]

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The intermediate values of one signature, for tests and debugging
    /// (none of them contains the secret key).
    public struct Signature: Sendable, Equatable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signedHeaders: String
        public var signature: String
        public var authorization: String
    }

    // MARK: Header-based signing

    /// Signs `request` in place. `request.url` must be a fully encoded
    /// absolute URL. Adds `Host` (when absent), `X-Amz-Date`,
    /// `X-Amz-Security-Token` (with a session token), `X-Amz-Content-SHA256`
    /// (service `s3`), then `Authorization`. Every header of the request is
    /// signed except `unsignedHeaders`.
    @discardableResult
    public func sign(_ request: inout HTTPRequest, payloadSHA256: String, date: Date = Date()) -> Signature {
        let url = RawURL(request.url)
        request.headers["Authorization"] = nil
        if request.headers["Host"] == nil { request.headers["Host"] = url.hostHeader }
        request.headers["X-Amz-Date"] = Self.amzDate(date)
        if let token = credentials.sessionToken { request.headers["X-Amz-Security-Token"] = token }
        if service == "s3" { request.headers["X-Amz-Content-SHA256"] = payloadSHA256 }

        let (creq, signedHeaders) = canonicalRequestAndSignedHeaders(
            method: request.method, url: url, headers: request.headers, payloadSHA256: payloadSHA256)
        let sts = stringToSign(canonicalRequest: creq, date: date)
        let sig = signature(stringToSign: sts, date: date)
        let authz = "\(Self.algorithm) Credential=\(credentials.accessKeyId)/\(scope(date)), SignedHeaders=\(signedHeaders), Signature=\(sig)"
        request.headers["Authorization"] = authz
        return Signature(canonicalRequest: creq, stringToSign: sts, signedHeaders: signedHeaders, signature: sig, authorization: authz)
    }

    /// The canonical request for the headers exactly as given (nothing is added).
    public func canonicalRequest(method: String, url: String, headers: HTTPHeaders, payloadSHA256: String) -> String {
        canonicalRequestAndSignedHeaders(method: method, url: RawURL(url), headers: headers, payloadSHA256: payloadSHA256).0
    }

    func canonicalRequestAndSignedHeaders(method: String, url: RawURL, headers: HTTPHeaders, payloadSHA256: String) -> (String, String) {
        let (canonicalHeaders, signedHeaders) = self.canonicalHeaders(headers)
        let creq = [
            method.uppercased(),
            canonicalURI(url.path),
            AWSURI.canonicalQuery(url.query ?? ""),
            canonicalHeaders,
            signedHeaders,
            payloadSHA256,
        ].joined(separator: "\n")
        return (creq, signedHeaders)
    }

    /// `name:value\n` lines sorted by lower-cased name (values trimmed,
    /// inner runs of white space collapsed, repeated headers joined with
    /// `,` in order) and the `;`-joined list of names.
    func canonicalHeaders(_ headers: HTTPHeaders) -> (String, String) {
        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            let n = name.lowercased()
            if unsignedHeaders.contains(n) { continue }
            byName[n, default: []].append(Self.normalizeHeaderValue(value))
        }
        let names = byName.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        var lines = ""
        for n in names { lines += n + ":" + byName[n]!.joined(separator: ",") + "\n" }
        return (lines, names.joined(separator: ";"))
    }

    static func normalizeHeaderValue(_ v: String) -> String {
        var out = ""
        var pendingSpace = false
        for c in v {
            if c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\r\n" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" "); pendingSpace = false }
                out.append(c)
            }
        }
        return out
    }

    /// For `s3` the path exactly as sent (encoded once, not normalised: keys
    /// may contain `//` or `.`). For other services AWS normalises the path
    /// (RFC 3986 remove_dot_segments, empty segments dropped) and encodes
    /// each segment once more.
    func canonicalURI(_ path: String) -> String {
        if service == "s3" { return path.isEmpty ? "/" : path }
        return AWSURI.encode(Self.normalizePath(path), encodeSlash: false)
    }

    static func normalizePath(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var out: [Substring] = []
        for s in segments {
            switch s {
            case "", ".": continue
            case "..": if !out.isEmpty { out.removeLast() }
            default: out.append(s)
            }
        }
        var result = "/" + out.joined(separator: "/")
        if !out.isEmpty, let last = segments.last, last.isEmpty || last == "." || last == ".." { result += "/" }
        return result
    }

    // MARK: Signature computation

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    public static func amzDate(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func p(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return p(tmv.tm_year + 1900, 4) + p(tmv.tm_mon + 1, 2) + p(tmv.tm_mday, 2) + "T"
            + p(tmv.tm_hour, 2) + p(tmv.tm_min, 2) + p(tmv.tm_sec, 2) + "Z"
    }

    /// `yyyyMMdd/region/service/aws4_request`.
    public func scope(_ date: Date) -> String {
        "\(Self.amzDate(date).prefix(8))/\(region)/\(service)/aws4_request"
    }

    public func stringToSign(canonicalRequest: String, date: Date) -> String {
        [Self.algorithm, Self.amzDate(date), scope(date), Digest.sha256(canonicalRequest).hexString].joined(separator: "\n")
    }

    func signingKey(_ date: Date) -> Data {
        let day = String(Self.amzDate(date).prefix(8))
        var k = Digest.hmacSHA256(key: Data(("AWS4" + credentials.secretAccessKey).utf8), day)
        k = Digest.hmacSHA256(key: k, region)
        k = Digest.hmacSHA256(key: k, service)
        return Digest.hmacSHA256(key: k, "aws4_request")
    }

    /// Hex HMAC-SHA256 of `stringToSign` with the derived signing key.
    public func signature(stringToSign: String, date: Date) -> String {
        Digest.hmacSHA256(key: signingKey(date), stringToSign).hexString
    }

    /// The signature of one `aws-chunked` chunk (S3 streaming upload,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), chained from the previous one
    /// (the seed signature for the first chunk).
    public func chunkSignature(previousSignature: String, chunk: Data, date: Date) -> String {
        let sts = ["AWS4-HMAC-SHA256-PAYLOAD", Self.amzDate(date), scope(date), previousSignature,
                   Self.emptyPayloadSHA256, Digest.sha256(chunk).hexString].joined(separator: "\n")
        return signature(stringToSign: sts, date: date)
    }

    // MARK: Presigned URLs

    /// A presigned URL (query-string authentication) valid for `expires`
    /// seconds from `date`. `url` is a fully encoded absolute URL and may
    /// already have a query. `host` is always signed; `headers` (which the
    /// user of the URL must then send) are signed too. The payload is
    /// `UNSIGNED-PAYLOAD` for s3, the empty-body hash otherwise.
    public func presign(method: String, url: String, expires: Int, date: Date = Date(), headers: HTTPHeaders = [:]) -> String {
        presignWithDetails(method: method, url: url, expires: expires, date: date, headers: headers).url
    }

    public func presignWithDetails(method: String, url: String, expires: Int, date: Date = Date(), headers: HTTPHeaders = [:]) -> (url: String, signature: Signature) {
        let raw = RawURL(url)
        var signHeaders = headers
        if signHeaders["Host"] == nil { signHeaders["Host"] = raw.hostHeader }
        let (_, signedHeaderList) = canonicalHeaders(signHeaders)

        var params: [(String, String)] = [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", "\(credentials.accessKeyId)/\(scope(date))"),
            ("X-Amz-Date", Self.amzDate(date)),
            ("X-Amz-Expires", String(expires)),
        ]
        if let token = credentials.sessionToken { params.append(("X-Amz-Security-Token", token)) }
        params.append(("X-Amz-SignedHeaders", signedHeaderList))
        var query = raw.query ?? ""
        let added = AWSURI.query(params)
        query = query.isEmpty ? added : query + "&" + added

        var signedURL = raw
        signedURL.query = query
        let payload = service == "s3" ? Self.unsignedPayload : Self.emptyPayloadSHA256
        let (creq, signedHeaders) = canonicalRequestAndSignedHeaders(method: method, url: signedURL, headers: signHeaders, payloadSHA256: payload)
        let sts = stringToSign(canonicalRequest: creq, date: date)
        let sig = signature(stringToSign: sts, date: date)

        let base = url.firstIndex(of: "?").map { String(url[..<$0]) } ?? url
        let finalURL = base + "?" + AWSURI.canonicalQuery(query) + "&X-Amz-Signature=" + sig
        let details = Signature(canonicalRequest: creq, stringToSign: sts, signedHeaders: signedHeaders, signature: sig,
                                authorization: "")
        return (finalURL, details)
    }
}
