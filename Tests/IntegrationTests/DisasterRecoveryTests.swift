import Foundation
import Testing
import Config
import Core
import Crypto
import Jobs
import ObjectStore
import Postgres

/// Disaster recovery from the bucket alone: a new host with nothing but the
/// storage URL, S3 credentials and the key file lists every job's backups and
/// restores one; and the config-side conveniences (storage names, --key-file).
@Suite struct DisasterRecoveryTests {
    static let itemsSQL = """
    CREATE TABLE items (id int PRIMARY KEY, name text);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
    CREATE SCHEMA shop;
    CREATE TABLE shop.orders (id int, item int);
    INSERT INTO shop.orders SELECT g, 1 + g % 500 FROM generate_series(1, 1200) g
    """

    /// A temporary directory with a key file (`k.key`, id `dr-key`).
    struct Host {
        let dir: String
        var keyFile: String { dir + "/k.key" }
        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-dr-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        func writeKey(_ key: Data) throws {
            try Data((key.hexString + "\n").utf8).write(to: URL(fileURLWithPath: keyFile))
            chmod(keyFile, 0o600)
        }
        func remove() { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// The storage URL of `root` in the test bucket, through the strict proxy.
    static func url(_ root: String) throws -> String {
        "s3://\(try TestEnv.bucket)/\(root)?endpoint=\(try TestEnv.proxyEndpoint)&region=us-east-1&path_style=true"
    }

    /// A "new host": S3 credentials in the environment, no config (CAIRN_CONFIG
    /// names a file that does not exist), an empty home.
    static func newHostEnv(_ host: Host) throws -> [String: String] {
        ["AWS_ACCESS_KEY_ID": try TestEnv.accessKey, "AWS_SECRET_ACCESS_KEY": try TestEnv.secretKey,
         "HOME": host.dir, "CAIRN_CONFIG": host.dir + "/no-such-cairn.toml"]
    }

    @Test func aNewHostListsEveryJobInTheBucketAndRestoresTheNewestOfOne() async throws {
        let root = TestEnv.uniquePrefix("dr")
        let store = try TestEnv.s3(prefix: root)
        let host = try Host()
        defer { host.remove() }
        let key = try SecureRandom.bytes(32)
        try host.writeKey(key)
        let keyring = try Keyring(keyId: "dr-key", key: key)
        let alpha = try await TestDatabase.create("dra", sql: Self.itemsSQL)
        let beta = try await TestDatabase.create("drb", sql: Self.itemsSQL)
        let restoredName = alpha.name + "_r"
        defer { Task { await alpha.drop(); await beta.drop(); await TestDatabase.drop(restoredName) } }

        // Two jobs under different prefixes (one nested); alpha twice, with more rows the second time.
        func backup(_ job: String, _ db: TestDatabase, prefix: String) async throws -> BackupManifest {
            try await BackupJob(name: job, spec: BackupSpec(database: db.url, prefix: prefix), store: store, keyring: keyring).run()
        }
        let a1 = try await backup("alpha-db", alpha, prefix: "alpha")
        let c = try await PGConnection.connect(alpha.url)
        try await c.execute("INSERT INTO items SELECT g, 'late ' || g FROM generate_series(501, 742) g")
        await c.close()
        let a2 = try await backup("alpha-db", alpha, prefix: "alpha")
        let b1 = try await backup("beta-db", beta, prefix: "nested/beta")
        #expect(a2.rowCounts["public.items"] == 742)

        let env = try Self.newHostEnv(host)
        let url = try Self.url(root)
        let list = try await CLI.run(["backups", "list", "--storage", url], env: env)
        #expect(list.status == 0, "\(list.stderr)")
        let out = list.stdout
        let marks = ["job alpha-db (", a1.id, a2.id, "job beta-db (", b1.id].map { out.range(of: $0)?.lowerBound }
        #expect(marks.allSatisfy { $0 != nil }, "\(out)")
        if marks.allSatisfy({ $0 != nil }) { #expect(marks.map { $0! } == marks.map { $0! }.sorted(), "\(out)") }
        #expect(out.contains("\(root.dropLast())/alpha)"))
        #expect(out.contains("\(root.dropLast())/nested/beta)"))
        #expect(out.contains("3 backup(s) of 2 job(s) in 2 location(s)"))

        let json = try await CLI.run(["backups", "list", "--storage", url, "--json"], env: env)
        #expect(json.status == 0, "\(json.stderr)")
        let arr = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(arr.compactMap { $0["id"] as? String } == [a1.id, a2.id, b1.id])
        #expect(arr.compactMap { $0["job"] as? String } == ["alpha-db", "alpha-db", "beta-db"])

        // `latest` of one job on the new host, into a new database.
        let target = try TestDatabase.url(for: restoredName)
        let restore = try await CLI.run(["restore", "latest", "--storage", url, "--job", "alpha-db",
                                         "--key-file", "dr-key=\(host.keyFile)", "--to", target, "--create"], env: env)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stdout.contains("restoring backup \(a2.id)"))
        #expect(restore.stdout.contains("/s)"), "the summary has a throughput: \(restore.stdout)")
        let r = try await PGConnection.connect(target)
        let counts = try await r.tableRowCounts()
        await r.close()
        #expect(counts["public.items"] == 742)
        #expect(counts["shop.orders"] == 1200)

        // backups show: the manifest as text and as JSON.
        let show = try await CLI.run(["backups", "show", String(a2.id.prefix(20)), "--storage", url, "--prefix", "alpha"], env: env)
        #expect(show.status == 0, "\(show.stderr)")
        let lines = show.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "backup \(a2.id)")
        #expect(lines.contains("  job          alpha-db"))
        #expect(lines.contains("  key id       dr-key"))
        #expect(lines.contains { $0.hasPrefix("  versions     server \(a2.serverVersion), pg_dump \(a2.pgDumpVersion), cairn ") })
        #expect(lines.contains { $0.hasPrefix("  ratio        ") })
        #expect(lines.contains { $0.hasPrefix("  finished") && $0.contains("/s)") })
        let rows = lines.filter { $0.hasPrefix("    ") }.map { $0.split(separator: " ").map(String.init) }
        #expect(rows.map { $0[0] } == ["public.items", "shop.orders"])
        #expect(rows.map { $0.last } == ["742", "1200"])
        let showJSON = try await CLI.run(["backups", "show", "latest", "--storage", url, "--job", "beta-db", "--json"], env: env)
        #expect(showJSON.status == 0, "\(showJSON.stderr)")
        let shown = try BackupManifest.decode(Data(showJSON.stdout.utf8), key: "stdout")
        #expect(shown.id == b1.id && shown.job == "beta-db" && shown.rowCounts == b1.rowCounts && shown.dump == b1.dump)
        // Byte for byte as stored: with its MAC.
        let stored = try await store.getData(key: BackupLayout.manifestKey(prefix: "nested/beta", id: b1.id), limit: 1 << 20)
        #expect(Data(showJSON.stdout.utf8) == stored)
        // Without --job, `latest` among two jobs is ambiguous.
        let ambiguous = try await CLI.run(["backups", "show", "latest", "--storage", url], env: env)
        #expect(ambiguous.status == 2)
        #expect(ambiguous.stderr.contains("--job"))
    }

    @Test func anEmptyBucketOrPrefixExitsNotFoundSayingWhereItLooked() async throws {
        let host = try Host()
        defer { host.remove() }
        try host.writeKey(try SecureRandom.bytes(32))
        let env = try Self.newHostEnv(host)
        let root = TestEnv.uniquePrefix("dr-empty")
        let rootName = String(root.dropLast())
        let store = try TestEnv.s3(prefix: root)
        _ = try await store.put(key: "somewhere/readme.txt", data: Data("not a backup".utf8))
        let url = try Self.url(root)

        let empty = try await CLI.run(["backups", "list", "--storage", url], env: env)
        #expect(empty.status == ErrorCode.notFound.exitStatus)
        #expect(empty.stderr.contains("s3://\(try TestEnv.bucket)/\(rootName)"), "\(empty.stderr)")
        #expect(empty.stderr.split(separator: "\n").count == 1)

        let prefixed = try await CLI.run(["backups", "list", "--storage", url, "--prefix", "somewhere"], env: env)
        #expect(prefixed.status == ErrorCode.notFound.exitStatus)
        #expect(prefixed.stderr.contains("\(rootName)/somewhere"), "\(prefixed.stderr)")

        let restore = try await CLI.run(["restore", "latest", "--storage", url, "--key-file", host.keyFile, "--to-file", host.dir + "/x.dump"], env: env)
        #expect(restore.status == ErrorCode.notFound.exitStatus)
        #expect(restore.stderr.contains(rootName), "\(restore.stderr)")
    }

    @Test func storageNamesKeyFileOverrideAndTheCredentialHint() async throws {
        let db = try await TestDatabase.create("drc", sql: Self.itemsSQL)
        defer { Task { await db.drop() } }
        let host = try Host()
        defer { host.remove() }
        try host.writeKey(try SecureRandom.bytes(32))
        let dir = host.dir
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        try Data(try TestEnv.secretKey.utf8).write(to: URL(fileURLWithPath: dir + "/s3secret"))
        chmod(dir + "/s3secret", 0o600)
        let root = TestEnv.uniquePrefix("dr-cfg")
        func config(keyFile: String) throws -> String {
            """
            state_dir = "\(dir)/state"
            [storage.vault]
            url = "s3://\(try TestEnv.bucket)/\(root)"
            endpoint = "\(try TestEnv.proxyEndpoint)"
            region = "us-east-1"
            path_style = true
            access_key_id = "\(try TestEnv.accessKey)"
            secret_access_key_file = "\(dir)/s3secret"
            [keys]
            active = "k"
            [keys.files]
            k = "\(keyFile)"
            [daemon]
            socket = "\(dir)/cairn.sock"
            """
        }
        try config(keyFile: dir + "/lost.key").write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)
        try config(keyFile: "credential:backup-key").write(toFile: dir + "/systemd.toml", atomically: true, encoding: .utf8)
        try "kind = \"backup\"\n[backup]\ndatabase = \"\(db.url)\"\nprefix = \"shop-db\"\n"
            .write(toFile: dir + "/jobs/shop.toml", atomically: true, encoding: .utf8)
        let cfg = dir + "/cairn.toml"
        let env = ["CAIRN_LOG_LEVEL": "critical"]

        // The config's key file is gone: the run fails, naming it; --key-file replaces it.
        let lost = try await CLI.run(["run", "-c", cfg, "shop"], env: env)
        #expect(lost.status != 0)
        #expect(lost.stderr.contains("lost.key"), "\(lost.stderr)")
        let run = try await CLI.run(["run", "-c", cfg, "shop", "--key-file", "k=\(host.keyFile)"], env: env)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("backup "))
        #expect(run.stdout.contains("/s)"), "the summary has a throughput: \(run.stdout)")

        // storage ls/get by the storage's name in cairn.toml (its URL and credentials).
        let ls = try await CLI.run(["storage", "ls", "-c", cfg, "vault"], env: env)
        #expect(ls.status == 0, "\(ls.stderr)")
        let manifests = ls.stdout.split(separator: "\n").filter { $0.hasPrefix("shop-db/") && $0.hasSuffix(".manifest.json") }
        #expect(manifests.count == 1, "\(ls.stdout)")
        let sub = try await CLI.run(["storage", "ls", "-c", cfg, "vault/shop-db/", "--long"], env: env)
        #expect(sub.status == 0, "\(sub.stderr)")
        #expect(sub.stdout.contains("2 object(s)"), "\(sub.stdout)")
        let manifestKey = try #require(manifests.first.map(String.init))
        let get = try await CLI.run(["storage", "get", "-c", cfg, "vault/\(manifestKey)", dir + "/m.json"], env: env)
        #expect(get.status == 0, "\(get.stderr)")
        #expect(get.stdout.hasPrefix("downloaded ") && get.stdout.contains("/s)"), "\(get.stdout)")
        let fetched = try BackupManifest.decode(try Data(contentsOf: URL(fileURLWithPath: dir + "/m.json")), key: manifestKey)
        #expect(fetched.job == "shop")
        let blob = testData(300_000, seed: 7)
        try blob.write(to: URL(fileURLWithPath: dir + "/blob"))
        let put = try await CLI.run(["storage", "put", "-c", cfg, dir + "/blob", "vault/extra/blob"], env: env)
        #expect(put.status == 0, "\(put.stderr)")
        #expect(put.stdout.hasPrefix("uploaded ") && put.stdout.contains("(300000 bytes)") && put.stdout.contains("/s)"), "\(put.stdout)")
        let toStdout = try await CLI.run(["storage", "get", "-c", cfg, "vault/extra/blob", "-"], env: env)
        #expect(toStdout.status == 0, "\(toStdout.stderr)")
        #expect(toStdout.stderr.hasPrefix("downloaded ") && toStdout.stderr.contains("(300000 bytes)"), "\(toStdout.stderr)")
        let back = try await CLI.run(["storage", "get", "-c", cfg, "vault/extra/blob", dir + "/blob.back"], env: env)
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/blob.back")) == blob)
        let unknown = try await CLI.run(["storage", "ls", "-c", cfg, "nowhere"], env: env)
        #expect(unknown.status == ErrorCode.config.exitStatus)
        #expect(unknown.stderr.contains("nowhere"))

        // A systemd credential outside systemd: one line naming what to pass with --key-file.
        var noCreds = env
        noCreds["CREDENTIALS_DIRECTORY"] = ""
        let cred = try await CLI.run(["run", "-c", dir + "/systemd.toml", "shop"], env: noCreds)
        #expect(cred.status == ErrorCode.config.exitStatus)
        #expect(cred.stderr.split(separator: "\n").count == 1, "\(cred.stderr)")
        #expect(cred.stderr.contains("'backup-key'") && cred.stderr.contains("--key-file k="), "\(cred.stderr)")
        let credRun = try await CLI.run(["run", "-c", dir + "/systemd.toml", "shop", "--key-file", "k=\(host.keyFile)"], env: noCreds)
        #expect(credRun.status == 0, "\(credRun.stderr)")
    }
}
