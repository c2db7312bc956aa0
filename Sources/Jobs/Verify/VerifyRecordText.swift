import Foundation

/// A verification record for a terminal: the row-count table (table,
/// manifest rows, restored rows, ok/MISMATCH), the checks, globals, result.
public struct VerifyRecordText: Sendable {
    public var record: VerifyRecord
    public init(record: VerifyRecord) { self.record = record }

    public var lines: [String] {
        let r = record
        var out: [String] = []
        let width = max(5, r.tables.map(\.table.count).max() ?? 5)
        func n(_ v: Int64?) -> String { v.map(String.init) ?? "-" }
        out.append("backup \(r.backupID) (job \(r.backupJob)), verified \(ISO8601DateFormatter().string(from: r.verifiedAt)) on \(r.host) in \(r.scratchDatabase)")
        if !r.tables.isEmpty {
            out.append("  " + "TABLE".padding(toLength: width, withPad: " ", startingAt: 0) + "  " + "MANIFEST".leftPadded(12) + "  " + "RESTORED".leftPadded(12) + "  RESULT")
            for t in r.tables {
                out.append("  " + t.table.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + n(t.manifestRows).leftPadded(12) + "  " + n(t.restoredRows).leftPadded(12) + "  " + (t.matches ? "ok" : "MISMATCH"))
            }
        }
        for c in r.checks {
            out.append("  check \(c.passed ? "ok      " : "FAILED  ") \(c.name)" + (c.detail.map { ": \($0)" } ?? ""))
        }
        out.append("  globals \(r.globals)")
        var summary = "  \(r.tablesCompared) table(s), \(r.rowsCompared) row(s) compared"
        if let s = r.restoreSeconds { summary += ", restore \(String(format: "%.1f", s)) s" }
        out.append(summary + ": " + (r.ok ? "verified" : "FAILED" + (r.error.map { ": \($0)" } ?? "")))
        return out
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
