import Foundation
import Core

/// What a listing or HEAD says about an object.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: Int64
    public var etag: String?
    public var lastModified: Date?
    /// User metadata (`x-amz-meta-*` without the prefix, lower-cased names); HEAD/GET only.
    public var metadata: [String: String]
    public var contentType: String?

    public init(key: String, size: Int64, etag: String? = nil, lastModified: Date? = nil,
                metadata: [String: String] = [:], contentType: String? = nil) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
        self.metadata = metadata
        self.contentType = contentType
    }
}

/// S3 Object Lock settings applied on put and multipart create.
public struct ObjectLock: Sendable, Equatable {
    public enum Mode: String, Sendable { case governance = "GOVERNANCE", compliance = "COMPLIANCE" }
    public var mode: Mode
    public var retainUntil: Date
    public init(mode: Mode, retainUntil: Date) { self.mode = mode; self.retainUntil = retainUntil }
}

public struct PutOptions: Sendable, Equatable {
    public var contentType: String?
    public var cacheControl: String?
    /// User metadata, sent as `x-amz-meta-NAME`.
    public var metadata: [String: String]
    public var objectLock: ObjectLock?
    /// Digests of a `.data` body that the caller computed from the same bytes
    /// (the migration hashes each small file as it reads it). `S3Store.put`
    /// uses them instead of hashing the body a second time when they cover what
    /// its payload-checksum mode sends; otherwise, and for other bodies, it
    /// computes its own. A wrong digest is refused by the server (BadDigest,
    /// XAmzContentSHA256Mismatch), never stored.
    public var digests: ContentDigests?
    public init(contentType: String? = nil, cacheControl: String? = nil, metadata: [String: String] = [:], objectLock: ObjectLock? = nil,
                digests: ContentDigests? = nil) {
        self.contentType = contentType
        self.cacheControl = cacheControl
        self.metadata = metadata
        self.objectLock = objectLock
        self.digests = digests
    }
}

/// Content digests of an upload body, as the caller computed them.
public struct ContentDigests: Sendable, Equatable {
    /// Lowercase hex SHA-256.
    public var sha256Hex: String
    /// Base64 of the MD5 (as `Content-MD5` carries it).
    public var md5Base64: String?
    /// Base64 of the big-endian CRC32C (as `x-amz-checksum-crc32c` carries it).
    public var crc32cBase64: String?
    public init(sha256Hex: String, md5Base64: String? = nil, crc32cBase64: String? = nil) {
        self.sha256Hex = sha256Hex
        self.md5Base64 = md5Base64
        self.crc32cBase64 = crc32cBase64
    }
}

/// A body to upload. Its length is always known up front.
public enum UploadBody: Sendable {
    case data(Data)
    case file(path: String, offset: Int64, length: Int64)
    /// A range of an already open file (read with `pread`; the migration
    /// opens each file once and sends exactly what it checked).
    case descriptor(OpenFile, offset: Int64, length: Int64)

    public var length: Int64 {
        switch self {
        case .data(let d): return Int64(d.count)
        case .file(_, _, let l): return l
        case .descriptor(_, _, let l): return l
        }
    }
}

public struct CompletedPart: Sendable, Equatable {
    public var partNumber: Int
    public var etag: String
    public var size: Int64
    /// The part's CRC32C (base64) when it was sent with one (S3 stores with
    /// every `PayloadChecksum` but `md5`); CompleteMultipartUpload lists it.
    public var checksumCRC32C: String?
    public init(partNumber: Int, etag: String, size: Int64, checksumCRC32C: String? = nil) {
        self.partNumber = partNumber; self.etag = etag; self.size = size; self.checksumCRC32C = checksumCRC32C
    }
}

public struct MultipartUploadInfo: Sendable, Equatable {
    public var key: String
    public var uploadId: String
    public var initiated: Date?
    public init(key: String, uploadId: String, initiated: Date?) { self.key = key; self.uploadId = uploadId; self.initiated = initiated }
}

/// A byte range for GET, inclusive start, optional inclusive end (`bytes=start-end`).
public struct ByteRange: Sendable, Equatable {
    public var start: Int64
    public var end: Int64?
    public init(start: Int64, end: Int64? = nil) { self.start = start; self.end = end }
    public var headerValue: String { "bytes=\(start)-\(end.map(String.init) ?? "")" }
}

/// A streaming download: `info` from the response headers (`info.size` is the
/// whole object's size, also for a ranged GET), `body` the bytes.
public struct ObjectDownload: Sendable {
    public var info: ObjectInfo
    public var body: ByteChannel
    public init(info: ObjectInfo, body: ByteChannel) { self.info = info; self.body = body }
}

/// The storage every job reads and writes: S3-compatible object stores and a
/// local directory. Keys are arbitrary UTF-8 strings using `/` as separator.
///
/// Errors are `CairnError`s whose messages name the store, bucket and key:
/// `.notFound` for a missing key or bucket, `.storageAuth` for rejected
/// credentials or permissions, `.storage` for other refusals, `.network` /
/// `.timeout` once retries are exhausted.
public protocol ObjectStore: Sendable {
    /// A human-readable location, e.g. `s3://bucket/prefix` or `file:///srv/backups` (no secrets).
    var displayName: String { get }

    func put(key: String, body: UploadBody, options: PutOptions) async throws -> ObjectInfo
    /// Streams an object; the returned channel yields its bytes. The whole
    /// object, or the given range.
    func get(key: String, range: ByteRange?) async throws -> ObjectDownload
    /// nil when the object does not exist.
    func head(key: String) async throws -> ObjectInfo?
    /// Every object under `prefix`, all pages, in key order.
    func list(prefix: String) async throws -> [ObjectInfo]
    /// Deletes keys (batches internally); missing keys are not an error.
    func delete(keys: [String]) async throws

    func createMultipartUpload(key: String, options: PutOptions) async throws -> String
    func uploadPart(key: String, uploadId: String, partNumber: Int, body: UploadBody) async throws -> CompletedPart
    func completeMultipartUpload(key: String, uploadId: String, parts: [CompletedPart]) async throws -> ObjectInfo
    func abortMultipartUpload(key: String, uploadId: String) async throws
    func listParts(key: String, uploadId: String) async throws -> [CompletedPart]
    func listMultipartUploads(prefix: String) async throws -> [MultipartUploadInfo]
}

extension ObjectStore {
    public func put(key: String, data: Data, options: PutOptions = PutOptions()) async throws -> ObjectInfo {
        try await put(key: key, body: .data(data), options: options)
    }

    /// Reads a whole (small) object into memory, refusing more than `limit` bytes.
    public func getData(key: String, limit: Int = 64 << 20) async throws -> Data {
        let dl = try await get(key: key, range: nil)
        var out = Data()
        while let chunk = try await dl.body.receive() {
            out.append(chunk)
            if out.count > limit {
                dl.body.cancel()
                throw CairnError(.integrity, "\(displayName): object \(key) is larger than \(limit) bytes")
            }
        }
        return out
    }
}
