import Foundation
import Testing
import Config
import Core
import Crypto
import HTTP
import Jobs
import ObjectStore
import Pipeline
import Postgres

/// A throwaway database on the test cluster, dropped afterwards.
struct TestDatabase {
    let name: String
    let url: String

    static func admin() throws -> String { try TestEnv.value("CAIRN_TEST_PG_URL") }

    static func url(for name: String) throws -> String {
        let base = try admin()
        return String(base[..<base.lastIndex(of: "/")!]) + "/" + name
    }

    /// Creates a database and runs `sql` in it.
    static func create(_ tag: String, sql: String) async throws -> TestDatabase {
        let name = "cairn_it_\(tag)_\(UUID().uuidString.prefix(6).lowercased())"
        let admin = try await PGConnection.connect(try admin())
        try await admin.execute("CREATE DATABASE \(name)")
        await admin.close()
        let db = TestDatabase(name: name, url: try url(for: name))
        let c = try await PGConnection.connect(db.url)
        for statement in sql.components(separatedBy: ";\n") where !statement.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            try await c.execute(statement)
        }
        await c.close()
        return db
    }

    static func drop(_ name: String) async {
        guard let admin = try? await PGConnection.connect(try admin()) else { return }
        try? await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        await admin.close()
    }

    func drop() async { await Self.drop(name) }
}

/// The platform's shape in miniature, with awkward values.
let marketplaceSQL = """
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, phone text, created_at timestamptz DEFAULT '2026-01-01');
INSERT INTO users (name, email, phone) SELECT 'Kwame ' || g, 'user' || g || '@example.com', '+23324' || lpad(g::text, 7, '0') FROM generate_series(1, 3000) g;
CREATE SCHEMA market;
CREATE TABLE market.orders (id bigserial PRIMARY KEY, user_id int REFERENCES users(id), total numeric(12,2), meta jsonb, note text);
INSERT INTO market.orders (user_id, total, meta, note)
  SELECT 1 + g % 3000, g * 1.25, jsonb_build_object('city', 'Kumasi', 'items', g % 7), CASE WHEN g % 97 = 0 THEN E'line1\\nline2\\t\\\\.' ELSE 'ok' END
  FROM generate_series(1, 12000) g;
CREATE TABLE "Dispute ""x"" log" (id int, reason text);
INSERT INTO "Dispute ""x"" log" VALUES (1, 'late delivery'), (2, 'damaged'), (3, NULL);
CREATE TABLE empty_table (x int);
CREATE INDEX ON market.orders (user_id);
"""

/// Plain-format pg_dump of a database, without comments and the random
/// \\restrict keys of PostgreSQL 15.14+: two equal databases give equal text.
func plainDump(_ url: String) async throws -> String {
    let out = ByteChannel(capacity: 1 << 20)
    let tool = try PostgresTools.locate("pg_dump")
    let p = try ChildProcess(executable: tool, arguments: ["--format=plain", "--no-owner", "--dbname=\(url)"], stdout: .channel(out))
    var text = Data()
    while let d = try await out.receive() { text.append(d) }
    try await p.waitForSuccess()
    return String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .filter { !$0.hasPrefix("--") && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
        .joined(separator: "\n")
}

func testKeyring(_ id: String = "test-key") throws -> Keyring {
    try Keyring(keyId: id, key: try SecureRandom.bytes(32))
}

/// Every pg_dump process whose command line mentions `needle`.
func pgDumpPIDs(mentioning needle: String) -> [Int32] {
    let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return procs.compactMap { Int32($0) }.filter { pid in
        guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let cmd = String(decoding: d.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return cmd.contains("pg_dump") && cmd.contains(needle)
    }
}

@Suite struct BackupRestoreTests {
    func spec(_ db: TestDatabase, prefix: String = "db", partSize: Int64? = nil, globals: Bool = false) -> BackupSpec {
        BackupSpec(database: db.url, prefix: prefix, includeGlobals: globals, partSize: partSize, uploadConcurrency: 3)
    }

    func roundTrip(store: any ObjectStore) async throws {
        let db = try await TestDatabase.create("rt", sql: marketplaceSQL)
        let restoredName = db.name + "_r"
        defer { Task { await db.drop(); await TestDatabase.drop(restoredName) } }
        let keyring = try testKeyring()
        let manifest = try await BackupJob(name: "marketplace-db", spec: spec(db, globals: true), store: store, keyring: keyring).run()

        #expect(manifest.rowCounts["public.users"] == 3000)
        #expect(manifest.rowCounts["market.orders"] == 12000)
        #expect(manifest.rowCounts["public.\"Dispute \"\"x\"\" log\""] == 3)
        #expect(manifest.rowCounts["public.empty_table"] == 0)
        #expect(manifest.globals != nil)
        #expect(manifest.dump.ciphertextSize < manifest.dump.plaintextSize)
        let listed = try await BackupCatalog(store: store, prefix: "db").list()
        #expect(listed.map(\.id) == [manifest.id])
        #expect(try await store.head(key: BackupLayout.manifestKey(prefix: "db", id: manifest.id)) != nil)

        let target = try TestDatabase.url(for: restoredName)
        let result = try await RestoreJob(manifest: manifest, store: store, keyring: keyring)
            .run(to: .database(target, create: true, jobs: 1))
        #expect(result.mismatches.isEmpty)
        #expect(result.rowCounts == manifest.rowCounts)
        let source = try await plainDump(db.url), restored = try await plainDump(target)
        #expect(source.count > 1000)
        #expect(source == restored)
    }

    @Test func roundTripThroughMoto() async throws {
        let store = try TestEnv.s3()
        try await roundTrip(store: store)
        #expect(try await ProxyControl().violations(containing: store.config.prefix).isEmpty)
    }

    @Test func roundTripThroughADirectoryStore() async throws {
        try await withDirectoryStore { store, _ in try await roundTrip(store: store) }
    }

    @Test func parallelRestoreAndPlainFileRestore() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("par", sql: marketplaceSQL)
            let restoredName = db.name + "_p"
            defer { Task { await db.drop(); await TestDatabase.drop(restoredName) } }
            let keyring = try testKeyring()
            let m = try await BackupJob(name: "j", spec: spec(db), store: store, keyring: keyring).run()
            // --jobs 2 spools the archive (RestoreSpool) in spoolDirectory and removes it afterwards.
            let spoolDir = root + "/../spool-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: spoolDir, withIntermediateDirectories: false)
            defer { try? FileManager.default.removeItem(atPath: spoolDir) }
            var parallel = RestoreJob(manifest: m, store: store, keyring: keyring)
            parallel.options.spoolDirectory = spoolDir
            let r = try await parallel.run(to: .database(try TestDatabase.url(for: restoredName), create: true, jobs: 2))
            #expect(r.mismatches.isEmpty)
            #expect(r.rowCounts?.isEmpty == false)
            #expect(try FileManager.default.contentsOfDirectory(atPath: spoolDir).isEmpty)
            let file = root + "/../plain-\(UUID().uuidString).dump"
            defer { unlink(file) }
            let f = try await RestoreJob(manifest: m, store: store, keyring: keyring).run(to: .file(file))
            #expect(f.bytes == m.dump.plaintextSize)
            let attrs = try FileManager.default.attributesOfItem(atPath: file)
            #expect((attrs[.posixPermissions] as? Int) == 0o600)
            let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: file)).read(upToCount: 5)
            #expect(head == Data("PGDMP".utf8))
        }
    }

    @Test func decryptBackupScriptAgreesWithCairn() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("py", sql: marketplaceSQL)
            defer { Task { await db.drop() } }
            let key = try SecureRandom.bytes(32)
            let keyring = try Keyring(keyId: "py-key", key: key)
            let m = try await BackupJob(name: "j", spec: spec(db), store: store, keyring: keyring).run()
            let keyFile = root + "/../py-\(UUID().uuidString).key"
            try Data(key.hexString.utf8).write(to: URL(fileURLWithPath: keyFile))
            chmod(keyFile, 0o600)
            defer { unlink(keyFile) }
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("scripts/decrypt-backup.py").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "python3 \"$0\" --key-file \"$1\" < \"$2\" | zstd -dc | sha256sum", script, keyFile, root + "/" + m.dump.key]
            let out = Pipe()
            p.standardOutput = out
            try await waitForExit(p)
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(p.terminationStatus == 0)
            // The manifest no longer records the plaintext's SHA-256: compare
            // with the archive Cairn's own restore writes.
            #expect(m.dump.plaintextSHA256 == nil)
            let file = root + "/../py-plain-\(UUID().uuidString).dump"
            defer { unlink(file) }
            let f = try await RestoreJob(manifest: m, store: store, keyring: keyring).run(to: .file(file))
            #expect(f.bytes == m.dump.plaintextSize)
            let plain = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(text.hasPrefix(Digest.sha256(plain).hexString))
        }
    }

    /// Manifests written before issue 15 carry the plaintext's SHA-256: a
    /// restore still checks it (a manifest whose hash does not match the
    /// archive fails, one whose hash matches restores).
    @Test func plaintextHashOfAnOlderManifestIsStillChecked() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("oldhash", sql: marketplaceSQL)
            defer { Task { await db.drop() } }
            let keyring = try testKeyring()
            var m = try await BackupJob(name: "j", spec: spec(db), store: store, keyring: keyring).run()
            let file = root + "/../oldhash-\(UUID().uuidString).dump"
            defer { unlink(file) }
            _ = try await RestoreJob(manifest: m, store: store, keyring: keyring).run(to: .file(file))
            let plain = try Data(contentsOf: URL(fileURLWithPath: file))
            m.dump.plaintextSHA256 = Digest.sha256(plain).hexString
            let again = root + "/../oldhash2-\(UUID().uuidString).dump"
            defer { unlink(again) }
            let ok = try await RestoreJob(manifest: m, store: store, keyring: keyring).run(to: .file(again))
            #expect(ok.bytes == m.dump.plaintextSize)
            m.dump.plaintextSHA256 = String(repeating: "0", count: 64)
            let bad = root + "/../oldhash3-\(UUID().uuidString).dump"
            defer { unlink(bad) }
            do {
                _ = try await RestoreJob(manifest: m, store: store, keyring: keyring).run(to: .file(bad))
                Issue.record("expected a plaintext hash mismatch")
            } catch let e as CairnError {
                #expect(e.code == .integrity)
            }
        }
    }

    @Test func unknownDatabaseFailsWithOneLineAndLeavesNothing() async throws {
        let store = try TestEnv.s3()
        let db = TestDatabase(name: "cairn_no_such_db", url: try TestDatabase.url(for: "cairn_no_such_db"))
        do {
            _ = try await BackupJob(name: "j", spec: spec(db), store: store, keyring: try testKeyring()).run()
            Issue.record("expected failure")
        } catch let e as CairnError {
            #expect(e.code == .database || e.code == .process)
            #expect(e.description.contains("cairn_no_such_db"))
            #expect(!e.description.contains("\n"))
        }
        #expect(try await store.list(prefix: "").isEmpty)
        #expect(try await store.listMultipartUploads(prefix: "").isEmpty)
    }

    /// A database whose dump is several parts of 5 MiB even compressed.
    static let bulkySQL = """
    CREATE TABLE blobs (id int PRIMARY KEY, a text, b text, c text);
    INSERT INTO blobs SELECT g, md5(g::text) || md5((g*7)::text), md5((g*3)::text) || md5((g*11)::text), md5((g*5)::text) FROM generate_series(1, 250000) g;
    """

    func expectNothingLeft(_ store: any ObjectStore) async throws {
        #expect(try await store.list(prefix: "").filter { $0.key.hasSuffix(BackupLayout.manifestSuffix) }.isEmpty)
        // the abort runs even for a cancelled task, possibly just after it ended
        #expect(try await eventually(5) { try await store.listMultipartUploads(prefix: "").isEmpty })
    }

    @Test func pgDumpKilledMidStreamFailsTheBackup() async throws {
        let store = try TestEnv.s3()
        let db = try await TestDatabase.create("kill", sql: Self.bulkySQL)
        defer { Task { await db.drop() } }
        let progress = BackupProgress()
        let job = BackupJob(name: "j", spec: spec(db, partSize: 5 << 20), store: store, keyring: try testKeyring(), progress: progress)
        let killer = Task {
            while progress.snapshot.dumped < 2 << 20 { try await Task.sleep(for: .milliseconds(5)) }
            for pid in pgDumpPIDs(mentioning: db.name) { kill(pid, SIGKILL) }
        }
        do {
            _ = try await job.run()
            Issue.record("expected failure")
        } catch let e as CairnError {
            #expect(e.code == .process)
            #expect(e.message.contains("pg_dump"))
            #expect(e.message.contains("signal 9") || e.message.contains("SIGKILL"))
        }
        _ = try? await killer.value
        try await expectNothingLeft(store)
    }

    @Test func storageFailingPastTheRetryBudgetAbortsTheUpload() async throws {
        var store = try TestEnv.s3()
        store = S3Store(config: S3Configuration(bucket: store.config.bucket, prefix: store.config.prefix, endpoint: store.config.endpoint,
                                                retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.05)),
                        credentials: StaticCredentialsProvider(try TestEnv.credentials()))
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: store.config.prefix, query_contains: "uploadId", action: "status",
                                     status: 503, code: "SlowDown", count: 1000))
        let db = try await TestDatabase.create("s3fail", sql: Self.bulkySQL)
        defer { Task { await db.drop() } }
        do {
            _ = try await BackupJob(name: "j", spec: spec(db, partSize: 5 << 20), store: store, keyring: try testKeyring()).run()
            Issue.record("expected failure")
        } catch let e as CairnError {
            #expect(e.code == .storage)
            #expect(e.message.contains("UploadPart"))
            #expect(e.message.contains("SlowDown"))
        }
        try await proxy.clearFaults(pathContaining: store.config.prefix)
        try await expectNothingLeft(store)
        #expect(pgDumpPIDs(mentioning: db.name).isEmpty)
    }

    @Test func cancelledRunLeavesNoManifestNoUploadNoProcess() async throws {
        let store = try TestEnv.s3()
        let db = try await TestDatabase.create("cancel", sql: Self.bulkySQL)
        defer { Task { await db.drop() } }
        let progress = BackupProgress()
        let job = BackupJob(name: "j", spec: spec(db, partSize: 5 << 20), store: store, keyring: try testKeyring(), progress: progress)
        let run = Task { try await job.run() }
        while progress.snapshot.dumped < 6 << 20 { try await Task.sleep(for: .milliseconds(5)) }
        run.cancel()
        await #expect(throws: (any Error).self) { _ = try await run.value }
        try await expectNothingLeft(store)
        #expect(await eventually(5) { pgDumpPIDs(mentioning: db.name).isEmpty })
    }

    @Test func restoreRejectsWrongKeyAndTamperedObject() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("tamper", sql: marketplaceSQL)
            let target = db.name + "_t"
            defer { Task { await db.drop(); await TestDatabase.drop(target) } }
            let keyring = try testKeyring("k1")
            let m = try await BackupJob(name: "j", spec: spec(db), store: store, keyring: keyring).run()
            // a keyring without the backup's key id
            do {
                _ = try await RestoreJob(manifest: m, store: store, keyring: try testKeyring("other")).run(to: .file(root + "/../x-\(UUID()).dump"))
                Issue.record("expected failure")
            } catch let e as CairnError {
                #expect(e.code == .crypto)
                #expect(e.message.contains("k1"))
            }
            // the right id with the wrong key bytes
            do {
                _ = try await RestoreJob(manifest: m, store: store, keyring: try testKeyring("k1")).run(to: .file(root + "/../y-\(UUID()).dump"))
                Issue.record("expected failure")
            } catch let e as CairnError {
                #expect(e.code == .crypto)
            }
            // flip one byte in the middle of the stored object
            let path = root + "/" + m.dump.key
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count / 2] ^= 0x20
            try bytes.write(to: URL(fileURLWithPath: path))
            do {
                _ = try await RestoreJob(manifest: m, store: store, keyring: keyring)
                    .run(to: .database(try TestDatabase.url(for: target), create: true, jobs: 1))
                Issue.record("expected failure")
            } catch let e as CairnError {
                #expect(e.code == .integrity || e.code == .process)
            }
        }
    }

    @Test func passwordNeverAppearsInErrors() async throws {
        try await withDirectoryStore { store, root in
            let secret = "pw-\(UUID().uuidString)"
            let pwFile = root + "/../pw-\(UUID().uuidString)"
            try Data(secret.utf8).write(to: URL(fileURLWithPath: pwFile))
            chmod(pwFile, 0o600)
            defer { unlink(pwFile) }
            var s = BackupSpec(database: try TestDatabase.url(for: "cairn_missing_pw_db"), passwordFile: pwFile, prefix: "db")
            s.uploadConcurrency = 2
            do {
                _ = try await BackupJob(name: "j", spec: s, store: store, keyring: try testKeyring()).run()
                Issue.record("expected failure")
            } catch {
                #expect(!"\(error)".contains(secret))
                #expect("\(error)".contains("cairn_missing_pw_db"))
            }
        }
    }
}

extension ProxyControl {
    /// Removes this test's rules only (those injected with this `path_contains`): tests run in parallel.
    func clearFaults(pathContaining scope: String) async throws {
        let q = scope.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? scope
        _ = try await http.send(HTTPRequest(method: "DELETE", url: base + "/__proxy/faults?path_contains=" + q))
    }
}
