import Config
import Core
import Crypto
import Foundation
import HTTP
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

/// `cairn backups prune` end to end: the CLI, the job lock and history,
/// the refusal, the 24-hour rule and the backup job's own zero-age clean-up,
/// objects the store refuses to delete.
@Suite struct PruneCommandTests {
    static func fixture(_ jobs: [String: String]) throws -> (DaemonFixture, FakeBackups) {
        let fx = try DaemonFixture()
        try fx.writeJob("db", "kind = \"backup\"\n[backup]\ndatabase = \"postgres:///unused\"\n")
        for (name, text) in jobs { try fx.writeJob(name, text) }
        let keyring = try Keyring(keyId: "k", key: try Keyring.loadKeyFile(path: fx.dir + "/k.key"))
        return (fx, FakeBackups(store: try TestEnv.s3(prefix: fx.prefix), prefix: "db", keyring: keyring))
    }

    static func daysAgo(_ d: Double) -> Date { Date().addingTimeInterval(-d * 86_400 - 3600) }

    @Test func dryRunPrintsThePlanThenPruneDeletesUnderTheLockAndIsRecorded() async throws {
        let (fx, b) = try Self.fixture(["db-retention": """
            kind = "retention"
            timezone = "Africa/Accra"
            [retention]
            backup_job = "db"
            keep_days = 30
            keep_last = 3
            """])
        defer { fx.remove() }
        var ids: [Int: String] = [:]
        for d in [0, 2, 5, 10, 31, 40, 50] { ids[d] = try await b.write(startedAt: Self.daysAgo(Double(d))) }
        // A data object without a manifest, written just now: it may be a backup in progress.
        let young = BackupLayout.dumpKey(prefix: "db", id: BackupLayout.newID(at: Date()))
        _ = try await b.store.put(key: young, data: Data("in progress?".utf8))
        let before = try await fullListing(b.store, "")

        // JOB may be the backup job: the retention unit that names it applies.
        let dry = try await CLI.run(["backups", "prune", "db", "--dry-run", "-c", fx.config])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(try await fullListing(b.store, "") == before)
        let lines = dry.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("BACKUP") == true && lines.first?.contains("STARTED (Africa/Accra)") == true, "\(dry.stdout)")
        for d in [0, 2, 5] { #expect(lines.contains { $0.hasPrefix(ids[d]!) && $0.contains(" keep ") && $0.hasSuffix("one of the newest 3 (keep_last)") }, "\(dry.stdout)") }
        #expect(lines.contains { $0.hasPrefix(ids[10]!) && $0.contains(" keep ") && $0.hasSuffix("within 30 days (keep_days)") }, "\(dry.stdout)")
        for d in [31, 40, 50] { #expect(lines.contains { $0.hasPrefix(ids[d]!) && $0.contains(" delete ") && $0.hasSuffix("older than 30 days, no rule keeps it") }, "\(dry.stdout)") }
        #expect(dry.stdout.contains("1 leftover(s) younger than 24 h kept"), "\(dry.stdout)")
        #expect(lines.last == "retention of db (\(b.store.displayName)db/): kept 4, would delete 3 backup(s); would abort 0 stale upload(s), delete 0 orphaned object(s) (dry run: nothing deleted)", "\(dry.stdout)")
        #expect(try fx.history("db-retention").isEmpty, "a dry run is not a run")

        let run = try await CLI.run(["backups", "prune", "db-retention", "-c", fx.config, "--log-level", "notice"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("kept 4, deleted 3 backup(s)"), "\(run.stdout)")
        #expect(run.stderr.contains("deleted backup"), "\(run.stderr)")
        let after = Set(try await b.store.list(prefix: "").map(\.key))
        #expect(Set(after.compactMap { BackupLayout.backupID(ofManifest: $0, prefix: "db") }) == Set([0, 2, 5, 10].map { ids[$0]! }))
        #expect(after.contains(young), "a leftover younger than 24 h was deleted by retention")
        let history = try fx.history("db-retention")
        #expect(history.count == 1 && history.first?.result == .ok, "\(history)")

        // The backup job's own clean-up (it holds the lock) removes leftovers of any age.
        await JobRunner.cleanUpInterruptedRuns(store: b.store, prefix: "db", job: "db")
        let cleaned = Set(try await b.store.list(prefix: "").map(\.key))
        #expect(!cleaned.contains(young))
        #expect(cleaned == after.subtracting([young]))
    }

    @Test func whenTheNewestBackupIsOlderThanTheWindowNothingIsDeletedAndTheRunFails() async throws {
        let (fx, b) = try Self.fixture([:])
        defer { fx.remove() }
        // No retention unit: a backup job gets keep_days = 30 (no [defaults] retention_days), keep_last = 7.
        var ids: [String] = []
        for d in [31.0, 35, 40, 45, 50, 55, 60, 65, 70] { ids.append(try await b.write(startedAt: Self.daysAgo(d))) }
        let before = try await fullListing(b.store, "")

        let dry = try await CLI.run(["backups", "prune", "db", "--dry-run", "-c", fx.config])
        #expect(dry.status == ErrorCode.notFound.exitStatus, "\(dry.stderr)")
        #expect(dry.stdout.contains("REFUSED: the newest backup (\(ids[0])"), "\(dry.stdout)")
        #expect(dry.stderr.contains("is older than keep_days = 30: backups are failing; deleting nothing"), "\(dry.stderr)")
        #expect(dry.stderr.split(separator: "\n").count == 1, "\(dry.stderr)")

        let run = try await CLI.run(["backups", "prune", "db", "-c", fx.config])
        #expect(run.status == ErrorCode.notFound.exitStatus, "\(run.stderr)")
        #expect(run.stderr.contains("backups are failing"), "\(run.stderr)")
        #expect(try await fullListing(b.store, "") == before)
        let history = try fx.history("db-prune")
        #expect(history.count == 1 && history.first?.result == .failed && history.first?.error?.contains("backups are failing") == true, "\(history)")
    }

    /// An object the store refuses to delete (S3 answers AccessDenied for a key
    /// under Object Lock retention; here the strict proxy answers so) is
    /// reported with its S3 code, once; its backup keeps its manifest, the
    /// other backups go, and the run fails naming the key.
    @Test func anObjectTheStoreRefusesIsReportedAndItsBackupKept() async throws {
        let (fx, b) = try Self.fixture(["db-retention": "kind = \"retention\"\n[retention]\nbackup_job = \"db\"\nkeep_days = 30\nkeep_last = 1\n"])
        defer { fx.remove() }
        var ids: [Int: String] = [:]
        for d in [0, 40, 41, 42] { ids[d] = try await b.write(startedAt: Self.daysAgo(Double(d))) }
        let locked = BackupLayout.dumpKey(prefix: "db", id: ids[41]!)
        let proxy = try ProxyControl()
        // The batch holding the key is refused whole; then the key alone gets S3's per-key answer.
        try await proxy.inject(.init(method: "POST", query_contains: "delete", body_contains: fx.prefix + locked, action: "status",
                                     status: 403, code: "AccessDenied", count: 1))
        try await proxy.inject(.init(method: "POST", query_contains: "delete", body_contains: fx.prefix + locked, action: "delete_error",
                                     code: "AccessDenied", count: 3))

        let run = try await CLI.run(["backups", "prune", "db-retention", "-c", fx.config])
        #expect(run.status == ErrorCode.storageAuth.exitStatus, "\(run.stderr)")
        #expect(run.stderr.contains("1 object(s) could not be deleted"), "\(run.stderr)")
        #expect(run.stderr.contains("\(locked) (AccessDenied)"), "\(run.stderr)")
        let after = Set(try await b.store.list(prefix: "").map(\.key))
        #expect(Set(after.compactMap { BackupLayout.backupID(ofManifest: $0, prefix: "db") }) == [ids[0]!, ids[41]!])
        #expect(after.contains(locked))
        #expect(!after.contains(BackupLayout.globalsKey(prefix: "db", id: ids[41]!)))
        // Refused once as a batch, once alone: not retried.
        let r = try await proxy.http.send(HTTPRequest(method: "GET", url: proxy.base + "/__proxy/faults"))
        let rules = try #require(try JSONSerialization.jsonObject(with: r.body) as? [[String: Any]])
        let mine = rules.filter { ($0["body_contains"] as? String) == fx.prefix + locked }
        #expect(mine.map { $0["remaining"] as? Int } == [0, 2])
        let history = try fx.history("db-retention")
        #expect(history.first?.result == .failed)
    }

    /// The shipped example unit, copied as it is, runs with `cairn run`
    /// against the test server (the backup job it names writes to the same place).
    @Test func theExampleUnitRunsAsItIs() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("marketplace-db", "kind = \"backup\"\n[backup]\ndatabase = \"postgres:///unused\"\n")
        try FileManager.default.copyItem(atPath: root + "/jobs/marketplace-retention.toml", toPath: fx.dir + "/jobs/marketplace-retention.toml")
        let keyring = try Keyring(keyId: "k", key: try Keyring.loadKeyFile(path: fx.dir + "/k.key"))
        let b = FakeBackups(store: try TestEnv.s3(prefix: fx.prefix), prefix: "marketplace-db", keyring: keyring)
        var ids: [Double: String] = [:]
        for d in [0.0, 1, 2, 3, 4, 5, 6, 7, 45] { ids[d] = try await b.write(startedAt: Self.daysAgo(d)) }

        let run = try await CLI.run(["run", "--local", "-c", fx.config, "marketplace-retention"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("kept 8, deleted 1 backup(s)"), "\(run.stdout)")
        let left = Set(try await b.store.list(prefix: "").compactMap { BackupLayout.backupID(ofManifest: $0.key, prefix: "marketplace-db") })
        #expect(left == Set(ids.filter { $0.key < 45 }.map(\.value)))
        #expect(try fx.history("marketplace-retention").map(\.result) == [.ok])
    }
}
