import Foundation
import Testing
@testable import Jobs

@Suite struct ScratchDatabaseNames {
    @Test func jobAndBackupIdBecomeALowerCaseIdentifier() {
        #expect(ScratchDatabaseName.make(job: "marketplace-verify", backupID: "20261127T023000Z-1a2b3c4d")
                == "cairn_verify_marketplace_verify_20261127t023000z_1a2b3c4d")
        #expect(ScratchDatabaseName.make(job: "Ünï.code", backupID: "x") == "cairn_verify__n__code_x")
    }

    @Test func longJobNamesAreShortenedWithAHashAndTheIdIsKept() {
        let id = "20261127T023000Z-1a2b3c4d"
        let a = ScratchDatabaseName.make(job: String(repeating: "a", count: 80) + "-one", backupID: id)
        let b = ScratchDatabaseName.make(job: String(repeating: "a", count: 80) + "-two", backupID: id)
        #expect(a.utf8.count <= 63 && b.utf8.count <= 63)
        #expect(a != b)
        #expect(a.hasPrefix("cairn_verify_aaaa") && a.hasSuffix("_20261127t023000z_1a2b3c4d"))
        #expect(ScratchDatabaseName.isScratch(a))
        #expect(!ScratchDatabaseName.isScratch("cairn_it_x"))
    }
}

@Suite struct RowCountComparisons {
    @Test func everyTableOfEitherSideIsComparedAndMismatchesNameBothCounts() {
        let c = RowCountComparison(manifest: ["public.users": 3000, "market.orders": 12000, "public.gone": 5],
                                   restored: ["public.users": 3000, "market.orders": 11999, "public.extra": 0])
        #expect(c.tables.map(\.table) == ["market.orders", "public.extra", "public.gone", "public.users"])
        #expect(c.mismatches.map(\.table) == ["market.orders", "public.extra", "public.gone"])
        #expect(c.rowsCompared == 3000 + 11999)
        #expect(c.failureMessage == "row counts differ in 3 of 4 table(s): market.orders: manifest 12000, restored 11999; public.extra: manifest absent, restored 0; public.gone: manifest 5, restored absent")
    }

    @Test func equalCountsHaveNoFailure() {
        let c = RowCountComparison(manifest: ["a": 1, "b": 0], restored: ["a": 1, "b": 0])
        #expect(c.mismatches.isEmpty && c.failureMessage == nil && c.tables.count == 2)
    }
}

@Suite struct VerifyRecordsAndReports {
    func record(ok: Bool = true) -> VerifyRecord {
        VerifyRecord(backupID: "20261127T023000Z-1a2b3c4d", backupJob: "db", verifyJob: "db-verify",
                     verifiedAt: Date(timeIntervalSince1970: 1_800_000_000), host: "h", cairnVersion: "0.1.0",
                     scratchDatabase: "cairn_verify_x", ok: ok, restoreSeconds: 12.5,
                     tables: [.init(table: "public.a", manifestRows: 2, restoredRows: 2), .init(table: "public.b", manifestRows: 3, restoredRows: ok ? 3 : 1)],
                     checks: [.init(name: "n", sql: "SELECT true", passed: true)], globals: "absent", error: ok ? nil : "row counts differ")
    }

    @Test func recordRoundTripsThroughJSONWithItsMismatches() throws {
        let r = record(ok: false)
        let data = try r.encoded()
        #expect(try VerifyRecord.decode(data) == r)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((object["mismatches"] as? [[String: Any]])?.first?["table"] as? String == "public.b")
        #expect(object["rowsCompared"] as? Int == 3)
        #expect(r.state == "failed" && record().state == "verified")
    }

    @Test func reportCarriesRTOAndRPO() {
        let now = Date(timeIntervalSince1970: 1_800_000_000 + 7200)
        let report = VerifyReport(record: record(), newestVerifiedBackupID: "20261127T023000Z-1a2b3c4d",
                                  newestVerifiedBackupAt: Date(timeIntervalSince1970: 1_800_000_000), now: now)
        #expect(report.rtoSeconds == 12.5)
        #expect(report.rpoSeconds == 7200)
        #expect(report.summary.contains("restore 12.5 s (measured RTO)"))
        #expect(report.summary.contains("is 2.0 h old (RPO)"))
        let nothing = VerifyReport(record: nil, newestVerifiedBackupID: nil, newestVerifiedBackupAt: nil, now: now)
        #expect(nothing.rtoSeconds == nil && nothing.rpoSeconds == nil)
        #expect(nothing.summary.hasPrefix("nothing to verify"))
    }

    @Test func recordTextShowsTheRowCountTable() {
        let lines = VerifyRecordText(record: record(ok: false)).lines
        #expect(lines.contains { $0.hasPrefix("  TABLE") && $0.contains("MANIFEST") && $0.contains("RESTORED") })
        #expect(lines.contains { $0.hasPrefix("  public.b") && $0.hasSuffix("MISMATCH") && $0.contains(" 3 ") && $0.contains(" 1 ") })
        #expect(lines.contains { $0.hasPrefix("  public.a") && $0.hasSuffix("ok") })
        #expect(lines.last?.contains("FAILED: row counts differ") == true)
    }
}
