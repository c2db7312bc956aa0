import Core
import Crypto
import Foundation
import HTTP
import Logging

/// Where and how to reach an S3-compatible bucket.
public struct S3Configuration: Sendable {
    public var bucket: String
    /// Key prefix inside the bucket; every key of the store is relative to it ("" or ends with "/").
    public var prefix: String
    /// Endpoint URL, e.g. `https://ACCOUNT.r2.cloudflarestorage.com`, `http://127.0.0.1:9000`.
    /// nil = AWS (`https://s3.REGION.amazonaws.com`).
    public var endpoint: String?
    /// Signing region; `auto` for Cloudflare R2.
    public var region: String
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted (`bucket.endpoint/key`).
    /// nil = path style for custom endpoints, virtual-hosted for AWS (unless the bucket has dots).
    public var pathStyle: Bool?
    public var caBundle: String?
    public var retry: RetryPolicy
    /// How object bodies are integrity-protected; nil = `PayloadChecksum.automatic(endpoint:)`.
    public var payloadChecksum: PayloadChecksum?

    public init(bucket: String, prefix: String = "", endpoint: String? = nil, region: String = "us-east-1",
                pathStyle: Bool? = nil, caBundle: String? = nil, retry: RetryPolicy = RetryPolicy(),
                payloadChecksum: PayloadChecksum? = nil) {
        self.bucket = bucket
        self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        self.endpoint = endpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.region = region
        self.pathStyle = pathStyle
        self.caBundle = caBundle
        self.retry = retry
        self.payloadChecksum = payloadChecksum
    }

    /// The payload integrity mode in effect for object bodies.
    public var effectivePayloadChecksum: PayloadChecksum { payloadChecksum ?? .automatic(endpoint: endpoint) }

    var usesPathStyle: Bool {
        if let p = pathStyle { return p }
        return endpoint != nil || bucket.contains(".")
    }
}

/// The S3 error code and HTTP status of a refused request, kept as the
/// `cause` of the `CairnError` (callers test `code`, never the message).
/// Its description is the code alone, which the message already names.
public struct S3ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var status: Int
    public var description: String { code }
}

/// An S3 error response, parsed.
struct S3ErrorBody: Sendable {
    var status: Int
    var code: String
    var message: String

    init(status: Int, body: Data) {
        self.status = status
        let x = XMLElement.parse(body)
        let err = x?.name == "Error" ? x : x?.child("Error")
        code = err?["Code"] ?? S3ErrorBody.codeForStatus(status)
        message = err?["Message"] ?? ""
    }

    static func codeForStatus(_ s: Int) -> String {
        switch s {
        case 301: return "PermanentRedirect"
        case 400: return "BadRequest"
        case 403: return "AccessDenied"
        case 404: return "NotFound"
        case 409: return "Conflict"
        case 412: return "PreconditionFailed"
        case 416: return "InvalidRange"
        case 500: return "InternalError"
        case 503: return "ServiceUnavailable"
        default: return "HTTP\(s)"
        }
    }

    static let retryableCodes: Set<String> = ["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                                              "RequestTimeTooSkewed", "ExpiredToken", "OperationAborted"]
    var isRetryable: Bool { [500, 502, 503, 504].contains(status) || Self.retryableCodes.contains(code) }
}

/// S3-compatible object storage: AWS S3, Cloudflare R2, Backblaze B2, MinIO, moto.
public final class S3Store: ObjectStore {
    public let config: S3Configuration
    let credentials: any CredentialsProvider
    let http: HTTPClient
    let logger: Logger

    public init(config: S3Configuration, credentials: any CredentialsProvider, http: HTTPClient? = nil,
                logger: Logger = .cairn("s3")) {
        self.config = config
        self.credentials = credentials
        self.http = http ?? HTTPClient(configuration: .init(caBundle: config.caBundle))
        self.logger = logger
    }

    public var displayName: String { "s3://\(config.bucket)/\(config.prefix)" }

    func location(_ key: String) -> String { "s3://\(config.bucket)/\(config.prefix)\(key)" }

    // MARK: URLs

    var baseURL: String {
        if let e = config.endpoint {
            if config.usesPathStyle { return e }
            // virtual-hosted on a custom endpoint: insert the bucket before the host
            if let r = e.range(of: "://") { return e[..<r.upperBound] + config.bucket + "." + e[r.upperBound...] }
            return e
        }
        let host = "s3.\(config.region).amazonaws.com"
        return config.usesPathStyle ? "https://\(host)" : "https://\(config.bucket).\(host)"
    }

    /// URL for `fullKey` (already including the prefix); `nil` key = the bucket itself.
    func url(fullKey: String?, query: [(String, String?)] = []) -> String {
        var s = baseURL
        let bucketPath = config.usesPathStyle ? "/" + AWSURI.encode(config.bucket, encodeSlash: true) : ""
        if let k = fullKey {
            s += bucketPath + "/" + AWSURI.encode(k, encodeSlash: false)
        } else {
            s += bucketPath + "/"
        }
        if !query.isEmpty {
            s += "?" + query.map { k, v in
                v.map { "\(AWSURI.encode(k, encodeSlash: true))=\(AWSURI.encode($0, encodeSlash: true))" } ?? AWSURI.encode(k, encodeSlash: true)
            }.joined(separator: "&")
        }
        return s
    }

    // MARK: the request path

    struct Request: Sendable {
        var method: String
        var key: String?          // relative key (prefix added here); nil = bucket
        var query: [(String, String?)] = []
        var headers = HTTPHeaders()
        var body: UploadBody? = nil
        var operation: String
        /// Object bodies (PutObject, UploadPart): the store's payload mode.
        /// nil for the small XML bodies of other requests: signed SHA-256
        /// plus Content-MD5 (DeleteObjects requires Content-MD5).
        var integrity: PayloadChecksum? = nil
    }

    /// Content digests of a body, computed off the cooperative pool in one
    /// pass; only the requested ones are set.
    struct BodyDigests: Sendable { var sha256Hex: String?; var md5Base64: String?; var crc32cBase64: String? }

    /// Which digests `mode` sends (SHA-256, MD5, CRC32C); nil = a control
    /// body (SHA-256 + MD5).
    static func wanted(_ mode: PayloadChecksum?) -> (sha256: Bool, md5: Bool, crc32c: Bool) {
        (mode == nil || mode == .sha256, mode == nil || mode == .md5, mode?.carriesCRC32C ?? false)
    }

    /// The digests a body needs: `mode` nil = a control body (SHA-256 + MD5).
    static func digests(of body: UploadBody, mode: PayloadChecksum?) async throws -> BodyDigests {
        let (wantSHA, wantMD5, wantCRC) = wanted(mode)
        return try await runBlocking {
            let sha = wantSHA ? Hasher(.sha256) : nil, md5 = wantMD5 ? Hasher(.md5) : nil
            var crc = CRC32C()
            func update(_ b: UnsafeRawBufferPointer) {
                sha?.update(b); md5?.update(b)
                if wantCRC { crc.update(b) }
            }
            func hashRange(fd: Int32, offset: Int64, length: Int64, name path: String) throws {
                var remaining = length
                var pos = offset
                var buf = [UInt8](repeating: 0, count: 1 << 20)
                while remaining > 0 {
                    let want = Int(min(Int64(buf.count), remaining))
                    let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(pos)) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw CairnError(.io, "cannot read \(path): \(n < 0 ? errnoString() : "file is shorter than expected")") }
                    buf.withUnsafeBytes { update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    remaining -= Int64(n)
                    pos += Int64(n)
                }
            }
            switch body {
            case .data(let d):
                d.withUnsafeBytes { update($0) }
            case .file(let path, let offset, let length):
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw CairnError(.io, "cannot open \(path): \(errnoString())") }
                defer { close(fd) }
                try hashRange(fd: fd, offset: offset, length: length, name: path)
            case .descriptor(let file, let offset, let length):
                try hashRange(fd: file.fd, offset: offset, length: length, name: "the file being uploaded")
            }
            return BodyDigests(sha256Hex: sha?.finalize().hexString, md5Base64: md5?.finalize().base64EncodedString(),
                               crc32cBase64: wantCRC ? crc.base64 : nil)
        }
    }

    /// The caller's digests reduced to what `mode` sends, as `digests(of:mode:)`
    /// would compute them; nil when one it needs is missing (then the body is hashed).
    static func digests(_ d: ContentDigests, mode: PayloadChecksum?) -> BodyDigests? {
        let (wantSHA, wantMD5, wantCRC) = wanted(mode)
        if wantMD5 && d.md5Base64 == nil || wantCRC && d.crc32cBase64 == nil { return nil }
        return BodyDigests(sha256Hex: wantSHA ? d.sha256Hex : nil, md5Base64: wantMD5 ? d.md5Base64 : nil,
                           crc32cBase64: wantCRC ? d.crc32cBase64 : nil)
    }

    static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// Signs and sends one request with retries; returns a 2xx response or throws a mapped error.
    func perform(_ r: Request, expectBody maxBody: Int = 16 << 20, digests known: BodyDigests? = nil,
                 allow: Set<Int> = [], errorIn200: Bool = false) async throws -> HTTPResponse {
        var computed = known
        if computed == nil, let b = r.body { computed = try await Self.digests(of: b, mode: r.integrity) }
        let digests = computed
        let fullKey = r.key.map { config.prefix + $0 }
        let url = url(fullKey: fullKey, query: r.query)
        let loc = r.key.map(location) ?? "s3://\(config.bucket)"
        return try await withRetries(config.retry, classify: Self.classify, onRetry: { [logger] attempt, error, delay in
            logger.warning("retrying S3 request", metadata: ["op": "\(r.operation)", "attempt": "\(attempt)", "error": "\(error)", "delay": "\(String(format: "%.2f", delay))"])
        }) { _ in
            var req = HTTPRequest(method: r.method, url: url, headers: r.headers)
            if let b = r.body, let d = digests {
                switch b {
                case .data(let data): req.body = .data(data)
                case .file(let p, let o, let l): req.body = .file(path: p, offset: o, length: l)
                case .descriptor(let f, let o, let l): req.body = .descriptor(f, offset: o, length: l)
                }
                if let md5 = d.md5Base64 { req.headers["Content-MD5"] = md5 }
                if let crc = d.crc32cBase64 { req.headers["x-amz-checksum-crc32c"] = crc }
            }
            // Without a SHA-256 (crc32c, md5 modes) the body is not signed: TLS protects it in transit.
            let payload = r.body == nil ? Self.emptySHA256 : (digests?.sha256Hex ?? SigV4Signer.unsignedPayload)
            let creds = try await self.credentials.credentials()
            SigV4Signer(credentials: creds, region: self.config.region, service: "s3")
                .sign(&req, payloadSHA256: payload)
            let resp = try await self.http.send(req, maxBodySize: maxBody)
            if errorIn200, resp.status == 200, let x = XMLElement.parse(resp.body), x.name == "Error" {
                throw self.mapError(S3ErrorBody(status: 200, body: resp.body), operation: r.operation, location: loc)
            }
            if resp.isSuccess || allow.contains(resp.status) { return resp }
            throw self.mapError(S3ErrorBody(status: resp.status, body: resp.body), operation: r.operation, location: loc)
        }
    }

    static func classify(_ error: any Error) -> RetryDecision {
        if let e = error as? CairnError, e.isTransient { return .retry }
        return .fail
    }

    /// One-line, secret-free error for an S3 error response.
    func mapError(_ e: S3ErrorBody, operation: String, location: String) -> CairnError {
        let detail = e.message.isEmpty ? "" : ": \(e.message)"
        var err: CairnError
        switch e.code {
        case "NoSuchBucket":
            err = CairnError(.notFound, "\(operation) \(location): bucket \(config.bucket) does not exist (NoSuchBucket)")
        case "NoSuchKey", "NotFound":
            err = CairnError(.notFound, "\(operation) \(location): no such object (\(e.code))")
        case "NoSuchUpload":
            err = CairnError(.notFound, "\(operation) \(location): multipart upload does not exist (NoSuchUpload)")
        case "SignatureDoesNotMatch":
            err = CairnError(.storageAuth, "\(operation) \(location): the secret access key does not match the access key id (SignatureDoesNotMatch)")
        case "InvalidAccessKeyId":
            err = CairnError(.storageAuth, "\(operation) \(location): the access key id is not known to the server (InvalidAccessKeyId)")
        case "AccessDenied", "AllAccessDisabled", "AccountProblem":
            err = CairnError(.storageAuth, "\(operation) \(location): access denied: the credentials lack permission for \(operation) (\(e.code))")
        case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
            err = CairnError(.storageAuth, "\(operation) \(location): the session token is expired or invalid (\(e.code))")
        case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
            err = CairnError(.config, "\(operation) \(location): wrong region or endpoint for bucket \(config.bucket) (\(e.code))\(detail)")
        default:
            err = CairnError(.storage, "\(operation) \(location): \(e.code) (HTTP \(e.status))\(detail)")
        }
        err.isTransient = e.isRetryable
        if err.cause == nil { err.cause = S3ServiceError(code: e.code, status: e.status) }
        return err
    }

    // MARK: ObjectStore

    public func put(key: String, body: UploadBody, options: PutOptions) async throws -> ObjectInfo {
        var r = Request(method: "PUT", key: key, body: body, operation: "PutObject", integrity: config.effectivePayloadChecksum)
        r.headers = headers(for: options)
        let known: BodyDigests?
        if case .data = body, let d = options.digests { known = Self.digests(d, mode: r.integrity) } else { known = nil }
        let resp = try await self.perform(r, digests: known)
        return ObjectInfo(key: key, size: body.length, etag: resp.headers["ETag"], lastModified: Date(),
                          metadata: options.metadata, contentType: options.contentType)
    }

    func headers(for options: PutOptions) -> HTTPHeaders {
        var h = HTTPHeaders()
        h["Content-Type"] = options.contentType ?? "application/octet-stream"
        if let c = options.cacheControl { h["Cache-Control"] = c }
        for (k, v) in options.metadata.sorted(by: { $0.key < $1.key }) { h["x-amz-meta-\(k.lowercased())"] = v }
        if let lock = options.objectLock {
            h["x-amz-object-lock-mode"] = lock.mode.rawValue
            h["x-amz-object-lock-retain-until-date"] = ISO8601.format(lock.retainUntil)
        }
        return h
    }

    public func head(key: String) async throws -> ObjectInfo? {
        let r = Request(method: "HEAD", key: key, operation: "HeadObject")
        let resp = try await self.perform(r, allow: [404])
        if resp.status == 404 { return nil }
        return info(key: key, headers: resp.headers)
    }

    func info(key: String, headers h: HTTPHeaders) -> ObjectInfo {
        var meta: [String: String] = [:]
        for (name, value) in h where name.lowercased().hasPrefix("x-amz-meta-") {
            meta[String(name.lowercased().dropFirst("x-amz-meta-".count))] = value
        }
        return ObjectInfo(key: key, size: Int64(h["Content-Length"] ?? "") ?? 0, etag: h["ETag"],
                          lastModified: h["Last-Modified"].flatMap(HTTPDate.parse), metadata: meta,
                          contentType: h["Content-Type"])
    }

    public func get(key: String, range: ByteRange?) async throws -> ObjectDownload {
        // First response: establishes the object's identity (ETag) and size.
        let first = try await openGet(key: key, start: range?.start ?? 0, end: range?.end, etag: nil)
        var info = info(key: key, headers: first.headers)
        if let cr = first.headers["Content-Range"], let total = cr.split(separator: "/").last.flatMap({ Int64($0) }) {
            info.size = total
        }
        let expected = Int64(first.headers["Content-Length"] ?? "")
        let out = ByteChannel(capacity: 4 << 20)
        let start = range?.start ?? 0
        // The pump resumes after a dropped connection with a ranged GET pinned to the same ETag.
        Task { [self] in
            var current = first.body
            var received: Int64 = 0
            var resumes = 0
            while true {
                do {
                    while let chunk = try await current.receive() {
                        received += Int64(chunk.count)
                        try await out.send(chunk)
                    }
                    if let expected, received < expected {
                        throw CairnError(.network, "GetObject \(location(key)): connection closed after \(received) of \(expected) bytes")
                    }
                    out.finish()
                    return
                } catch {
                    current.cancel()
                    let retryable = Self.classify(error) == .retry
                    if !retryable || resumes >= config.retry.maxAttempts - 1 || Task.isCancelled {
                        out.finish(throwing: error)
                        return
                    }
                    resumes += 1
                    logger.warning("resuming download", metadata: ["key": "\(key)", "offset": "\(start + received)", "error": "\(error)"])
                    do {
                        try await Sleep.for(.milliseconds(Int(config.retry.delay(beforeRetry: resumes, random: Double.random(in: 0..<1)) * 1000)))
                        current = try await openGet(key: key, start: start + received, end: range?.end, etag: info.etag).body
                    } catch {
                        out.finish(throwing: error)
                        return
                    }
                }
            }
        }
        return ObjectDownload(info: info, body: out)
    }

    private func openGet(key: String, start: Int64, end: Int64?, etag: String?) async throws -> HTTPStreamingResponse {
        let loc = location(key)
        let url = url(fullKey: config.prefix + key)
        return try await withRetries(self.config.retry, classify: Self.classify) { _ in
                var req = HTTPRequest(method: "GET", url: url)
                if start > 0 || end != nil { req.headers["Range"] = ByteRange(start: start, end: end).headerValue }
                if let etag { req.headers["If-Match"] = etag }
                let creds = try await self.credentials.credentials()
                SigV4Signer(credentials: creds, region: self.config.region, service: "s3").sign(&req, payloadSHA256: Self.emptySHA256)
                let resp = try await self.http.stream(req)
                if resp.isSuccess { return resp }
                let body = try await resp.collect()
                throw self.mapError(S3ErrorBody(status: resp.status, body: body), operation: "GetObject", location: loc)
            }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        var out: [ObjectInfo] = []
        var token: String? = nil
        repeat {
            var q: [(String, String?)] = [("list-type", "2"), ("prefix", config.prefix + prefix), ("encoding-type", "url")]
            if let t = token { q.append(("continuation-token", t)) }
            let r = Request(method: "GET", key: nil, query: q, operation: "ListObjectsV2")
            let resp = try await self.perform(r)
            guard let x = XMLElement.parse(resp.body) else {
                throw CairnError(.storage, "ListObjectsV2 \(displayName): unparsable response")
            }
            let urlEncoded = x["EncodingType"] == "url"
            for c in x.all("Contents") {
                guard var k = c["Key"] else { continue }
                if urlEncoded { k = AWSURI.decode(k.replacingOccurrences(of: "+", with: " ")) }
                guard k.hasPrefix(config.prefix) else { continue }
                k = String(k.dropFirst(config.prefix.count))
                out.append(ObjectInfo(key: k, size: Int64(c["Size"] ?? "") ?? 0, etag: c["ETag"],
                                      lastModified: c["LastModified"].flatMap(ISO8601.parse)))
            }
            token = x["IsTruncated"] == "true" ? x["NextContinuationToken"] : nil
        } while token != nil
        return out
    }

    /// Every batch is sent even when one key of an earlier batch is refused;
    /// the refused keys are the thrown error's cause (`DeleteFailures`), with
    /// their S3 codes.
    public func delete(keys: [String]) async throws {
        var i = 0
        var failures: [DeleteFailures.Failure] = []
        while i < keys.count {
            let batch = keys[i..<min(i + 1000, keys.count)]
            i += batch.count
            var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            for k in batch { xml += "<Object><Key>\(XMLEscape.escape(config.prefix + k))</Key></Object>" }
            xml += "</Delete>"
            var r = Request(method: "POST", key: nil, query: [("delete", nil)], body: .data(Data(xml.utf8)), operation: "DeleteObjects")
            r.headers["Content-Type"] = "application/xml"
            let resp = try await self.perform(r)
            for e in XMLElement.parse(resp.body)?.all("Error") ?? [] {
                let key = e["Key"] ?? "?"
                failures.append(DeleteFailures.Failure(key: key.hasPrefix(config.prefix) ? String(key.dropFirst(config.prefix.count)) : key,
                                                       code: e["Code"] ?? "Error", message: e["Message"] ?? ""))
            }
        }
        if let first = failures.first {
            let loc = "s3://\(config.bucket)/\(config.prefix)\(first.key)"
            var err = mapError(S3ErrorBody(status: first.code == "AccessDenied" ? 403 : 400,
                                           body: Data("<Error><Code>\(XMLEscape.escape(first.code))</Code><Message>\(XMLEscape.escape(first.message))</Message></Error>".utf8)),
                               operation: "DeleteObjects", location: loc)
            if failures.count > 1 { err.message += " (and \(failures.count - 1) more key(s) not deleted)" }
            err.cause = DeleteFailures(failures: failures)
            throw err
        }
    }

    public func createMultipartUpload(key: String, options: PutOptions) async throws -> String {
        var r = Request(method: "POST", key: key, query: [("uploads", nil)], body: .data(Data()), operation: "CreateMultipartUpload")
        r.headers = headers(for: options)
        // Parts carry x-amz-checksum-crc32c: S3 refuses them unless the upload declares the algorithm.
        if config.effectivePayloadChecksum.carriesCRC32C { r.headers["x-amz-checksum-algorithm"] = "CRC32C" }
        let resp = try await self.perform(r)
        guard let id = XMLElement.parse(resp.body)?["UploadId"], !id.isEmpty else {
            throw CairnError(.storage, "CreateMultipartUpload \(location(key)): no UploadId in response")
        }
        return id
    }

    public func uploadPart(key: String, uploadId: String, partNumber: Int, body: UploadBody) async throws -> CompletedPart {
        let mode = config.effectivePayloadChecksum
        let r = Request(method: "PUT", key: key, query: [("partNumber", String(partNumber)), ("uploadId", uploadId)],
                        body: body, operation: "UploadPart", integrity: mode)
        let digests = try await Self.digests(of: body, mode: mode)
        let resp = try await self.perform(r, digests: digests)
        guard let etag = resp.headers["ETag"] else {
            throw CairnError(.storage, "UploadPart \(location(key)) part \(partNumber): no ETag in response")
        }
        return CompletedPart(partNumber: partNumber, etag: etag, size: body.length, checksumCRC32C: digests.crc32cBase64)
    }

    public func completeMultipartUpload(key: String, uploadId: String, parts: [CompletedPart]) async throws -> ObjectInfo {
        var parts = parts
        // An upload that declared CRC32C must list every part's checksum. Parts known only
        // from a checkpoint (a resumed migration) lack it: the server's ListParts has it.
        if config.effectivePayloadChecksum.carriesCRC32C, parts.contains(where: { $0.checksumCRC32C == nil }) {
            let listed = Dictionary(try await listParts(key: key, uploadId: uploadId).map { ($0.partNumber, $0) }, uniquingKeysWith: { a, _ in a })
            parts = parts.map { p in
                var p = p
                if p.checksumCRC32C == nil, let l = listed[p.partNumber], l.etag == p.etag { p.checksumCRC32C = l.checksumCRC32C }
                return p
            }
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for p in parts.sorted(by: { $0.partNumber < $1.partNumber }) {
            let crc = p.checksumCRC32C.map { "<ChecksumCRC32C>\(XMLEscape.escape($0))</ChecksumCRC32C>" } ?? ""
            xml += "<Part><PartNumber>\(p.partNumber)</PartNumber><ETag>\(XMLEscape.escape(p.etag))</ETag>\(crc)</Part>"
        }
        xml += "</CompleteMultipartUpload>"
        var r = Request(method: "POST", key: key, query: [("uploadId", uploadId)], body: .data(Data(xml.utf8)),
                        operation: "CompleteMultipartUpload")
        r.headers["Content-Type"] = "application/xml"
        let loc = location(key)
        // A 200 can carry an error in its body: perform treats it like an error status.
        let resp = try await perform(r, errorIn200: true)
        guard let x = XMLElement.parse(resp.body), x.name != "Error", x["ETag"] != nil else {
            throw CairnError(.storage, "CompleteMultipartUpload \(loc): unexpected response")
        }
        return ObjectInfo(key: key, size: parts.reduce(0) { $0 + $1.size }, etag: x["ETag"], lastModified: Date())
    }

    public func abortMultipartUpload(key: String, uploadId: String) async throws {
        let r = Request(method: "DELETE", key: key, query: [("uploadId", uploadId)], operation: "AbortMultipartUpload")
        _ = try await self.perform(r, allow: [404])
    }

    public func listParts(key: String, uploadId: String) async throws -> [CompletedPart] {
        var out: [CompletedPart] = []
        var marker: String? = nil
        repeat {
            var q: [(String, String?)] = [("uploadId", uploadId)]
            if let m = marker { q.append(("part-number-marker", m)) }
            let r = Request(method: "GET", key: key, query: q, operation: "ListParts")
            let resp = try await self.perform(r)
            guard let x = XMLElement.parse(resp.body) else { throw CairnError(.storage, "ListParts \(location(key)): unparsable response") }
            for p in x.all("Part") {
                guard let n = p["PartNumber"].flatMap({ Int($0) }), let e = p["ETag"] else { continue }
                out.append(CompletedPart(partNumber: n, etag: e, size: Int64(p["Size"] ?? "") ?? 0, checksumCRC32C: p["ChecksumCRC32C"]))
            }
            marker = x["IsTruncated"] == "true" ? x["NextPartNumberMarker"] : nil
        } while marker != nil
        return out
    }

    public func listMultipartUploads(prefix: String) async throws -> [MultipartUploadInfo] {
        var out: [MultipartUploadInfo] = []
        var keyMarker: String? = nil, idMarker: String? = nil
        repeat {
            var q: [(String, String?)] = [("uploads", nil), ("prefix", config.prefix + prefix)]
            if let k = keyMarker { q.append(("key-marker", k)) }
            if let u = idMarker { q.append(("upload-id-marker", u)) }
            let r = Request(method: "GET", key: nil, query: q, operation: "ListMultipartUploads")
            let resp = try await self.perform(r)
            guard let x = XMLElement.parse(resp.body) else { throw CairnError(.storage, "ListMultipartUploads \(displayName): unparsable response") }
            for u in x.all("Upload") {
                guard let k = u["Key"], let id = u["UploadId"], k.hasPrefix(config.prefix) else { continue }
                out.append(MultipartUploadInfo(key: String(k.dropFirst(config.prefix.count)), uploadId: id,
                                               initiated: u["Initiated"].flatMap(ISO8601.parse)))
            }
            if x["IsTruncated"] == "true" {
                keyMarker = x["NextKeyMarker"]; idMarker = x["NextUploadIdMarker"]
            } else {
                keyMarker = nil
            }
        } while keyMarker != nil
        return out
    }

    /// Creates the bucket (for tests and first-time set-up; an existing bucket
    /// owned by these credentials is not an error).
    public func createBucket() async throws {
        var body = Data()
        if config.region != "us-east-1" && config.region != "auto" {
            body = Data("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(config.region)</LocationConstraint></CreateBucketConfiguration>".utf8)
        }
        let r = Request(method: "PUT", key: nil, body: .data(body), operation: "CreateBucket")
        do {
            _ = try await perform(r)
        } catch let e as CairnError where e.message.contains("BucketAlreadyOwnedByYou") {
            return
        }
    }

    /// A presigned URL for `key` (GET or PUT), valid for `expires` seconds (≤ 7 days).
    public func presignedURL(key: String, method: String = "GET", expires: Int = 3600) async throws -> String {
        let creds = try await credentials.credentials()
        return SigV4Signer(credentials: creds, region: config.region, service: "s3")
            .presign(method: method, url: url(fullKey: config.prefix + key), expires: expires)
    }

}

enum ISO8601 {
    static func format(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }
    static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }
}

enum HTTPDate {
    static func parse(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }
}
