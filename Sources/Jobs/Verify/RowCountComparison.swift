/// The restored database's row counts against the manifest's, table by
/// table: every table of either side is compared; a table missing on one
/// side is a mismatch. Pure: tested in JobsTests.
public struct RowCountComparison: Sendable, Equatable {
    public let tables: [VerifyRecord.Table]

    public init(manifest: [String: Int64], restored: [String: Int64]) {
        tables = Set(manifest.keys).union(restored.keys).sorted().map {
            VerifyRecord.Table(table: $0, manifestRows: manifest[$0], restoredRows: restored[$0])
        }
    }

    public var mismatches: [VerifyRecord.Table] { tables.filter { !$0.matches } }
    public var rowsCompared: Int64 { tables.reduce(0) { $0 + ($1.restoredRows ?? 0) } }

    /// One line naming each mismatched table (up to five) and both counts, or nil when all match.
    public var failureMessage: String? {
        let bad = mismatches
        guard !bad.isEmpty else { return nil }
        func n(_ v: Int64?) -> String { v.map(String.init) ?? "absent" }
        let shown = bad.prefix(5).map { "\($0.table): manifest \(n($0.manifestRows)), restored \(n($0.restoredRows))" }.joined(separator: "; ")
        return "row counts differ in \(bad.count) of \(tables.count) table(s): \(shown)\(bad.count > 5 ? "; …" : "")"
    }
}
