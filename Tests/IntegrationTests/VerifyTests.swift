import Foundation
import Testing
import Config
import Core
import Crypto
import Jobs
import ObjectStore
import Pipeline
import Postgres
import State

/// Scratch databases of verify job `job` on the test cluster (other suites
/// verify on the same server at the same time: each test looks at its own).
func scratchDatabases(job: String) async throws -> [String] {
    let c = try await PGConnection.connect(try TestDatabase.admin())
    defer { Task.detached { await c.close() } }
    return try await c.query("SELECT datname FROM pg_database WHERE datname LIKE 'cairn\\_verify\\_%' ORDER BY 1").compactMap { $0[0] }
        .filter { $0.hasPrefix(ScratchDatabaseName.jobPrefix(job)) }
}

/// A backup of the marketplace database in a store, and a verify job for it.
struct VerifyFixture {
    let db: TestDatabase
    let store: any ObjectStore
    let keyring: Keyring
    let manifest: BackupManifest
    let stateDir: String
    let verifyName: String

    static func make(store: any ObjectStore, globals: Bool = false, tag: String = "vfy") async throws -> VerifyFixture {
        let db = try await TestDatabase.create(tag, sql: marketplaceSQL)
        let keyring = try testKeyring()
        let spec = BackupSpec(database: db.url, prefix: "db", includeGlobals: globals, uploadConcurrency: 3)
        let manifest = try await BackupJob(name: "vdb", spec: spec, store: store, keyring: keyring).run()
        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-verify-state-\(UUID().uuidString.prefix(8))").path
        return VerifyFixture(db: db, store: store, keyring: keyring, manifest: manifest, stateDir: stateDir,
                             verifyName: "v-\(UUID().uuidString.prefix(6).lowercased())")
    }

    func job(checks: [VerifyCheck] = [], restoreJobs: Int = 1, backupID: String? = nil) throws -> VerifyJob {
        let spec = VerifySpec(backupJob: "vdb", scratchDatabaseURL: try TestDatabase.admin(), checks: checks,
                              restoreJobs: restoreJobs, backupID: backupID)
        return VerifyJob(name: verifyName, spec: spec, prefix: "db", store: store, keyring: keyring, stateDir: stateDir)
    }

    func cleanUp() async {
        await db.drop()
        try? FileManager.default.removeItem(atPath: stateDir)
    }

    /// The record stored next to the backup.
    func storedRecord() async throws -> VerifyRecord {
        try VerifyRecord.decode(try await store.getData(key: BackupLayout.verifyKey(prefix: "db", id: manifest.id)))
    }
}

/// Serialized. Each run drops the `cairn_verify_%` databases no live run
/// claims on the shared test server; each test asserts that its own are gone.
@Suite(.serialized) struct VerifyTests {
    @Test func goodBackupVerifiesWithEveryTableComparedThroughS3() async throws {
        let f = try await VerifyFixture.make(store: try TestEnv.s3(), globals: true)
        defer { Task { await f.cleanUp() } }
        let checks = [VerifyCheck(name: "users exist", sql: "SELECT count(*) = 3000 FROM users"),
                      VerifyCheck(sql: "SELECT count(*) = 0 FROM market.orders WHERE total < 0")]
        let report = try await f.job(checks: checks).run()
        let record = try #require(report.record)
        #expect(record.ok && record.error == nil)
        #expect(record.backupID == f.manifest.id)
        #expect(record.tablesCompared == f.manifest.rowCounts.count && record.tablesCompared == 4)
        #expect(Set(record.tables.map(\.table)) == Set(f.manifest.rowCounts.keys))
        #expect(record.tables.allSatisfy { $0.matches })
        #expect(record.rowsCompared == 3000 + 12000 + 3)
        #expect(record.checks.map(\.passed) == [true, true])
        #expect(record.globals == "ok")
        #expect(report.rtoSeconds != nil && report.newestVerifiedBackupID == f.manifest.id && report.rpoSeconds != nil)
        // In the bucket next to the backup, in the state database, and in the catalog.
        #expect(try await f.storedRecord() == record)
        let rows = try StateStore(stateDir: f.stateDir).verifications(verifyJob: f.verifyName)
        #expect(rows.count == 1 && rows[0].ok && rows[0].tables == 4 && rows[0].restoreSeconds == record.restoreSeconds)
        let entry = try #require(try await BackupCatalog(store: f.store, prefix: "db", keyring: f.keyring).scan().entries.first)
        #expect(entry.verificationState == "verified")
        #expect(try await scratchDatabases(job: f.verifyName).isEmpty)

        // Nothing left to verify; `latest` verifies again, spooled for pg_restore -j 2 (file removed).
        let again = try await f.job().run()
        #expect(again.record == nil && again.newestVerifiedBackupID == f.manifest.id)
        let parallel = try await f.job(restoreJobs: 2, backupID: "latest").run()
        #expect(parallel.record?.ok == true && parallel.record?.tablesCompared == 4)
        let spool = try FileManager.default.contentsOfDirectory(atPath: f.stateDir).filter { $0.hasSuffix(".dump") }
        #expect(spool.isEmpty)
        #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
    }

    @Test func truncatedObjectFailsWithTheFormatsError() async throws {
        try await withDirectoryStore { store, root in
            let f = try await VerifyFixture.make(store: store)
            defer { Task { await f.cleanUp() } }
            let path = root + "/" + f.manifest.dump.key
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            try bytes.prefix(bytes.count - 1000).write(to: URL(fileURLWithPath: path))
            do {
                _ = try await f.job().run()
                Issue.record("expected failure")
            } catch let e as CairnError {
                #expect(e.streamFormatError == .truncated, "\(e)")
            }
            let record = try await f.storedRecord()
            #expect(!record.ok && record.error != nil)
            #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
        }
    }

    @Test func alteredObjectFails() async throws {
        try await withDirectoryStore { store, root in
            let f = try await VerifyFixture.make(store: store)
            defer { Task { await f.cleanUp() } }
            let path = root + "/" + f.manifest.dump.key
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[bytes.count / 2] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: path))
            do {
                _ = try await f.job().run()
                Issue.record("expected failure")
            } catch let e as CairnError {
                #expect(e.code == .integrity || e.code == .crypto, "\(e)")
                #expect(e.streamFormatError != nil, "\(e)")
            }
            #expect(try await f.storedRecord().ok == false)
            #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
        }
    }

    @Test func alteredRowCountInAnAuthenticManifestFailsNamingTableAndCounts() async throws {
        try await withDirectoryStore { store, _ in
            let f = try await VerifyFixture.make(store: store)
            defer { Task { await f.cleanUp() } }
            var m = f.manifest
            m.rowCounts["market.orders"] = 12001
            // Re-sealed with the key: the MAC holds, only the count is wrong.
            _ = try await store.put(key: BackupLayout.manifestKey(prefix: "db", id: m.id), data: try ManifestAuthenticator.seal(m, keyring: f.keyring))
            do {
                _ = try await f.job().run()
                Issue.record("expected failure")
            } catch let e as CairnError {
                #expect(e.code == .integrity)
                #expect(e.message.contains("market.orders: manifest 12001, restored 12000"), "\(e.message)")
            }
            let record = try await f.storedRecord()
            #expect(record.mismatches == [VerifyRecord.Table(table: "market.orders", manifestRows: 12001, restoredRows: 12000)])
            #expect(record.tablesCompared == 4)
            #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
        }
    }

    @Test func failingCheckFailsNamingTheCheck() async throws {
        try await withDirectoryStore { store, _ in
            let f = try await VerifyFixture.make(store: store)
            defer { Task { await f.cleanUp() } }
            let checks = [VerifyCheck(name: "users exist", sql: "SELECT count(*) > 0 FROM users"),
                          VerifyCheck(name: "no late disputes", sql: "SELECT count(*) = 0 FROM \"Dispute \"\"x\"\" log\""),
                          VerifyCheck(name: "two values", sql: "SELECT true, true")]
            do {
                _ = try await f.job(checks: checks).run()
                Issue.record("expected failure")
            } catch let e as CairnError {
                #expect(e.code == .integrity)
                #expect(e.message.contains("check 'no late disputes' failed: returned f"), "\(e.message)")
                #expect(e.message.contains("check 'two values' failed"), "\(e.message)")
                #expect(!e.message.contains("users exist"))
            }
            let record = try await f.storedRecord()
            #expect(record.checks.map(\.passed) == [true, false, false])
            #expect(record.mismatches.isEmpty)
            #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
        }
    }

    @Test func leftoverScratchDatabaseIsDroppedByTheNextRun() async throws {
        try await withDirectoryStore { store, _ in
            let f = try await VerifyFixture.make(store: store)
            defer { Task { await f.cleanUp() } }
            let admin = try await PGConnection.connect(try TestDatabase.admin())
            try await admin.execute("CREATE DATABASE cairn_verify_x_y")
            await admin.close()
            let report = try await f.job().run()
            #expect(report.record?.ok == true)
            // Gone: no live verification claims it (this run, or another suite's on the same server, dropped it).
            #expect(try await scratchDatabases(job: "x").isEmpty)
            #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
        }
    }

    /// A scratch database a live verification claims (its advisory lock, held
    /// for its whole run, here by a session of the test) is not a leftover:
    /// another unit's run leaves it alone; once the claim is gone, it is dropped.
    @Test func aClaimedScratchDatabaseIsLeftAloneUntilItsRunEnds() async throws {
        try await withDirectoryStore { store, _ in
            let f = try await VerifyFixture.make(store: store)
            defer { Task { await f.cleanUp() } }
            let name = "cairn_verify_held_\(UUID().uuidString.prefix(6).lowercased())"
            let holder = try await PGConnection.connect(try TestDatabase.admin())
            #expect(try await holder.queryValue("SELECT pg_try_advisory_lock(hashtext($1))", params: ["cairn_verify:" + name]) == "t")
            try await holder.execute("CREATE DATABASE \(name)")
            #expect(try await f.job().run().record?.ok == true)
            #expect(try await scratchDatabases(job: "held").contains(name))
            // The claim ends (a run's ends with its session; here it is released first, so the server
            // has let go of it before the next run looks: a closed session's backend ends a moment later).
            #expect(try await holder.queryValue("SELECT pg_advisory_unlock(hashtext($1))", params: ["cairn_verify:" + name]) == "t")
            await holder.close()
            #expect(try await f.job(backupID: f.manifest.id).run().record?.ok == true)
            #expect(try await !scratchDatabases(job: "held").contains(name))
            #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
        }
    }

    @Test func cancelledMidRestoreLeavesNoScratchDatabase() async throws {
        let store = try TestEnv.s3()
        let f = try await VerifyFixture.make(store: store)
        defer { Task { await f.cleanUp() } }
        let proxy = try ProxyControl()
        let scope = f.manifest.dump.key
        try await proxy.inject(.init(method: "GET", path_contains: scope, action: "hold", seconds: 120))
        let run = Task { try await f.job().run() }
        // The scratch database exists and the download is held at the proxy: mid-restore.
        let midway = await eventually(30) {
            let dbs = (try? await scratchDatabases(job: f.verifyName)) ?? []
            let held = (try? await proxy.log(pathContaining: scope))?.contains { $0.method == "GET" } ?? false
            return !dbs.isEmpty && held
        }
        #expect(midway)
        run.cancel()
        await #expect(throws: (any Error).self) { _ = try await run.value }
        try await proxy.release(pathContaining: scope)
        #expect(try await scratchDatabases(job: f.verifyName).isEmpty)
        // A cancelled run says nothing about the backup: no record.
        #expect(try await store.head(key: BackupLayout.verifyKey(prefix: "db", id: f.manifest.id)) == nil)
    }

    @Test func cliVerifyPrintsTheRowCountTableAndSIGTERMLeavesNoScratchDatabase() async throws {
        let db = try await TestDatabase.create("vcli", sql: marketplaceSQL)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-verify-cli-\(UUID().uuidString.prefix(8))").path
        defer { Task { await db.drop(); try? FileManager.default.removeItem(atPath: dir) } }
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        try Data((try SecureRandom.bytes(32).hexString + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/k.key"))
        chmod(dir + "/k.key", 0o600)
        try Data(try TestEnv.secretKey.utf8).write(to: URL(fileURLWithPath: dir + "/s3secret"))
        chmod(dir + "/s3secret", 0o600)
        let root = TestEnv.uniquePrefix("vcli")
        try """
        state_dir = "\(dir)/state"
        timezone = "UTC"
        [storage.s3]
        url = "s3://\(try TestEnv.bucket)/\(root)"
        endpoint = "\(try TestEnv.proxyEndpoint)"
        region = "us-east-1"
        path_style = true
        access_key_id = "\(try TestEnv.accessKey)"
        secret_access_key_file = "\(dir)/s3secret"
        [keys]
        active = "k"
        [keys.files]
        k = "\(dir)/k.key"
        """.write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)
        try "kind = \"backup\"\n[backup]\ndatabase = \"\(db.url)\"\n".write(toFile: dir + "/jobs/shop.toml", atomically: true, encoding: .utf8)
        try """
        kind = "verify"
        [verify]
        backup_job = "shop"
        scratch_database_url = "\(try TestDatabase.admin())"
        checks = ["SELECT count(*) = 3000 FROM users", { name = "orders", sql = "SELECT count(*) > 0 FROM market.orders" }]
        """.write(toFile: dir + "/jobs/shop-verify.toml", atomically: true, encoding: .utf8)
        let cfg = dir + "/cairn.toml"
        let backup = try await CLI.run(["run", "-c", cfg, "shop", "--local"])
        #expect(backup.status == 0, "\(backup.stderr)")
        let before = try await CLI.run(["backups", "list", "-c", cfg])
        #expect(before.stdout.contains("VERIFIED") && before.stdout.contains(" never"), "\(before.stdout)")

        // --job takes the backup job that one verify unit verifies.
        let ok = try await CLI.run(["verify", "latest", "-c", cfg, "--job", "shop"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let lines = ok.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("  TABLE") && $0.contains("MANIFEST") && $0.contains("RESTORED") }, "\(ok.stdout)")
        #expect(lines.contains { $0.hasPrefix("  market.orders") && $0.contains(" 12000 ") && $0.hasSuffix("ok") }, "\(ok.stdout)")
        #expect(lines.contains { $0.contains("check ok") && $0.contains("orders") }, "\(ok.stdout)")
        #expect(ok.stdout.contains("measured RTO"), "\(ok.stdout)")
        let after = try await CLI.run(["backups", "list", "-c", cfg])
        #expect(after.stdout.contains(" verified"), "\(after.stdout)")
        let show = try await CLI.run(["backups", "show", "latest", "-c", cfg])
        #expect(show.stdout.contains("verified     verified"), "\(show.stdout)")
        let showJSON = try await CLI.run(["backups", "show", "latest", "-c", cfg, "--json", "--verification"])
        #expect(try VerifyRecord.decode(Data(showJSON.stdout.utf8)).ok, "\(showJSON.stderr)")
        let history = try StateStore(stateDir: dir + "/state").history(job: "shop-verify")
        #expect(history.first?.result == .ok)

        // SIGTERM while the download is held: the child drops its scratch database before it exits.
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "GET", path_contains: root + "shop/", path_suffix: ".dump.zst.aes", action: "hold", seconds: 120))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try CLI.binary)
        p.arguments = ["verify", "latest", "-c", cfg]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let exited = ExitSignal()
        p.terminationHandler = { _ in exited.fire() }
        try p.run()
        let midway = await eventually(30) {
            let dbs = (try? await scratchDatabases(job: "shop-verify")) ?? []
            let held = (try? await proxy.log(pathContaining: root + "shop/"))?.contains { $0.method == "GET" && $0.path.hasSuffix(".dump.zst.aes") && $0.status == nil } ?? false
            return !dbs.isEmpty && held
        }
        #expect(midway)
        kill(p.processIdentifier, SIGTERM)
        await exited.wait()
        try await proxy.release(pathContaining: root + "shop/")
        #expect(p.terminationStatus == 130, "status \(p.terminationStatus)")
        #expect(try await scratchDatabases(job: "shop-verify").isEmpty)

        // kill -9 mid-restore leaves the scratch database; the next run drops it and verifies.
        try await proxy.inject(.init(method: "GET", path_contains: root + "shop/", path_suffix: ".dump.zst.aes", action: "hold", seconds: 120))
        let k = Process()
        k.executableURL = URL(fileURLWithPath: try CLI.binary)
        k.arguments = ["verify", "latest", "-c", cfg]
        k.standardOutput = FileHandle.nullDevice
        k.standardError = FileHandle.nullDevice
        let killed = ExitSignal()
        k.terminationHandler = { _ in killed.fire() }
        let heldBefore = try await proxy.log(pathContaining: root + "shop/").filter { $0.method == "GET" && $0.path.hasSuffix(".dump.zst.aes") }.count
        try k.run()
        let midway2 = await eventually(30) {
            let dbs = (try? await scratchDatabases(job: "shop-verify")) ?? []
            let gets = (try? await proxy.log(pathContaining: root + "shop/"))?.filter { $0.method == "GET" && $0.path.hasSuffix(".dump.zst.aes") }.count ?? 0
            return !dbs.isEmpty && gets > heldBefore
        }
        #expect(midway2)
        kill(k.processIdentifier, SIGKILL)
        await killed.wait()
        try await proxy.release(pathContaining: root + "shop/")
        // (Left by the killed run; a verification of another suite on this server may have dropped it already.)
        #expect(try await scratchDatabases(job: "shop-verify").count <= 1)
        let next = try await CLI.run(["verify", "latest", "-c", cfg])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try await scratchDatabases(job: "shop-verify").isEmpty)
    }
}
