import Foundation

/// What a verify run reports: the record it wrote, the measured recovery
/// time (RTO: restore seconds) and the recovery point it proves (RPO: the age
/// of the newest verified backup). Nil record: nothing was left to verify.
public struct VerifyReport: Sendable, Equatable {
    public var record: VerifyRecord?
    /// The backup job's newest backup with a passing verification, if any.
    public var newestVerifiedBackupID: String?
    /// When that backup was taken (the manifest's start).
    public var newestVerifiedBackupAt: Date?
    /// When the report was made.
    public var now: Date

    public init(record: VerifyRecord?, newestVerifiedBackupID: String?, newestVerifiedBackupAt: Date?, now: Date) {
        self.record = record
        self.newestVerifiedBackupID = newestVerifiedBackupID
        self.newestVerifiedBackupAt = newestVerifiedBackupAt
        self.now = now
    }

    /// Measured recovery time in seconds (the restore of this run).
    public var rtoSeconds: Double? { record?.restoreSeconds }
    /// Age of the newest verified backup in seconds.
    public var rpoSeconds: Double? { newestVerifiedBackupAt.map { now.timeIntervalSince($0) } }

    /// One line for the run summary.
    public var summary: String {
        var parts: [String] = []
        if let r = record {
            parts.append("verified backup \(r.backupID) of \(r.backupJob): \(r.tablesCompared) table(s), \(r.rowsCompared) row(s) compared, \(r.checks.count) check(s) passed, globals \(r.globals)")
        } else {
            parts.append("nothing to verify: every backup has a verification record")
        }
        if let rto = rtoSeconds { parts.append("restore \(String(format: "%.1f", rto)) s (measured RTO)") }
        if let id = newestVerifiedBackupID, let rpo = rpoSeconds {
            parts.append("newest verified backup \(id) is \(Self.age(rpo)) old (RPO)")
        }
        return parts.joined(separator: "; ")
    }

    static func age(_ s: Double) -> String {
        if s < 120 { return "\(Int(s.rounded())) s" }
        if s < 7200 { return "\(Int((s / 60).rounded())) min" }
        if s < 172_800 { return String(format: "%.1f h", s / 3600) }
        return String(format: "%.1f d", s / 86_400)
    }
}
