import CCurl
import Core
import Foundation
import Logging

/// The only user of libcurl. Requests run on dedicated threads of the
/// `BlockingPool` (curl_easy_perform blocks), bodies stream through bounded
/// `ByteChannel`s, and easy handles are pooled so connections are reused.
///
/// Behaviour every caller gets:
/// - TLS peer and host verification always on; an optional CA bundle
///   (`caBundle`, e.g. from `AWS_CA_BUNDLE`).
/// - An empty `Expect:` header (no 100-continue: Cloudflare R2 does not do it).
/// - Connect timeout and a low-speed timeout (abort when fewer than
///   `lowSpeedLimit` bytes/s flow for `lowSpeedTime` seconds).
/// - HTTP proxies from the environment (`http_proxy`, `https_proxy`,
///   `no_proxy`), as curl reads them.
/// - Task cancellation aborts the transfer.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: TimeInterval
        public var lowSpeedLimit: Int
        public var lowSpeedTime: TimeInterval
        /// Total time limit per request; nil = none (large transfers).
        public var requestTimeout: TimeInterval?
        public var caBundle: String?
        public var userAgent: String
        public var maxIdleHandles: Int

        public init(connectTimeout: TimeInterval = 10, lowSpeedLimit: Int = 1, lowSpeedTime: TimeInterval = 120,
                    requestTimeout: TimeInterval? = nil, caBundle: String? = nil,
                    userAgent: String = "cairn", maxIdleHandles: Int = 32) {
            self.connectTimeout = connectTimeout
            self.lowSpeedLimit = lowSpeedLimit
            self.lowSpeedTime = lowSpeedTime
            self.requestTimeout = requestTimeout
            self.caBundle = caBundle
            self.userAgent = userAgent
            self.maxIdleHandles = maxIdleHandles
        }
    }

    public let configuration: Configuration
    private let pool: HandlePool

    public init(configuration: Configuration = Configuration()) {
        _ = CurlGlobal.initialized
        self.configuration = configuration
        self.pool = HandlePool(maxIdle: configuration.maxIdleHandles)
    }

    /// Sends a request and buffers the whole response body (at most `maxBodySize` bytes).
    public func send(_ request: HTTPRequest, maxBodySize: Int = 16 << 20) async throws -> HTTPResponse {
        let ctx = TransferContext(request: request, mode: .buffered(limit: maxBodySize))
        try await withTaskCancellationHandler {
            try await BlockingPool.shared.run { [self] in try self.perform(ctx) }
        } onCancel: {
            ctx.flag.set()
        }
        return HTTPResponse(status: ctx.status, headers: ctx.headers, body: ctx.buffer)
    }

    /// Sends a request and returns as soon as the response head has arrived.
    /// A 2xx body streams through the returned channel (at most `bufferSize`
    /// bytes buffered; a slow reader slows the download). A non-2xx body is
    /// buffered (≤ 1 MiB) and complete. Cancelling the channel aborts the transfer.
    public func stream(_ request: HTTPRequest, bufferSize: Int = 4 << 20) async throws -> HTTPStreamingResponse {
        let channel = ByteChannel(capacity: bufferSize)
        let ctx = TransferContext(request: request, mode: .streaming(channel))
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPStreamingResponse, any Error>) in
                ctx.headContinuation = cont
                BlockingPool.shared.submit { [self] in
                    do {
                        try self.perform(ctx)
                        if let c = ctx.takeHeadContinuation() {
                            // Head never delivered during the transfer (empty or non-2xx body).
                            if !ctx.buffer.isEmpty { try? channel.sendBlocking(ctx.buffer) }
                            channel.finish()
                            c.resume(returning: HTTPStreamingResponse(status: ctx.status, headers: ctx.headers, body: channel))
                        } else {
                            channel.finish()
                        }
                    } catch {
                        if let c = ctx.takeHeadContinuation() {
                            c.resume(throwing: error)
                        } else {
                            channel.finish(throwing: error)
                        }
                    }
                }
            }
        } onCancel: {
            ctx.flag.set()
        }
    }

    // MARK: - the blocking part

    private func perform(_ ctx: TransferContext) throws {
        let handle = try pool.take()
        // Even after an error the handle is fine to reuse: curl drops broken
        // connections from its cache by itself.
        defer { pool.give(handle) }
        let h = handle.raw
        let req = ctx.request
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }

        var errbuf = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        try ctx.openBody()
        defer { ctx.closeBody() }

        func check(_ rc: CURLcode, _ what: String) throws {
            if rc != CURLE_OK {
                throw CairnError(.internal, "curl option \(what) failed: \(String(cString: curl_easy_strerror(rc)))")
            }
        }
        try check(cairn_curl_setopt_str(h, CURLOPT_URL, req.url), "URL")
        try check(cairn_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1), "NOSIGNAL")
        try check(cairn_curl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0), "FOLLOWLOCATION")
        // Send the path exactly as given: S3 keys may contain "/./" or "/../".
        try check(cairn_curl_setopt_long(h, CURLOPT_PATH_AS_IS, 1), "PATH_AS_IS")
        try check(cairn_curl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1), "SSL_VERIFYPEER")
        try check(cairn_curl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2), "SSL_VERIFYHOST")
        if let ca = configuration.caBundle { try check(cairn_curl_setopt_str(h, CURLOPT_CAINFO, ca), "CAINFO") }
        try check(cairn_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout * 1000)), "CONNECTTIMEOUT")
        try check(cairn_curl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedLimit), "LOW_SPEED_LIMIT")
        try check(cairn_curl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, Int(configuration.lowSpeedTime)), "LOW_SPEED_TIME")
        if let t = configuration.requestTimeout { try check(cairn_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(t * 1000)), "TIMEOUT") }
        try check(cairn_curl_setopt_str(h, CURLOPT_USERAGENT, configuration.userAgent), "USERAGENT")
        try check(cairn_curl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1), "TCP_KEEPALIVE")
        // Larger transfer buffers: fewer callbacks and syscalls for MiB-sized bodies.
        try check(cairn_curl_setopt_long(h, CURLOPT_UPLOAD_BUFFERSIZE, 512 << 10), "UPLOAD_BUFFERSIZE")
        try check(cairn_curl_setopt_long(h, CURLOPT_BUFFERSIZE, 256 << 10), "BUFFERSIZE")
        try errbuf.withUnsafeMutableBufferPointer { try check(cairn_curl_setopt_ptr(h, CURLOPT_ERRORBUFFER, $0.baseAddress), "ERRORBUFFER") }

        let method = req.method.uppercased()
        let hasBody = req.body.length > 0 || method == "PUT" || method == "POST"
        if method == "HEAD" {
            try check(cairn_curl_setopt_long(h, CURLOPT_NOBODY, 1), "NOBODY")
        } else if hasBody {
            try check(cairn_curl_setopt_long(h, CURLOPT_UPLOAD, 1), "UPLOAD")
            try check(cairn_curl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(req.body.length)), "INFILESIZE")
            if method != "PUT" { try check(cairn_curl_setopt_str(h, CURLOPT_CUSTOMREQUEST, method), "CUSTOMREQUEST") }
        } else if method != "GET" {
            try check(cairn_curl_setopt_str(h, CURLOPT_CUSTOMREQUEST, method), "CUSTOMREQUEST")
        }

        for (name, value) in req.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        headerList = curl_slist_append(headerList, "Expect:")
        if hasBody && req.headers["Content-Type"] == nil {
            headerList = curl_slist_append(headerList, "Content-Type:")
        }
        try check(cairn_curl_setopt_slist(h, CURLOPT_HTTPHEADER, headerList), "HTTPHEADER")

        let ud = Unmanaged.passUnretained(ctx).toOpaque()
        try check(cairn_curl_setopt_datacb(h, CURLOPT_WRITEFUNCTION, curlWrite), "WRITEFUNCTION")
        try check(cairn_curl_setopt_ptr(h, CURLOPT_WRITEDATA, ud), "WRITEDATA")
        try check(cairn_curl_setopt_datacb(h, CURLOPT_HEADERFUNCTION, curlHeader), "HEADERFUNCTION")
        try check(cairn_curl_setopt_ptr(h, CURLOPT_HEADERDATA, ud), "HEADERDATA")
        if hasBody {
            try check(cairn_curl_setopt_datacb(h, CURLOPT_READFUNCTION, curlRead), "READFUNCTION")
            try check(cairn_curl_setopt_ptr(h, CURLOPT_READDATA, ud), "READDATA")
            // A connection that dies after (part of) the body went out is
            // retried by curl itself when it can rewind the body: data and
            // file bodies can, a streamed one cannot (the retry layer redoes it).
            try check(cairn_curl_setopt_seekcb(h, CURLOPT_SEEKFUNCTION, curlSeek), "SEEKFUNCTION")
            try check(cairn_curl_setopt_ptr(h, CURLOPT_SEEKDATA, ud), "SEEKDATA")
        }
        try check(cairn_curl_setopt_long(h, CURLOPT_NOPROGRESS, 0), "NOPROGRESS")
        try check(cairn_curl_setopt_xfercb(h, CURLOPT_XFERINFOFUNCTION, curlProgress), "XFERINFOFUNCTION")
        try check(cairn_curl_setopt_ptr(h, CURLOPT_XFERINFODATA, ud), "XFERINFODATA")
        ctx.easy = h

        let rc = curl_easy_perform(h)
        ctx.easy = nil
        if rc != CURLE_OK {
            let detail = errbuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw ctx.failure(for: rc, detail: detail)
        }
        var code: Int = 0
        _ = cairn_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &code)
        ctx.status = code
    }
}

// MARK: - curl global state and handles

enum CurlGlobal {
    static let initialized: Void = {
        let rc = curl_global_init(Int(CURL_GLOBAL_ALL))
        precondition(rc == CURLE_OK, "curl_global_init failed")
        // With CURLOPT_NOSIGNAL (required with threads) curl leaves SIGPIPE
        // to the application: some writes (TLS corner cases) can still raise it.
        _ = ProcessSignals.ignoreSIGPIPE
    }()
}

/// Owns one CURL easy handle.
final class CurlHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    init() throws {
        guard let h = curl_easy_init() else { throw CairnError(.internal, "curl_easy_init failed") }
        raw = h
    }
    deinit { curl_easy_cleanup(raw) }
}

/// Idle easy handles, kept so their connection caches are reused.
final class HandlePool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [CurlHandle] = []
    private let maxIdle: Int
    init(maxIdle: Int) { self.maxIdle = maxIdle }

    func take() throws -> CurlHandle {
        lock.lock()
        if let h = idle.popLast() { lock.unlock(); curl_easy_reset(h.raw); return h }
        lock.unlock()
        return try CurlHandle()
    }

    func give(_ h: CurlHandle) {
        lock.lock()
        if idle.count < maxIdle { idle.append(h) }
        lock.unlock()
    }
}

// MARK: - per-transfer state, touched only by the transfer's thread (and `flag`)

final class TransferContext: @unchecked Sendable {
    enum Mode { case buffered(limit: Int), streaming(ByteChannel) }

    let request: HTTPRequest
    let mode: Mode
    let flag = CancellationFlag()
    var easy: UnsafeMutableRawPointer?

    var status = 0
    var headers = HTTPHeaders()
    var buffer = Data()
    var bodyError: (any Error)?
    var overLimit = false

    // request body state
    var sent: Int64 = 0
    var fd: Int32 = -1
    var pending = Data()
    var pendingOffset = 0

    private let headLock = NSLock()
    var headContinuation: CheckedContinuation<HTTPStreamingResponse, any Error>?

    init(request: HTTPRequest, mode: Mode) {
        self.request = request
        self.mode = mode
    }

    func takeHeadContinuation() -> CheckedContinuation<HTTPStreamingResponse, any Error>? {
        headLock.lock(); defer { headLock.unlock() }
        let c = headContinuation
        headContinuation = nil
        return c
    }

    func openBody() throws {
        if case .file(let path, let offset, _) = request.body {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw CairnError(.io, "cannot open \(path): \(errnoString())") }
            if lseek(fd, off_t(offset), SEEK_SET) < 0 {
                let e = errnoString()
                close(fd); fd = -1
                throw CairnError(.io, "cannot seek \(path): \(e)")
            }
        }
    }

    func closeBody() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    /// Fills `dst` with up to `max` bytes of the request body; 0 = end.
    func readBody(into dst: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        let remaining = request.body.length - sent
        if remaining <= 0 { return 0 }
        let want = Int(Swift.min(Int64(max), remaining))
        var n = 0
        switch request.body {
        case .empty:
            return 0
        case .data(let d):
            let start = d.startIndex + Int(sent)
            d.copyBytes(to: UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt8.self), from: start..<start + want)
            n = want
        case .file(let path, _, _):
            while true {
                let r = read(fd, dst, want)
                if r < 0 && errno == EINTR { continue }
                if r < 0 { bodyError = CairnError(.io, "cannot read \(path): \(errnoString())"); return -1 }
                if r == 0 { bodyError = CairnError(.io, "\(path) is shorter than expected (changed while uploading?)"); return -1 }
                n = r
                break
            }
        case .descriptor(let file, let start, _):
            do {
                n = try file.read(into: dst, count: want, at: start + sent)
            } catch {
                bodyError = CairnError(.io, "cannot read the file being uploaded: \(error)", cause: error as? SyscallError)
                return -1
            }
            if n == 0 { bodyError = CairnError(.io, "the file being uploaded is shorter than expected (changed while uploading?)"); return -1 }
        case .channel(let ch, _):
            while pendingOffset >= pending.count {
                do {
                    guard let d = try ch.receiveBlocking() else {
                        bodyError = CairnError(.internal, "request body stream ended \(remaining) bytes early")
                        return -1
                    }
                    pending = d
                    pendingOffset = 0
                } catch {
                    bodyError = error
                    return -1
                }
            }
            n = Swift.min(want, pending.count - pendingOffset)
            pending.withUnsafeBytes { src in
                UnsafeMutableRawPointer(dst).copyMemory(from: src.baseAddress! + pendingOffset, byteCount: n)
            }
            pendingOffset += n
        }
        sent += Int64(n)
        return n
    }

    /// Moves the body back to `offset` for curl to send it again; false for
    /// a streamed body, whose bytes are gone.
    func rewindBody(to offset: Int64) -> Bool {
        guard offset >= 0, offset <= request.body.length else { return false }
        switch request.body {
        case .empty:
            return offset == 0
        case .data:
            sent = offset
            return true
        case .file(_, let start, _):
            guard fd >= 0, lseek(fd, off_t(start + offset), SEEK_SET) >= 0 else { return false }
            sent = offset
            return true
        case .descriptor:
            sent = offset
            return true
        case .channel:
            return offset == sent
        }
    }

    func header(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            headers = HTTPHeaders()  // a new response (after 100 Continue or a redirect)
            let parts = trimmed.split(separator: " ", maxSplits: 2)
            if parts.count >= 2, let c = Int(parts[1]) { status = c }
            return
        }
        guard let colon = trimmed.firstIndex(of: ":") else { return }
        let name = String(trimmed[..<colon]).trimmingCharacters(in: .whitespaces)
        let value = String(trimmed[trimmed.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        headers.add(name, value)
    }

    /// Accepts response body bytes; false aborts the transfer.
    func write(_ data: Data) -> Bool {
        switch mode {
        case .buffered(let limit):
            if buffer.count + data.count > limit { overLimit = true; return false }
            buffer.append(data)
            return true
        case .streaming(let channel):
            if (200..<300).contains(status) {
                if let c = takeHeadContinuation() {
                    c.resume(returning: HTTPStreamingResponse(status: status, headers: headers, body: channel))
                }
                do { try channel.sendBlocking(data) } catch { bodyError = error; return false }
                return true
            }
            if buffer.count < (1 << 20) { buffer.append(data.prefix((1 << 20) - buffer.count)) }
            return true
        }
    }

    func failure(for rc: CURLcode, detail: String) -> any Error {
        let what = "\(request.method) \(request.redactedURL)"
        if flag.isSet { return CancellationError() }
        if let e = bodyError { return e }
        if overLimit { return CairnError(.storage, "\(what): response body larger than expected") }
        return CurlFailure.error(rc, what: what, detail: detail)
    }
}

// MARK: - C callbacks (no captures, so they convert to C function pointers)

private let curlWrite: cairn_curl_data_cb = { ptr, size, nmemb, ud in
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud!).takeUnretainedValue()
    let n = size * nmemb
    if ctx.flag.isSet { return 0 }
    if ctx.status == 0, let easy = ctx.easy {
        var code: Int = 0
        _ = cairn_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
        ctx.status = code
    }
    let data = Data(bytes: ptr!, count: n)
    return ctx.write(data) ? n : 0
}

private let curlHeader: cairn_curl_data_cb = { ptr, size, nmemb, ud in
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud!).takeUnretainedValue()
    let n = size * nmemb
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
    ctx.header(line)
    return n
}

private let curlRead: cairn_curl_data_cb = { ptr, size, nmemb, ud in
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud!).takeUnretainedValue()
    if ctx.flag.isSet { return cairn_curl_readfunc_abort() }
    let r = ctx.readBody(into: ptr!, max: size * nmemb)
    return r < 0 ? cairn_curl_readfunc_abort() : r
}

private let curlSeek: cairn_curl_seek_cb = { ud, offset, origin in
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud!).takeUnretainedValue()
    guard origin == SEEK_SET else { return cairn_curl_seekfunc_cantseek() }
    return ctx.rewindBody(to: Int64(offset)) ? cairn_curl_seekfunc_ok() : cairn_curl_seekfunc_cantseek()
}

private let curlProgress: cairn_curl_xferinfo_cb = { ud, _, _, _, _ in
    let ctx = Unmanaged<TransferContext>.fromOpaque(ud!).takeUnretainedValue()
    return ctx.flag.isSet ? 1 : 0
}
