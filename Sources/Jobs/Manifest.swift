import Core
import Foundation

/// One stored object of a backup (the dump, or the globals script).
public struct BackupObject: Codable, Sendable, Equatable {
    public var key: String
    public var plaintextSize: Int64
    public var plaintextSHA256: String
    public var ciphertextSize: Int64
    public var ciphertextSHA256: String
    public var partSize: Int
    public var partCount: Int
    public var etag: String?
}

/// The proof that a backup is complete: written last, next to the dump, as
/// `<prefix>/<id>.manifest.json`. Anything without a manifest is garbage.
public struct BackupManifest: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

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
    public var encryption: String           // "cairn-stream-v1"
    public var keyId: String
    public var segmentSize: Int
    /// Rows per table (`"schema"."table"`) in the dump's own snapshot.
    public var rowCounts: [String: Int64]
    /// How `rowCounts` were taken: "archive" (COPY rows counted as the dump streamed) or "database".
    public var rowCountSource: String
    public var snapshot: String

    public var duration: TimeInterval { finishedAt.timeIntervalSince(startedAt) }
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

    public static func decode(_ data: Data, key: String) throws -> BackupManifest {
        let m: BackupManifest
        do { m = try decoder.decode(BackupManifest.self, from: data) } catch {
            throw CairnError(.integrity, "manifest \(key) is not valid: \(error)")
        }
        guard m.formatVersion <= currentFormatVersion else {
            throw CairnError(.integrity, "manifest \(key) has format version \(m.formatVersion); this Cairn reads up to \(currentFormatVersion)")
        }
        return m
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

    public static func newID(at date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let rand = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        return "\(f.string(from: date))-\(rand)"
    }

    static func dir(_ prefix: String) -> String { prefix.isEmpty ? "" : prefix + "/" }
    public static func dumpKey(prefix: String, id: String) -> String { dir(prefix) + id + dumpSuffix }
    public static func globalsKey(prefix: String, id: String) -> String { dir(prefix) + id + globalsSuffix }
    public static func manifestKey(prefix: String, id: String) -> String { dir(prefix) + id + manifestSuffix }

    /// True if `key` is a dump or globals object of a backup directly under `prefix`
    /// (`PREFIX/yyyyMMddTHHmmssZ-xxxxxxxx.dump.zst.aes`), nothing else sharing the bucket.
    public static func isBackupData(_ key: String, prefix: String) -> Bool {
        backupID(ofData: key, prefix: prefix) != nil
    }

    /// The backup id of a dump or globals object directly under `prefix`, or nil.
    public static func backupID(ofData key: String, prefix: String) -> String? {
        backupID(key, prefix: prefix, suffixes: [dumpSuffix, globalsSuffix])
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
