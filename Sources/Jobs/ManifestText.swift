import Foundation

/// A manifest as `cairn backups show` prints it: one `name  value` line per
/// fact, then the row counts sorted by table name.
public struct ManifestText: Sendable {
    public var manifest: BackupManifest
    /// Where the backup is stored ("s3://bucket/cairn/marketplace-db"), if known.
    public var location: String?

    public init(manifest: BackupManifest, location: String? = nil) {
        self.manifest = manifest
        self.location = location
    }

    public var lines: [String] {
        let m = manifest
        let time: (Date) -> String = { d in
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS 'UTC'"
            return f.string(from: d)
        }
        var out = ["backup \(m.id)"]
        func row(_ name: String, _ value: String) { out.append("  " + name.padding(toLength: 13, withPad: " ", startingAt: 0) + value) }
        row("job", m.job)
        if let location { row("stored in", location) }
        row("database", "\(m.database) on \(m.server)")
        row("host", m.hostname)
        row("started", time(m.startedAt))
        row("finished", "\(time(m.finishedAt)) (\(String(format: "%.1f", m.duration)) s, \(ProgressLine.rate(bytes: m.dump.plaintextSize, seconds: m.duration)))")
        row("dumped", "\(ByteFormat.human(m.dump.plaintextSize)) (\(m.dump.plaintextSize) bytes\(m.dump.plaintextSHA256.map { ", SHA-256 \($0)" } ?? ""))")
        row("stored", "\(ByteFormat.human(m.dump.ciphertextSize)) (\(m.dump.ciphertextSize) bytes, SHA-256 \(m.dump.ciphertextSHA256))")
        row("ratio", String(format: "%.2f", m.compressionRatio))
        row("parts", "\(m.dump.partCount) of \(ByteFormat.human(Int64(m.dump.partSize)))")
        row("object", m.dump.key)
        row("globals", m.globals.map { "\($0.key) (\(ByteFormat.human($0.ciphertextSize)) stored)" } ?? "none")
        row("key id", m.keyId)
        row("format", "manifest v\(m.formatVersion), \(m.compression) level \(m.compressionLevel), \(m.encryption) (segments of \(ByteFormat.human(Int64(m.segmentSize))))")
        row("versions", "server \(m.serverVersion), pg_dump \(m.pgDumpVersion), cairn \(m.cairnVersion)")
        row("snapshot", m.snapshot)
        row("row counts", "\(m.rowCounts.count) table(s), counted from the \(m.rowCountSource)")
        let width = min(60, m.rowCounts.keys.map(\.count).max() ?? 0)
        for table in m.rowCounts.keys.sorted() {
            out.append("    " + table.padding(toLength: max(width, table.count), withPad: " ", startingAt: 0) + "  " + String(m.rowCounts[table]!))
        }
        return out
    }
}
