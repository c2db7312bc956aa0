import CCurl
import Core
import Foundation

/// Sends one email through an SMTP server with libcurl (the only libcurl
/// user is this module), on a `BlockingPool` thread.
///
/// - `smtp://HOST:PORT` with `requireTLS` (the default): STARTTLS is required
///   (`CURLOPT_USE_SSL = CURLUSESSL_ALL`); a server that does not offer it
///   fails the send. `smtps://HOST:PORT`: TLS from the first byte.
/// - TLS peer and host verification are always on; `caBundle` adds a CA file.
/// - AUTH with `username`/`password` when given (curl picks PLAIN or LOGIN
///   from what the server offers, only inside TLS unless `requireTLS` is off).
public struct SMTPClient: Sendable {
    public struct Configuration: Sendable {
        /// `smtp://HOST:PORT` or `smtps://HOST:PORT`.
        public var url: String
        public var requireTLS: Bool
        public var username: String?
        public var password: String?
        public var caBundle: String?
        public var connectTimeout: TimeInterval
        public var timeout: TimeInterval
        /// The name sent with EHLO (default: this host's name).
        public var heloName: String?

        public init(url: String, requireTLS: Bool = true, username: String? = nil, password: String? = nil,
                    caBundle: String? = nil, connectTimeout: TimeInterval = 10, timeout: TimeInterval = 60,
                    heloName: String? = nil) {
            self.url = url
            self.requireTLS = requireTLS
            self.username = username
            self.password = password
            self.caBundle = caBundle
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.heloName = heloName
        }
    }

    /// What the server said to the final `.` of the DATA.
    public struct Reply: Sendable, Equatable {
        /// The SMTP reply code (250 on success).
        public var code: Int
    }

    public let configuration: Configuration

    public init(configuration: Configuration) {
        _ = CurlGlobal.initialized
        self.configuration = configuration
    }

    /// Sends `message` (a complete RFC 5322 message, CRLF line ends) from
    /// `from` to every address of `recipients` (the envelope; the message's
    /// own To header is the caller's).
    ///
    /// - Throws: `CairnError` with a `CurlFailure` cause (curl code, last SMTP
    ///   reply code); `.config` for a denied login, `.tls` for TLS failures,
    ///   `.network` otherwise (transient unless the server answered 5xx).
    public func send(from: String, recipients: [String], message: Data) async throws -> Reply {
        let config = configuration
        let upload = MailUpload(data: message)
        return try await withTaskCancellationHandler {
            try await BlockingPool.shared.run {
                try Self.perform(config, from: from, recipients: recipients, upload: upload)
            }
        } onCancel: {
            upload.flag.set()
        }
    }

    private static func perform(_ config: Configuration, from: String, recipients: [String], upload: MailUpload) throws -> Reply {
        let handle = try CurlHandle()
        let h = handle.raw
        var rcpt: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(rcpt) }
        for r in recipients { rcpt = curl_slist_append(rcpt, "<\(r)>") }
        var errbuf = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let host = URL(string: config.url)?.host ?? config.url
        let what = "SMTP \(host)"

        func check(_ rc: CURLcode, _ option: String) throws {
            if rc != CURLE_OK {
                throw CairnError(.internal, "curl option \(option) failed: \(String(cString: curl_easy_strerror(rc)))")
            }
        }
        // The URL's path is the EHLO name.
        var base = config.url
        while base.hasSuffix("/") { base.removeLast() }
        let helo = config.heloName ?? ProcessInfo.processInfo.hostName
        try check(cairn_curl_setopt_str(h, CURLOPT_URL, base + "/" + helo), "URL")
        try check(cairn_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1), "NOSIGNAL")
        try check(cairn_curl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1), "SSL_VERIFYPEER")
        try check(cairn_curl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2), "SSL_VERIFYHOST")
        if let ca = config.caBundle { try check(cairn_curl_setopt_str(h, CURLOPT_CAINFO, ca), "CAINFO") }
        if config.requireTLS { try check(cairn_curl_setopt_long(h, CURLOPT_USE_SSL, Int(CURLUSESSL_ALL.rawValue)), "USE_SSL") }
        if let u = config.username { try check(cairn_curl_setopt_str(h, CURLOPT_USERNAME, u), "USERNAME") }
        if let p = config.password { try check(cairn_curl_setopt_str(h, CURLOPT_PASSWORD, p), "PASSWORD") }
        try check(cairn_curl_setopt_str(h, CURLOPT_MAIL_FROM, "<\(from)>"), "MAIL_FROM")
        try check(cairn_curl_setopt_slist(h, CURLOPT_MAIL_RCPT, rcpt), "MAIL_RCPT")
        try check(cairn_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(config.connectTimeout * 1000)), "CONNECTTIMEOUT")
        try check(cairn_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(config.timeout * 1000)), "TIMEOUT")
        try check(cairn_curl_setopt_long(h, CURLOPT_UPLOAD, 1), "UPLOAD")
        try check(cairn_curl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(upload.data.count)), "INFILESIZE")
        let ud = Unmanaged.passUnretained(upload).toOpaque()
        try check(cairn_curl_setopt_datacb(h, CURLOPT_READFUNCTION, mailRead), "READFUNCTION")
        try check(cairn_curl_setopt_ptr(h, CURLOPT_READDATA, ud), "READDATA")
        try check(cairn_curl_setopt_long(h, CURLOPT_NOPROGRESS, 0), "NOPROGRESS")
        try check(cairn_curl_setopt_xfercb(h, CURLOPT_XFERINFOFUNCTION, mailProgress), "XFERINFOFUNCTION")
        try check(cairn_curl_setopt_ptr(h, CURLOPT_XFERINFODATA, ud), "XFERINFODATA")
        try errbuf.withUnsafeMutableBufferPointer { try check(cairn_curl_setopt_ptr(h, CURLOPT_ERRORBUFFER, $0.baseAddress), "ERRORBUFFER") }

        let rc = withExtendedLifetime(upload) { curl_easy_perform(h) }
        var code: Int = 0
        _ = cairn_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &code)
        if rc != CURLE_OK {
            if upload.flag.isSet { throw CancellationError() }
            let detail = errbuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw CurlFailure.error(rc, what: what, detail: detail, responseCode: code)
        }
        return Reply(code: code)
    }
}

/// The message being uploaded, read by curl's read callback.
final class MailUpload: @unchecked Sendable {
    let data: Data
    var offset = 0
    let flag = CancellationFlag()
    init(data: Data) { self.data = data }
}

private let mailRead: cairn_curl_data_cb = { ptr, size, nmemb, ud in
    let u = Unmanaged<MailUpload>.fromOpaque(ud!).takeUnretainedValue()
    if u.flag.isSet { return cairn_curl_readfunc_abort() }
    let n = min(size * nmemb, u.data.count - u.offset)
    if n <= 0 { return 0 }
    u.data.withUnsafeBytes { raw in
        let src = raw.baseAddress!.advanced(by: u.offset)
        UnsafeMutableRawPointer(ptr!).copyMemory(from: src, byteCount: n)
    }
    u.offset += n
    return n
}

private let mailProgress: cairn_curl_xferinfo_cb = { ud, _, _, _, _ in
    let u = Unmanaged<MailUpload>.fromOpaque(ud!).takeUnretainedValue()
    return u.flag.isSet ? 1 : 0
}
