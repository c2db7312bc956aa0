import Config
import Core
import Crypto
import Foundation
@testable import Jobs
import ObjectStore
import State
import Testing

/// Backups as retention finds them: small fake data objects (the real backup
/// path is tested elsewhere) and authenticated manifests whose start times
/// are spread over 60 days.
struct FakeBackups {
    let store: any ObjectStore
    let prefix: String
    let keyring: Keyring

    static let testKeyring = try! Keyring(keyId: "k", key: Data((0..<32).map { UInt8($0 &* 7 &+ 3) }))

    /// Writes a backup that started at `startedAt` (dump, globals when asked, manifest last); returns its id.
    @discardableResult
    func write(startedAt: Date, globals: Bool = true) async throws -> String {
        let id = BackupLayout.newID(at: startedAt)
        let dump = BackupLayout.dumpKey(prefix: prefix, id: id)
        _ = try await store.put(key: dump, data: Data("dump of \(id)".utf8))
        var globalsObject: BackupObject?
        if globals {
            let g = BackupLayout.globalsKey(prefix: prefix, id: id)
            _ = try await store.put(key: g, data: Data("globals of \(id)".utf8))
            globalsObject = Self.object(g)
        }
        let m = BackupManifest(formatVersion: BackupManifest.currentFormatVersion, id: id, job: "db", database: "marketplace",
                               server: "127.0.0.1:5432", serverVersion: "16.4", pgDumpVersion: "16.4", cairnVersion: "test",
                               hostname: "test", startedAt: startedAt, finishedAt: startedAt.addingTimeInterval(60),
                               dump: Self.object(dump), globals: globalsObject, compression: "zstd", compressionLevel: 3,
                               encryption: "cairn-stream-v2", keyId: "k", segmentSize: 1 << 20, rowCounts: ["public.t": 1],
                               rowCountSource: "archive", snapshot: "00000003-1")
        _ = try await store.put(key: BackupLayout.manifestKey(prefix: prefix, id: id), data: try ManifestAuthenticator.seal(m, keyring: keyring))
        return id
    }

    /// A verification record next to the backup; `error` makes it a failed one.
    func verify(_ id: String, error: String? = nil) async throws {
        var record: [String: Any] = ["backup": id, "verified_at": "2026-12-01T00:00:00Z", "tables": 1]
        if let error { record["error"] = error }
        let dir = prefix.isEmpty ? "" : prefix + "/"
        _ = try await store.put(key: dir + id + ".verify.json", data: try JSONSerialization.data(withJSONObject: record))
    }

    static func object(_ key: String) -> BackupObject {
        BackupObject(key: key, plaintextSize: 10, plaintextSHA256: String(repeating: "a", count: 64), ciphertextSize: 10,
                     ciphertextSHA256: String(repeating: "b", count: 64), partSize: 5 << 20, partCount: 1, etag: nil)
    }
}

/// Everything under a prefix, for before/after comparisons: objects (key, size, ETag) and multipart uploads.
func fullListing(_ store: any ObjectStore, _ prefix: String) async throws -> [String] {
    let objects = try await store.list(prefix: prefix).map { "\($0.key) \($0.size) \($0.etag ?? "-")" }
    let uploads = try await store.listMultipartUploads(prefix: prefix).map { "upload \($0.key) \($0.uploadId)" }
    return objects + uploads.sorted()
}

/// 40 backups over 60 days, days back = n·3/2 for n in 0..<40 (0, 1, 3, 4, 6, … 58), an hour before
/// the clock's time; keep_days = 30, keep_last = 7. Days 0–28 (20 backups) are within 30 days; day 45
/// is the newest verified one (day 42's verification failed): 21 remain, 19 go.
struct RetentionScenario {
    static let days = (0..<40).map { $0 * 3 / 2 }
    static let rules = RetentionSpec(backupJob: "db", keepDays: 30, keepLast: 7)
    static func expectedKept(_ byDay: [Int: String]) -> Set<String> {
        Set(byDay.filter { $0.key <= 29 || $0.key == 45 }.map(\.value))
    }

    /// Writes the backups relative to `now`; returns day → id.
    static func write(_ b: FakeBackups, now: Date) async throws -> [Int: String] {
        var byDay: [Int: String] = [:]
        for (n, d) in days.enumerated() {
            byDay[d] = try await b.write(startedAt: now.addingTimeInterval(-Double(d) * 86_400 - 3600), globals: n % 2 == 0)
        }
        try await b.verify(byDay[45]!)
        try await b.verify(byDay[42]!, error: "row count of public.t: manifest 1, restored 0")
        return byDay
    }
}

@Suite struct RetentionTests {
    /// The whole run against the S3 test server through the strict proxy
    /// (signatures checked). The job's clock is 25 hours ahead of the
    /// server's so that the leftovers written now count as older than a day
    /// (the backups are dated from that clock). moto reports a fixed 2010
    /// `Initiated` date for every multipart upload, so every upload is
    /// "old" there whatever the clock.
    @Test func pruneLeavesExactlyTheExpectedBackupsAndRemovesLeftovers() async throws {
        let root = TestEnv.uniquePrefix("retention")
        let store = try TestEnv.s3(prefix: root)
        try await Self.pruneScenario(store: store)
        #expect(try await ProxyControl().violations(containing: root).isEmpty)
    }

    /// The same against a directory store (uploads carry their real start time there).
    @Test func pruneOnADirectoryStore() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-retention-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try await Self.pruneScenario(store: DirectoryStore(root: dir))
    }

    static func pruneScenario(store: any ObjectStore) async throws {
        let now = Date().addingTimeInterval(25 * 3600)
        let b = FakeBackups(store: store, prefix: "db", keyring: FakeBackups.testKeyring)
        let byDay = try await RetentionScenario.write(b, now: now)
        #expect(byDay.count == 40)

        // Leftovers: data without a manifest, an unfinished upload of backup data.
        let orphan = BackupLayout.dumpKey(prefix: "db", id: BackupLayout.newID(at: now.addingTimeInterval(-50 * 86_400)))
        _ = try await store.put(key: orphan, data: Data("half a backup".utf8))
        let cut = BackupLayout.dumpKey(prefix: "db", id: BackupLayout.newID(at: now.addingTimeInterval(-2 * 86_400)))
        let uploadId = try await store.createMultipartUpload(key: cut, options: PutOptions())
        _ = try await store.uploadPart(key: cut, uploadId: uploadId, partNumber: 1, body: .data(Data(count: 1000)))
        // Not this job's backups, or not backups at all: never touched.
        let foreign = ["db/README.txt", "db/old/\(byDay[58]!).dump.zst.aes", "db2/\(byDay[58]!).manifest.json", "db2/\(byDay[58]!).dump.zst.aes"]
        for k in foreign { _ = try await store.put(key: k, data: Data("keep".utf8)) }
        let foreignUpload = try await store.createMultipartUpload(key: "db/notes.bin", options: PutOptions())
        defer { Task { try? await store.abortMultipartUpload(key: "db/notes.bin", uploadId: foreignUpload) } }

        func job(dryRun: Bool) -> RetentionJob {
            RetentionJob(job: "db-retention", backupJob: "db", prefix: "db", store: store, keyring: FakeBackups.testKeyring,
                         rules: RetentionScenario.rules, timeZone: TimeZone(identifier: "UTC")!, dryRun: dryRun, now: { now })
        }
        let expected = RetentionScenario.expectedKept(byDay)
        #expect(expected.count == 21)
        #expect(try await job(dryRun: true).verifiedIDs(try await store.list(prefix: "db/")) == [byDay[45]!])

        // Dry run: the plan, and not one byte changed.
        let before = try await fullListing(store, "")
        let dry = try await job(dryRun: true).run()
        #expect(try await fullListing(store, "") == before)
        #expect(Set(dry.plan.kept.map(\.candidate.id)) == expected)
        #expect(dry.plan.deleted.count == 19)
        #expect(dry.leftovers.delete.map(\.key) == [orphan])
        #expect(dry.leftovers.abort.map(\.key) == [cut])
        #expect(dry.plan.decisions.first { $0.candidate.id == byDay[45] }?.reason == .newestVerified)
        #expect(dry.plan.decisions.first { $0.candidate.id == byDay[42] }?.reason == .expired(keepDays: 30))
        let table = dry.table()
        #expect(table.contains("\(byDay[45]!) "))
        #expect(table.contains("newest verified backup"))
        #expect(table.hasSuffix("retention of db (\(store.displayName)db/): kept 21, would delete 19 backup(s); would abort 1 stale upload(s), delete 1 orphaned object(s) (dry run: nothing deleted)"), "\(table)")
        try RetentionRun.check(dry)

        // The real run.
        let report = try await job(dryRun: false).run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(Set(report.deletedBackups) == Set(byDay.values).subtracting(expected))
        #expect(report.abortedUploads == 1 && report.deletedOrphans == 1)
        try RetentionRun.check(report)

        let after = Set(try await store.list(prefix: "").map(\.key))
        let manifests = Set(after.compactMap { BackupLayout.backupID(ofManifest: $0, prefix: "db") })
        #expect(manifests == expected)
        // Every kept backup has its data; no deleted backup left anything (data, verify record, manifest).
        for (n, d) in RetentionScenario.days.enumerated() {
            let id = byDay[d]!
            let keys = [BackupLayout.dumpKey(prefix: "db", id: id), BackupLayout.manifestKey(prefix: "db", id: id)]
                + (n % 2 == 0 ? [BackupLayout.globalsKey(prefix: "db", id: id)] : [])
            for k in keys { #expect(after.contains(k) == expected.contains(id), "\(k)") }
        }
        #expect(after.contains("db/\(byDay[45]!).verify.json"))
        #expect(!after.contains("db/\(byDay[42]!).verify.json"))
        #expect(!after.contains(orphan))
        #expect(after.isSuperset(of: Set(foreign)))
        let uploads = try await store.listMultipartUploads(prefix: "")
        #expect(uploads.map(\.uploadId) == [foreignUpload])
        #expect(after.count == 21 * 2 + after.filter { $0.hasSuffix(".globals.sql.zst.aes") && $0.hasPrefix("db/2") }.count + 1 + foreign.count)

        // A second run finds nothing more to do.
        let again = try await job(dryRun: false).run()
        #expect(again.plan.deleted.isEmpty && again.deletedBackups.isEmpty && again.leftovers.isEmpty)
    }
}
