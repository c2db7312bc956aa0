import Core
import Foundation
import Pipeline

/// One stored object of a backup (the dump, or the globals script).
public struct BackupObject: Codable, Sendable, Equatable {
    public var key: String
    public var plaintextSize: Int64
    /// SHA-256 of the plaintext (the pg_dump archive): written by Cairn
    /// before issue 15, no longer (nil, absent from the JSON). The plaintext
    /// is the zstd decompression of the authenticated AES-GCM stream, whose
    /// frame checksum zstd verifies: see docs/FORMAT.md §9. A manifest that
    /// has it is still checked against it at restore.
    public var plaintextSHA256: String?
    public var ciphertextSize: Int64
    public var ciphertextSHA256: String
    public var partSize: Int
    public var partCount: Int
    public var etag: String?
}

/// The proof that a backup is complete: written last, next to the dump, as
/// `<prefix>/<id>.manifest.json`. Anything without a manifest is garbage.
///
/// Format 2 (written now) is stored with a MAC (`ManifestAuthenticator`) and
/// its objects are encrypted streams of version 2, whose header names the
/// backup (`streamContext`). Format 1 manifests (no MAC, version 1 streams)
/// are still read.
public struct BackupManifest: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 2

    public var formatVersion: Int
    public var id: String
    public var job: String
    public var database: String
    /// host:port of the PostgreSQL server (never credentials).
    public var server: String
    public var serverVersion: String
    public var pgDumpVersion: String
    public var cairnVersion: String
    public var hostname: String
    public var startedAt: Date
    public var finishedAt: Date
    public var dump: BackupObject
    public var globals: BackupObject?
    public var compression: String          // "zstd"
    public var compressionLevel: Int
    public var encryption: String           // "cairn-stream-v2" ("cairn-stream-v1" in format 1)
    public var keyId: String
    public var segmentSize: Int
    /// Rows per table (`"schema"."table"`) in the dump's own snapshot.
    public var rowCounts: [String: Int64]
    /// How `rowCounts` were taken: "archive" (COPY rows counted as the dump streamed) or "database".
    public var rowCountSource: String
    public var snapshot: String

    public var duration: TimeInterval { finishedAt.timeIntervalSince(startedAt) }

    /// The context the encrypted stream of the dump (or of the globals
    /// script) names in its header.
    public func streamContext(globals: Bool = false) -> StreamContext {
        StreamContext(job: job, backupID: id, object: globals ? StreamContext.globalsObject : StreamContext.dumpObject)
    }

    /// Whether its objects must carry a stream context (format 2 and later:
    /// written as version 2 streams), so that a version 1 stream is refused.
    public var requiresStreamContext: Bool { formatVersion >= 2 }
    public var compressionRatio: Double { dump.ciphertextSize > 0 ? Double(dump.plaintextSize) / Double(dump.ciphertextSize) : 0 }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(manifestDateFormatter().string(from: date))
        }
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let s = try c.decode(String.self)
            let f = manifestDateFormatter()
            if let date = f.date(from: s) { return date }
            f.formatOptions = [.withInternetDateTime]
            if let date = f.date(from: s) { return date }
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an ISO 8601 time: \(s)")
        }
        return d
    }()

    public func encoded() throws -> Data { try Self.encoder.encode(self) }

    /// Decodes a manifest (without checking its MAC: see `ManifestAuthenticator.open`).
    /// Errors carry a `ManifestDecodeError` as their cause.
    public static func decode(_ data: Data, key: String) throws -> BackupManifest {
        func failure(_ e: ManifestDecodeError) -> CairnError { CairnError(.integrity, "manifest \(key): \(e)", cause: e) }
        let m: BackupManifest
        do { m = try decoder.decode(BackupManifest.self, from: data) } catch {
            throw failure(.invalid(describe(error)))
        }
        guard m.formatVersion >= 1 && m.formatVersion <= currentFormatVersion else { throw failure(.unsupportedFormatVersion(m.formatVersion)) }
        return m
    }
}

/// One line for a JSON decoding error: what and at which field.
private func describe(_ error: any Error) -> String {
    func at(_ c: DecodingError.Context) -> String {
        c.codingPath.isEmpty ? "" : " at \(c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: "."))"
    }
    switch error as? DecodingError {
    case .dataCorrupted(let c): return c.debugDescription + at(c)
    case .keyNotFound(let k, let c): return "missing field \(k.stringValue)" + at(c)
    case .typeMismatch(_, let c), .valueNotFound(_, let c): return c.debugDescription + at(c)
    default: return String(describing: error).split(separator: "\n").first.map(String.init) ?? "undecodable"
    }
}

/// Why bytes are not a manifest this Cairn can read.
public enum ManifestDecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not JSON, or not a manifest's fields (the decoder's first line).
    case invalid(String)
    /// A format version this Cairn does not know (written by a newer one).
    case unsupportedFormatVersion(Int)

    public var description: String {
        switch self {
        case .invalid(let detail): return "not a valid manifest: \(detail)"
        case .unsupportedFormatVersion(let v): return "format version \(v) is not one this Cairn reads (1 ... \(BackupManifest.currentFormatVersion))"
        }
    }
}

/// UTC, millisecond precision: `2026-11-27T02:30:00.123Z`.
func manifestDateFormatter() -> ISO8601DateFormatter {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f
}

/// Object names of a backup: `<prefix>/<UTC timestamp>-<random>.dump.zst.aes`
/// and friends. The id sorts by time.
public enum BackupLayout {
    public static let manifestSuffix = ".manifest.json"
    public static let dumpSuffix = ".dump.zst.aes"
    public static let globalsSuffix = ".globals.sql.zst.aes"
    /// The verification record of a backup (`VerifyRecord`), next to its manifest.
    public static let verifySuffix = ".verify.json"

    public static func newID(at date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let rand = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        return "\(f.string(from: date))-\(rand)"
    }

    /// The start time a backup id was made from (`newID`), to the second; nil for another shape.
    /// For figures only (the metrics' verified-backup age): retention reads the manifest's time.
    public static func startTime(ofID id: String) -> Date? {
        guard id.count >= 16 else { return nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.date(from: String(id.prefix(16)))
    }

    static func dir(_ prefix: String) -> String { prefix.isEmpty ? "" : prefix + "/" }
    public static func dumpKey(prefix: String, id: String) -> String { dir(prefix) + id + dumpSuffix }
    public static func globalsKey(prefix: String, id: String) -> String { dir(prefix) + id + globalsSuffix }
    public static func manifestKey(prefix: String, id: String) -> String { dir(prefix) + id + manifestSuffix }
    public static func verifyKey(prefix: String, id: String) -> String { dir(prefix) + id + verifySuffix }

    /// True if `key` is a dump or globals object of a backup directly under `prefix`
    /// (`PREFIX/yyyyMMddTHHmmssZ-xxxxxxxx.dump.zst.aes`), nothing else sharing the bucket.
    public static func isBackupData(_ key: String, prefix: String) -> Bool {
        backupID(ofData: key, prefix: prefix) != nil
    }

    /// The backup id of a dump or globals object directly under `prefix`, or nil.
    public static func backupID(ofData key: String, prefix: String) -> String? {
        backupID(key, prefix: prefix, suffixes: [dumpSuffix, globalsSuffix])
    }

    /// The backup id of a verification record directly under `prefix`, or nil.
    public static func backupID(ofVerifyRecord key: String, prefix: String) -> String? {
        backupID(key, prefix: prefix, suffixes: [verifySuffix])
    }

    /// The backup id of a manifest directly under `prefix`, or nil.
    public static func backupID(ofManifest key: String, prefix: String) -> String? {
        backupID(key, prefix: prefix, suffixes: [manifestSuffix])
    }

    private static func backupID(_ key: String, prefix: String, suffixes: [String]) -> String? {
        let d = dir(prefix)
        guard key.hasPrefix(d) else { return nil }
        let name = key.dropFirst(d.count)
        guard let suffix = suffixes.first(where: { name.hasSuffix($0) }) else { return nil }
        let id = name.dropLast(suffix.count)
        return id.range(of: #"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"#, options: .regularExpression) != nil ? String(id) : nil
    }
}
