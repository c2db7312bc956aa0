import Foundation
import Testing
import Config
import Core
import Crypto
@testable import Jobs
import ObjectStore
import Pipeline
import Postgres

/// A catalog that one bad file cannot break or forge (issue 11, item 3):
/// real backups of a real database into moto S3 and a DirectoryStore, then
/// manifests and objects damaged or rewritten as an attacker without the key would.
@Suite struct CatalogTests {
    static let sql = """
    CREATE TABLE t (id int PRIMARY KEY, v text);
    INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 200) g
    """

    /// `n` backups of `db`, a row added before each one after the first, so that every backup differs.
    func backups(_ n: Int, of db: TestDatabase, job: String, store: any ObjectStore, keyring: Keyring) async throws -> [BackupManifest] {
        var out: [BackupManifest] = []
        for i in 0..<n {
            if i > 0 {
                let c = try await PGConnection.connect(db.url)
                try await c.execute("INSERT INTO t VALUES (\(1000 + i), 'added before backup \(i + 1)')")
                await c.close()
            }
            let spec = BackupSpec(database: db.url, prefix: "db", uploadConcurrency: 2)
            out.append(try await BackupJob(name: job, spec: spec, store: store, keyring: keyring).run())
        }
        return out
    }

    /// A key file (mode 600, a name of its own: tests run in parallel) holding
    /// `keyring`'s key `id`; the `--key-file` argument for it.
    func keyFile(_ keyring: Keyring, id: String, in dir: String) throws -> String {
        let path = dir + "/cairn-catalog-\(UUID().uuidString).key"
        try Data((keyring.key(for: id)!.hexString + "\n").utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        return "\(id)=\(path)"
    }

    func manifestKey(_ m: BackupManifest) -> String { BackupLayout.manifestKey(prefix: "db", id: m.id) }

    @Test func aTruncatedManifestAmongFiveIsReportedAndTheOtherFourStayRestorable() async throws {
        let store = try TestEnv.s3()
        let db = try await TestDatabase.create("cat5", sql: Self.sql)
        defer { Task { await db.drop() } }
        let keyring = try testKeyring("k1")
        let made = try await backups(5, of: db, job: "cat-five", store: store, keyring: keyring)
        let bad = made[2]
        let stored = try await store.getData(key: manifestKey(bad))
        _ = try await store.put(key: manifestKey(bad), data: stored.prefix(stored.count / 2))

        let scan = try await BackupCatalog(store: store, prefix: "db", keyring: keyring).scan()
        #expect(scan.entries.map(\.manifest.id) == made.filter { $0.id != bad.id }.map(\.id))
        #expect(scan.entries.allSatisfy { $0.authentication == .authenticated })
        try #require(scan.problems.count == 1)
        #expect(scan.problems[0].key == manifestKey(bad))
        guard case .undecodable(.invalid) = scan.problems[0].reason else {
            Issue.record("reason: \(scan.problems[0].reason)")
            return
        }
        #expect("\(scan.problems[0])".contains(manifestKey(bad)))
        // The simple API lists the same four.
        #expect(try await BackupCatalog(store: store, prefix: "db").list().map(\.id) == scan.entries.map(\.manifest.id))

        // Each of the four restores; `latest` is still the fifth.
        let catalog = BackupCatalog(store: store, prefix: "db", keyring: keyring)
        #expect(try catalog.find("latest", in: scan).manifest.id == made[4].id)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-cat5-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for entry in scan.entries {
            try entry.requireTrusted(trustUnauthenticated: false)
            let r = try await RestoreJob(manifest: entry.manifest, store: store, keyring: keyring).run(to: .file(dir + "/\(entry.manifest.id).dump"))
            #expect(r.bytes == entry.manifest.dump.plaintextSize)
        }
        #expect(try await ProxyControl().violations(containing: store.config.prefix).isEmpty)
    }

    @Test func aStoredManifestIsMACdJSONThatTheReferenceDecryptorVerifies() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("catpy", sql: Self.sql)
            defer { Task { await db.drop() } }
            let keyring = try testKeyring("k1")
            let m = try await backups(1, of: db, job: "cat-py", store: store, keyring: keyring)[0]
            #expect(m.formatVersion == 2)
            #expect(m.encryption == "cairn-stream-v2")
            let manifestPath = root + "/" + manifestKey(m)
            let stored = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
            // Plain JSON (cat, jq): the manifest's fields and its MAC.
            let json = try #require(try JSONSerialization.jsonObject(with: stored) as? [String: Any])
            #expect(json["id"] as? String == m.id)
            #expect((json["mac"] as? String)?.count == 64)
            #expect(try ManifestAuthenticator.open(stored, key: manifestKey(m), keyring: keyring).1 == .authenticated)

            let keyArg = try keyFile(keyring, id: "k1", in: root)
            let keyPath = String(keyArg.dropFirst("k1=".count))
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("scripts/decrypt-backup.py").path
            let out = root + "/py-\(m.id).zst"
            let ok = try await CLI.run(["-c", "exec python3 \"$@\" >\"$CAIRN_PY_OUT\"", "sh",
                                        script, "--key-file", keyPath, "--manifest", manifestPath, root + "/" + m.dump.key],
                                       env: ["CAIRN_PY_OUT": out], executable: "/bin/sh")
            #expect(ok.status == 0, "\(ok.stderr)")
            let zst = try Data(contentsOf: URL(fileURLWithPath: out))
            #expect(zst.prefix(4) == Data([0x28, 0xB5, 0x2F, 0xFD]))  // a zstd frame

            // Edited without the key: the script refuses the manifest too.
            var edited = stored
            let host = Data("\"hostname\" : \"".utf8)
            let at = try #require(edited.range(of: host)).upperBound
            edited[at] = edited[at] == UInt8(ascii: "x") ? UInt8(ascii: "y") : UInt8(ascii: "x")
            try edited.write(to: URL(fileURLWithPath: manifestPath))
            let bad = try await CLI.run(["-c", "exec python3 \"$@\"", "sh", script, "--key-file", keyPath, "--manifest", manifestPath, "--verify-manifest"],
                                        executable: "/bin/sh")
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("its MAC does not verify"), "\(bad.stderr)")
        }
    }

    /// Backup 1's objects copied over backup 2's names, and backup 2's
    /// manifest rewritten to match them (sizes, hashes, row counts) by
    /// someone without the key: `restore latest` must not return the old data.
    @Test func objectsOfAnOlderBackupCopiedOverANewerOnesNamesAreRefused() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("catrel", sql: Self.sql)
            defer { Task { await db.drop() } }
            let keyring = try testKeyring("k1")
            let made = try await backups(2, of: db, job: "cat-relabel", store: store, keyring: keyring)
            let (b1, b2) = (made[0], made[1])
            #expect(b1.dump.ciphertextSHA256 != b2.dump.ciphertextSHA256)

            // The attack: copy the objects, rewrite the manifest's numbers, keep its old MAC line.
            _ = try await store.put(key: b2.dump.key, data: try await store.getData(key: b1.dump.key))
            var forged = b2
            forged.dump = BackupObject(key: b2.dump.key, plaintextSize: b1.dump.plaintextSize, plaintextSHA256: b1.dump.plaintextSHA256,
                                       ciphertextSize: b1.dump.ciphertextSize, ciphertextSHA256: b1.dump.ciphertextSHA256,
                                       partSize: b1.dump.partSize, partCount: b1.dump.partCount, etag: b1.dump.etag)
            forged.rowCounts = b1.rowCounts
            let original = try await store.getData(key: manifestKey(b2))
            let trailer = original.suffix(81)   // ,\n  "mac" : "<64 hex>"\n}\n
            #expect(String(decoding: trailer, as: UTF8.self).hasPrefix(",\n  \"mac\" : \""))
            let json = try forged.encoded()
            _ = try await store.put(key: manifestKey(b2), data: json.prefix(json.count - 2) + trailer)

            let scan = try await BackupCatalog(store: store, prefix: "db", keyring: keyring).scan()
            #expect(scan.problems.isEmpty)
            #expect(scan.entries.map(\.authentication) == [.authenticated, .unauthenticated(.macMismatch)])
            let latest = try BackupCatalog(store: store, prefix: "db", keyring: keyring).find("latest", in: scan)
            #expect(latest.manifest.id == b2.id && latest.manifest.dump == forged.dump)

            // Library: refused as unauthenticated; trusted anyway, refused by the stream's header.
            do {
                try latest.requireTrusted(trustUnauthenticated: false)
                Issue.record("an unauthenticated manifest was trusted")
            } catch let e as CairnError {
                #expect(e.untrustedManifest == UntrustedManifest(key: manifestKey(b2), authentication: .unauthenticated(.macMismatch)))
            }
            let file = root + "/relabel-\(UUID().uuidString).dump"
            defer { unlink(file) }
            do {
                _ = try await RestoreJob(manifest: latest.manifest, store: store, keyring: keyring).run(to: .file(file))
                Issue.record("the old backup was restored under the new one's name")
            } catch let e as CairnError {
                #expect(e.streamFormatError == .contextMismatch, "\(e)")
                #expect(e.message.contains("stored object \(b2.dump.key)"))
                #expect(e.message.contains("does not belong to the dump of backup \(b2.id) of job cat-relabel"))
                #expect(e.message.contains("its header names the dump of backup \(b1.id) of job cat-relabel"))
            }
            // Refused at the header: not one byte of the old dump was written.
            #expect(((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) == 0)

            // The CLI, as an operator on a new host would run it.
            let keyArg = try keyFile(keyring, id: "k1", in: root)
            let base = ["restore", "latest", "--storage", "file://\(root)", "--prefix", "db", "--key-file", keyArg]
            let refused = try await CLI.run(base + ["--to-file", root + "/cli-\(UUID().uuidString).dump"])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("cairn: error: manifest \(manifestKey(b2)) is unauthenticated: its MAC does not verify"), "\(refused.stderr)")
            #expect(refused.stderr.contains("--trust-unauthenticated"))
            let trusted = try await CLI.run(base + ["--trust-unauthenticated", "--to-file", root + "/cli-\(UUID().uuidString).dump"])
            #expect(trusted.status == ErrorCode.integrity.exitStatus, "\(trusted.stderr)")
            #expect(trusted.stderr.contains("stored object \(b2.dump.key): encrypted stream does not belong to the dump of backup \(b2.id) of job cat-relabel: its header names the dump of backup \(b1.id) of job cat-relabel"), "\(trusted.stderr)")
            // The older backup itself is still restorable.
            let older = try await CLI.run(["restore", b1.id] + base.dropFirst(2) + ["--to-file", root + "/cli-\(UUID().uuidString).dump"])
            #expect(older.status == 0, "\(older.stderr)")
        }
    }

    @Test func anEditedManifestListsAsUnauthenticatedAndAFormat1OneWithAWarning() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("catedit", sql: Self.sql)
            defer { Task { await db.drop() } }
            let keyring = try testKeyring("k1")
            let made = try await backups(3, of: db, job: "cat-edit", store: store, keyring: keyring)

            // 1: a number edited in place, the MAC line left as it was.
            let path1 = root + "/" + manifestKey(made[1])
            var edited = try Data(contentsOf: URL(fileURLWithPath: path1))
            let level = try #require(edited.range(of: Data("\"compressionLevel\" : 3".utf8)))
            edited.replaceSubrange(level, with: Data("\"compressionLevel\" : 9".utf8))
            try edited.write(to: URL(fileURLWithPath: path1))
            // 2: rewritten as a format 1 manifest (no MAC), as Cairn wrote them before.
            var old = made[2]
            old.formatVersion = 1
            old.encryption = "cairn-stream-v1"
            try old.encoded().write(to: URL(fileURLWithPath: root + "/" + manifestKey(made[2])))

            let scan = try await BackupCatalog(store: store, prefix: "db", keyring: keyring).scan()
            #expect(scan.problems.isEmpty)
            #expect(scan.entries.map(\.authentication) == [.authenticated, .unauthenticated(.macMismatch), .unauthenticated(.formatVersion1)])
            #expect(scan.entries[1].manifest.compressionLevel == 9)
            // Without a keyring nothing can be checked, but what has no MAC is still unauthenticated.
            let unkeyed = try await BackupCatalog(store: store, prefix: "db").scan()
            #expect(unkeyed.entries.map(\.authentication) == [.notChecked(keyId: "k1"), .notChecked(keyId: "k1"), .unauthenticated(.formatVersion1)])

            let keyArg = try keyFile(keyring, id: "k1", in: root)
            let listed = try await CLI.run(["backups", "list", "--storage", "file://\(root)", "--prefix", "db", "--key-file", keyArg])
            #expect(listed.status == 0, "\(listed.stderr)")
            let rows = listed.stdout.split(separator: "\n").map { $0.drop { $0 == " " } }.filter { $0.hasPrefix("2") }
            try #require(rows.count == 3)
            // AUTH, then VERIFIED (never verified here).
            #expect(rows[0].hasSuffix("  authenticated    never"))
            #expect(rows[1].hasSuffix("  unauthenticated  never"))
            #expect(rows[2].hasSuffix("  unauthenticated  never"))
            #expect(listed.stderr.contains("warning: manifest \(manifestKey(made[1])) is unauthenticated: its MAC does not verify"))
            #expect(listed.stderr.contains("warning: manifest \(manifestKey(made[2])) is unauthenticated: a format 1 manifest carries no MAC"))
            let asJSON = try await CLI.run(["backups", "list", "--storage", "file://\(root)", "--prefix", "db", "--json"])
            let objects = try #require(try JSONSerialization.jsonObject(with: Data(asJSON.stdout.utf8)) as? [[String: Any]])
            #expect(objects.map { $0["authentication"] as? String } == ["not checked", "not checked", "unauthenticated"])
            #expect(objects.map { $0["id"] as? String } == made.map(\.id))

            // Restoring the format 1 manifest needs --trust-unauthenticated, and says why.
            let base = ["restore", made[2].id, "--storage", "file://\(root)", "--prefix", "db", "--key-file", keyArg]
            let refused = try await CLI.run(base + ["--to-file", root + "/f1-\(UUID().uuidString).dump"])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("manifest \(manifestKey(made[2])) is unauthenticated: a format 1 manifest carries no MAC"))
            #expect(refused.stderr.contains("bypass authentication"))
            let trusted = try await CLI.run(base + ["--trust-unauthenticated", "--to-file", root + "/f1-\(UUID().uuidString).dump"])
            #expect(trusted.status == 0, "\(trusted.stderr)")
        }
    }

    @Test func aManifestCopiedUnderAnotherBackupsNameIsSkipped() async throws {
        try await withDirectoryStore { store, root in
            let db = try await TestDatabase.create("catcopy", sql: Self.sql)
            defer { Task { await db.drop() } }
            let keyring = try testKeyring("k1")
            let made = try await backups(2, of: db, job: "cat-copy", store: store, keyring: keyring)
            // An authentic manifest of backup 1 stored as backup 2's.
            _ = try await store.put(key: manifestKey(made[1]), data: try await store.getData(key: manifestKey(made[0])))
            let scan = try await BackupCatalog(store: store, prefix: "db", keyring: keyring).scan()
            #expect(scan.entries.map(\.manifest.id) == [made[0].id])
            try #require(scan.problems.count == 1)
            #expect(scan.problems[0].key == manifestKey(made[1]))
            guard case .misnamed(let id) = scan.problems[0].reason else { Issue.record("\(scan.problems[0].reason)"); return }
            #expect(id == made[0].id)

            // `restore latest` restores the older backup, and says that a newer manifest was skipped.
            let keyArg = try keyFile(keyring, id: "k1", in: root)
            let r = try await CLI.run(["restore", "latest", "--storage", "file://\(root)", "--prefix", "db", "--key-file", keyArg,
                                       "--to-file", root + "/latest.dump"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("restoring backup \(made[0].id)"))
            #expect(r.stderr.contains("cairn: warning: manifest \(manifestKey(made[1])) skipped: it describes backup \(made[0].id)"), "\(r.stderr)")
            #expect(r.stderr.contains("cairn: warning: manifest \(manifestKey(made[1])), newer than backup \(made[0].id), was skipped"), "\(r.stderr)")
        }
    }
}

/// Skipped manifests and their reasons, without a database.
@Suite struct CatalogProblemTests {
    @Test func unreadableAndUndecodableManifestsAreReportedWithTheirReason() async throws {
        try await withDirectoryStore { store, _ in
            let ids = ["20261201T023000Z-00000001", "20261202T023000Z-00000002", "20261203T023000Z-00000003"]
            let keys = ids.map { BackupLayout.manifestKey(prefix: "db", id: $0) }
            _ = try await store.put(key: keys[0], data: Data(count: (16 << 20) + 1))
            _ = try await store.put(key: keys[1], data: Data("[]".utf8))
            _ = try await store.put(key: keys[2], data: try ManifestAuthenticatorTests.manifest(formatVersion: 3).encoded())
            let scan = try await BackupCatalog(store: store, prefix: "db").scan()
            #expect(scan.entries.isEmpty)
            #expect(scan.problems.map(\.key) == keys)
            guard scan.problems.count == 3 else { return }
            if case .unreadable(let e) = scan.problems[0].reason { #expect(e.message.contains("larger than")) } else { Issue.record("\(scan.problems[0])") }
            if case .undecodable(.invalid) = scan.problems[1].reason {} else { Issue.record("\(scan.problems[1])") }
            if case .undecodable(.unsupportedFormatVersion(3)) = scan.problems[2].reason {} else { Issue.record("\(scan.problems[2])") }
            #expect("\(scan.problems[2])" == "manifest \(keys[2]) skipped: format version 3 is not one this Cairn reads (1 ... 2)")
            #expect(try await BackupCatalog(store: store, prefix: "db").list().isEmpty)
            do {
                _ = try await BackupCatalog(store: store, prefix: "db").find("latest")
                Issue.record("found a backup among three bad manifests")
            } catch let e as CairnError {
                #expect(e.code == .notFound)
            }
        }
    }
}
