import CLinux
import Foundation

/// How the body of an object upload (PutObject, UploadPart) is protected
/// end to end, so that a part damaged between Cairn's buffer and the
/// server's disk is refused by the server. docs/ARCHITECTURE.md ("Payload
/// integrity") has the reasoning and the sources.
///
/// - `sha256`: the body's SHA-256 in `x-amz-content-sha256`, covered by the
///   SigV4 signature. S3 recomputes it and refuses a mismatch
///   (`XAmzContentSHA256Mismatch`). The only mode that also protects the body
///   from tampering when there is no TLS: the default for `http://` endpoints.
///   Bodies also carry `x-amz-checksum-crc32c` and multipart uploads declare
///   CRC32C, as in `crc32c` (what AWS SDKs do over plain HTTP too): an upload
///   that declares no algorithm gets a full-object CRC64NVME computed by the
///   server over the whole object at completion (S3's default since 2025;
///   moto computes it over a copy of the object, which cost it ~40 % more
///   CPU per GiB than awscli's uploads: docs/BENCHMARKS.md).
/// - `crc32c`: `x-amz-content-sha256: UNSIGNED-PAYLOAD` (TLS protects the
///   body in transit) and `x-amz-checksum-crc32c`, which S3, R2 and MinIO
///   verify (`BadDigest`); multipart uploads declare
///   `x-amz-checksum-algorithm: CRC32C` and list each part's CRC32C on
///   completion. What AWS SDKs send over TLS (with CRC32). The default for
///   `https://` endpoints.
/// - `md5`: `UNSIGNED-PAYLOAD` and `Content-MD5`. For S3-compatible servers
///   that refuse `x-amz-checksum-*` headers: the default for Backblaze B2
///   (`*.backblazeb2.com`).
public enum PayloadChecksum: String, Sendable, CaseIterable {
    case sha256
    case crc32c
    case md5

    /// Whether bodies carry `x-amz-checksum-crc32c` and multipart uploads
    /// declare `x-amz-checksum-algorithm: CRC32C` (all modes but `md5`).
    public var carriesCRC32C: Bool { self != .md5 }

    /// The mode for an endpoint URL (nil = AWS, which is https).
    public static func automatic(endpoint: String?) -> PayloadChecksum {
        guard let e = endpoint?.lowercased() else { return .crc32c }
        if !e.hasPrefix("https://") { return .sha256 }
        let afterScheme = e.dropFirst("https://".count)
        let hostPort = afterScheme.prefix(while: { $0 != "/" })
        let host = hostPort.split(separator: ":").first.map(String.init) ?? ""
        if host == "backblazeb2.com" || host.hasSuffix(".backblazeb2.com") { return .md5 }
        return .crc32c
    }
}

/// CRC32C (Castagnoli), as S3's `x-amz-checksum-crc32c` carries it.
public struct CRC32C: Sendable {
    public private(set) var value: UInt32 = 0
    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        value = cairn_crc32c(value, base, bytes.count)
    }

    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { update($0) }
    }

    /// Base64 of the four big-endian bytes.
    public var base64: String {
        let v = value
        return Data([UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]).base64EncodedString()
    }

    /// Whether the SSE4.2 instruction is used (else a table).
    public static var usesHardware: Bool { cairn_crc32c_hardware() != 0 }
}
