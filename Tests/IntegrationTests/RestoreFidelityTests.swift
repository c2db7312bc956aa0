import Foundation
import Testing
import Core
import Config
import Crypto
import Jobs
import ObjectStore
import Postgres

/// A database as an application has it: an owner role and an application
/// role (unique per test: roles are cluster-wide and suites run in
/// parallel), grants on tables and sequences, default privileges, a view, an
/// extension, a sequence past 1000, comments and a large object.
struct FidelityFixture {
    let tag: String
    let owner: String
    let app: String
    let db: TestDatabase

    static let largeObject = 424242

    /// `bulk`: also a table of ~13 MB, more than the pipes and channels between the download and pg_restore hold.
    static func create(_ label: String, bulk: Bool = false) async throws -> FidelityFixture {
        let tag = UUID().uuidString.prefix(6).lowercased()
        let owner = "cairn_fid_owner_\(tag)", app = "cairn_fid_app_\(tag)"
        let admin = try await PGConnection.connect(try TestDatabase.admin())
        try await admin.execute("CREATE ROLE \(owner) NOLOGIN")
        try await admin.execute("CREATE ROLE \(app) LOGIN CONNECTION LIMIT 20")
        try await admin.execute("GRANT \(app) TO \(owner)")
        try await admin.execute("COMMENT ON ROLE \(app) IS 'the application'")
        await admin.close()
        let db = try await TestDatabase.create(label, sql: """
        CREATE EXTENSION citext;
        CREATE SCHEMA shop AUTHORIZATION \(owner);
        COMMENT ON SCHEMA shop IS 'the shop';
        SET ROLE \(owner);
        ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO \(app);
        CREATE TABLE shop.items (id bigserial PRIMARY KEY, name citext NOT NULL, price numeric(10,2));
        INSERT INTO shop.items (name, price) SELECT 'Item ' || g, g * 1.5 FROM generate_series(1, 1200) g;
        COMMENT ON TABLE shop.items IS 'what we sell';
        COMMENT ON COLUMN shop.items.name IS 'case-insensitive';
        CREATE TABLE shop.audit (at timestamptz DEFAULT '2026-01-01', note text);
        INSERT INTO shop.audit (note) VALUES ('one'), ('two');
        CREATE SEQUENCE shop.invoice_no;
        SELECT setval('shop.invoice_no', 1234);
        CREATE VIEW shop.cheap AS SELECT id, name FROM shop.items WHERE price < 10;
        GRANT USAGE ON SCHEMA shop TO \(app);
        GRANT INSERT, UPDATE ON shop.items TO \(app);
        GRANT USAGE, SELECT ON SEQUENCE shop.items_id_seq, shop.invoice_no TO \(app);
        SELECT lo_from_bytea(\(largeObject), 'large object bytes');
        COMMENT ON LARGE OBJECT \(largeObject) IS 'a blob';
        GRANT SELECT ON LARGE OBJECT \(largeObject) TO \(app);
        \(bulk ? "CREATE TABLE shop.bulk AS SELECT g, md5(g::text) || md5((g * 7)::text) AS h FROM generate_series(1, 200000) g;" : "")
        RESET ROLE
        """)
        return FidelityFixture(tag: tag, owner: owner, app: app, db: db)
    }

    /// Runs `body` with a new fixture, then drops it (and `extraDatabases`),
    /// awaited: a clean-up left to a detached task can still run while the test process exits.
    static func with(_ label: String, bulk: Bool = false, extraDatabases: (FidelityFixture) -> [String] = { _ in [] },
                     _ body: (FidelityFixture) async throws -> Void) async throws {
        let f = try await create(label, bulk: bulk)
        do {
            try await body(f)
        } catch {
            await f.dropAll(extraDatabases: extraDatabases(f))
            throw error
        }
        await f.dropAll(extraDatabases: extraDatabases(f))
    }

    /// Drops the database and both roles (whatever is left of them).
    func dropAll(extraDatabases: [String] = []) async {
        await db.drop()
        for d in extraDatabases { await TestDatabase.drop(d) }
        await dropRoles()
    }

    func dropRoles() async {
        guard let admin = try? await PGConnection.connect(try TestDatabase.admin()) else { return }
        try? await admin.execute("DROP ROLE IF EXISTS \(owner)")
        try? await admin.execute("DROP ROLE IF EXISTS \(app)")
        await admin.close()
    }

    /// A URL of database `name` for user `user`.
    static func url(_ name: String, user: String = "postgres") throws -> String {
        try TestDatabase.url(for: name).replacingOccurrences(of: "postgres@", with: "\(user)@")
    }

    /// The lines of `pg_dumpall --globals-only --no-role-passwords` about this fixture's roles.
    func globalsLines() async throws -> [String] {
        try await pgTool("pg_dumpall", ["--globals-only", "--no-role-passwords", "--dbname=\(try TestDatabase.admin())"])
            .split(separator: "\n").map(String.init).filter { $0.contains(tag) && !$0.hasPrefix("--") }
    }

    /// What a database holds beyond its schema dump: sequence values, the large object, row counts.
    static func state(_ url: String) async throws -> [String] {
        let c = try await PGConnection.connect(url)
        do {
            let values = try await stateValues(c)
            await c.close()
            return values
        } catch {
            await c.close()
            throw error
        }
    }

    static func stateValues(_ c: PGConnection) async throws -> [String] {
        [
            try await c.queryValue("SELECT last_value::text FROM shop.invoice_no") ?? "-",
            try await c.queryValue("SELECT last_value::text FROM shop.items_id_seq") ?? "-",
            try await c.queryValue("SELECT convert_from(lo_get(\(largeObject)), 'UTF8') || ' / ' || pg_get_userbyid(lomowner) || ' / ' || obj_description(\(largeObject), 'pg_largeobject') || ' / ' || array_to_string(lomacl, ',') FROM pg_largeobject_metadata WHERE oid = \(largeObject)") ?? "-",
            try await c.queryValue("SELECT count(*)::text FROM shop.items") ?? "-",
            try await c.queryValue("SELECT count(*)::text FROM shop.audit") ?? "-",
            try await c.queryValue("SELECT extversion FROM pg_extension WHERE extname = 'citext'") ?? "-",
        ]
    }

    /// Connected as the application role: it reads its tables (the view, and
    /// a table it got through default privileges) and may not delete.
    func expectApplicationCanRead(_ name: String) async throws {
        let c = try await PGConnection.connect(try Self.url(name, user: app))
        #expect(try await c.queryValue("SELECT current_user") == app)
        #expect(try await c.queryValue("SELECT count(*)::text FROM shop.items") == "1200")
        #expect(try await c.queryValue("SELECT count(*)::text FROM shop.cheap") == "6")
        #expect(try await c.queryValue("SELECT count(*)::text FROM shop.audit") == "2")
        #expect(try await c.queryValue("SELECT nextval('shop.invoice_no')::text") == "1235")
        #expect(try await c.queryValue("SELECT convert_from(lo_get(\(Self.largeObject)), 'UTF8')") == "large object bytes")
        await #expect(throws: (any Error).self) { try await c.execute("DELETE FROM shop.items") }
        await c.close()
    }
}

/// `pg_dump --schema-only` with owners and ACLs, without comments and the
/// random \restrict keys of PostgreSQL 15.14+.
func schemaDump(_ url: String) async throws -> String {
    try await pgTool("pg_dump", ["--schema-only", "--dbname=\(url)"])
        .split(separator: "\n", omittingEmptySubsequences: false)
        .filter { !$0.hasPrefix("--") && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
        .joined(separator: "\n")
}

/// The standard output of a PostgreSQL client program.
func pgTool(_ program: String, _ args: [String]) async throws -> String {
    let out = ByteChannel(capacity: 1 << 20)
    let p = try ChildProcess(executable: try PostgresTools.locate(program), arguments: args, stdout: .channel(out))
    var text = Data()
    while let d = try await out.receive() { text.append(d) }
    try await p.waitForSuccess()
    return String(decoding: text, as: UTF8.self)
}

/// A key file made by `cairn key generate`, and its keyring.
func cliKey(in dir: String, id: String = "k") async throws -> (arg: String, keyring: Keyring) {
    let path = dir + "/\(id).key"
    let gen = try await CLI.run(["key", "generate", "--out", path])
    #expect(gen.status == 0, "\(gen.stderr)")
    return ("\(id)=\(path)", try Keyring(keys: [id: try Keyring.loadKeyFile(path: path)], activeKeyId: id))
}

@Suite struct RestoreFidelityTests {
    func backup(_ f: FidelityFixture, store: any ObjectStore, keyring: Keyring, prefix: String = "db") async throws -> BackupManifest {
        let spec = BackupSpec(database: f.db.url, prefix: prefix, includeGlobals: true, uploadConcurrency: 2)
        return try await BackupJob(name: "fid-\(f.tag)", spec: spec, store: store, keyring: keyring).run()
    }

    @Test func restoreRecreatesRolesOwnersPrivilegesAndEverythingElseWithOneCommand() async throws {
        try await FidelityFixture.with("fid") { f in try await withDirectoryStore { store, root in
            let key = try await cliKey(in: root)
            let m = try await backup(f, store: store, keyring: key.keyring)
            #expect(m.globals != nil)
            let schema = try await schemaDump(f.db.url), roles = try await f.globalsLines(), state = try await FidelityFixture.state(f.db.url)
            #expect(schema.contains("OWNER TO \(f.owner)"))
            #expect(schema.contains("GRANT SELECT ON TABLES  TO \(f.app)") || schema.contains("GRANT SELECT ON TABLES TO \(f.app)"))
            #expect(roles.count >= 5)  // CREATE + ALTER per role, the membership, the comment
            #expect(state[0] == "1234")

            await f.db.drop()
            await f.dropRoles()
            #expect(try await f.globalsLines().isEmpty)

            let r = try await CLI.run(["restore", "latest", "--storage", "file://\(root)", "--prefix", "db", "--key-file", key.arg,
                                       "--to", try FidelityFixture.url(f.db.name), "--create"])
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            #expect(r.stdout.contains("globals: applying (target lacks roles \(f.app), \(f.owner))"), "\(r.stdout)")
            #expect(r.stdout.contains("globals: created roles \(f.app), \(f.owner)"))
            #expect(r.stdout.contains("memberships \(f.app) → \(f.owner)"))
            #expect(r.stdout.contains("row counts of all"))

            #expect(try await schemaDump(f.db.url) == schema)
            #expect(try await f.globalsLines() == roles)
            #expect(try await FidelityFixture.state(f.db.url) == state)
            try await f.expectApplicationCanRead(f.db.name)
        } }
    }

    @Test func rolesThatExistAreReportedAndLeftAlone() async throws {
        try await FidelityFixture.with("fidx", extraDatabases: { [$0.db.name + "_g"] }) { f in try await withDirectoryStore { store, root in
            let forced = f.db.name + "_g"
            let key = try await cliKey(in: root)
            _ = try await backup(f, store: store, keyring: key.keyring)
            let schema = try await schemaDump(f.db.url), roles = try await f.globalsLines(), state = try await FidelityFixture.state(f.db.url)
            await f.db.drop()
            // A changed role is left as it is, not reset from the backup.
            let admin = try await PGConnection.connect(try TestDatabase.admin())
            try await admin.execute("ALTER ROLE \(f.app) CONNECTION LIMIT 7")
            await admin.close()

            let args = ["restore", "latest", "--storage", "file://\(root)", "--prefix", "db", "--key-file", key.arg, "--create"]
            let auto = try await CLI.run(args + ["--to", try FidelityFixture.url(f.db.name)])
            #expect(auto.status == 0, "\(auto.stdout)\(auto.stderr)")
            #expect(auto.stdout.contains("globals: not applied (the roles the backup names exist on the target: \(f.app), \(f.owner), "), "\(auto.stdout)")
            #expect(auto.stdout.contains("; --globals to apply)"))
            #expect(try await schemaDump(f.db.url) == schema)
            #expect(try await FidelityFixture.state(f.db.url) == state)
            try await f.expectApplicationCanRead(f.db.name)

            // --jobs 2: the archive is downloaded first and its table of contents read from the file.
            let forcedRun = try await CLI.run(args + ["--to", try FidelityFixture.url(forced), "--globals", "--jobs", "2"])
            #expect(forcedRun.status == 0, "\(forcedRun.stdout)\(forcedRun.stderr)")
            #expect(forcedRun.stdout.contains("globals: applying (--globals)"))
            #expect(forcedRun.stdout.contains("globals: roles already on the target, left alone: \(f.app), \(f.owner)"), "\(forcedRun.stdout)")
            #expect(forcedRun.stdout.contains("globals: created roles (none)"))
            try await f.expectApplicationCanRead(forced)
            let after = try await f.globalsLines()
            #expect(after.contains { $0.contains("ALTER ROLE \(f.app)") && $0.contains("CONNECTION LIMIT 7") })
            #expect(after.filter { !$0.contains("ALTER ROLE \(f.app) WITH") } == roles.filter { !$0.contains("ALTER ROLE \(f.app) WITH") })
        } }
    }

    @Test func aFailingPgRestoreIsReportedWithItsOwnErrorLine() async throws {
        // bulk: pg_restore fails while most of the stream is still to come (the broken pipe must not win).
        try await FidelityFixture.with("fide", bulk: true, extraDatabases: { [$0.db.name + "_e"] }) { f in try await withDirectoryStore { store, root in
            let target = f.db.name + "_e"
            let key = try await cliKey(in: root)
            _ = try await backup(f, store: store, keyring: key.keyring)
            await f.db.drop()
            await f.dropRoles()
            // Without the roles, and told not to create them: pg_restore itself fails on the first owner.
            let r = try await CLI.run(["restore", "latest", "--storage", "file://\(root)", "--prefix", "db", "--key-file", key.arg,
                                       "--to", try FidelityFixture.url(target), "--create", "--no-globals"])
            #expect(r.status == ErrorCode.process.exitStatus)
            #expect(r.stdout.contains("globals: not applied (--no-globals)"))
            #expect(r.stderr.contains("pg_restore exited with status 1: pg_restore: error: could not execute query: ERROR: role \"\(f.owner)\" does not exist"), "\(r.stderr)")
            #expect(r.stderr.contains("--globals"))
            #expect(!r.stderr.contains("Command was"))
            // One error line (progress lines, "cairn: restore ID: …", may come before it off a terminal).
            #expect(r.stderr.split(separator: "\n").filter { !$0.hasPrefix("cairn: restore ") }.count == 1, "\(r.stderr)")
            #expect(try await f.globalsLines().isEmpty)
            // The database this restore created is dropped again: the same command can be re-run.
            let admin = try await PGConnection.connect(try TestDatabase.admin())
            let left = try await admin.queryValue("SELECT count(*) FROM pg_database WHERE datname = $1", params: [target])
            await admin.close()
            #expect(left == "0")
        } }
    }

    @Test func aNonEmptyDatabaseIsRefusedBeforeAnyByteIsDownloaded() async throws {
        try await FidelityFixture.with("fidn") { f in try await refusesNonEmpty(f) }
    }

    func refusesNonEmpty(_ f: FidelityFixture) async throws {
        let store = try TestEnv.s3()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-fidn-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try await cliKey(in: dir)
        let m = try await backup(f, store: store, keyring: key.keyring)
        let storage = "s3://\(try TestEnv.bucket)/\(store.config.prefix.dropLast())?endpoint=\(try TestEnv.proxyEndpoint)&region=us-east-1&path_style=true"
        let env = ["AWS_ACCESS_KEY_ID": try TestEnv.accessKey, "AWS_SECRET_ACCESS_KEY": try TestEnv.secretKey, "AWS_EC2_METADATA_DISABLED": "true"]
        let args = ["restore", "latest", "--storage", storage, "--prefix", "db", "--key-file", key.arg]

        let r = try await CLI.run(args + ["--to", f.db.url], env: env)
        #expect(r.status == ErrorCode.usage.exitStatus, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("database \(f.db.name) is not empty (it has "), "\(r.stderr)")
        #expect(r.stderr.contains("shop.audit"))
        #expect(r.stderr.contains("--clean"))
        #expect(r.stderr.contains("--create"))
        let gets = try await ProxyControl().log(pathContaining: store.config.prefix).filter { $0.method == "GET" && $0.path.hasSuffix(".dump.zst.aes") }
        #expect(gets.isEmpty)
        #expect(m.dump.key.hasSuffix(".dump.zst.aes"))

        // An extension alone does not make a database non-empty; a type of its own does.
        let withExtension = try await TestDatabase.create("fidext", sql: "CREATE EXTENSION citext")
        let withType = try await TestDatabase.create("fidtype", sql: "CREATE TYPE public.mood AS ENUM ('ok', 'sad')")
        let intoExtension = try await CLI.run(args + ["--to", withExtension.url], env: env)
        let intoType = try await CLI.run(args + ["--to", withType.url], env: env)
        await withExtension.drop()
        await withType.drop()
        #expect(intoExtension.status == 0, "\(intoExtension.stdout)\(intoExtension.stderr)")
        #expect(intoType.status == ErrorCode.usage.exitStatus)
        #expect(intoType.stderr.contains("is not empty (it has type public.mood)"), "\(intoType.stderr)")

        // With --clean the same database is replaced: same rows, and no second copy.
        let admin = try await PGConnection.connect(f.db.url)
        try await admin.execute("INSERT INTO shop.audit (note) VALUES ('after the backup')")
        await admin.close()
        let clean = try await CLI.run(args + ["--to", f.db.url, "--clean"], env: env)
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        #expect(try await FidelityFixture.state(f.db.url)[4] == "2")

        // A wrong secret is a storage error (exit 7), not "no backup found" (exit 8).
        var wrong = env
        wrong["AWS_SECRET_ACCESS_KEY"] = "wrong-\(UUID().uuidString)"
        let denied = try await CLI.run(args + ["--to-file", dir + "/x.dump"], env: wrong)
        #expect(denied.status == ErrorCode.storageAuth.exitStatus, "\(denied.stderr)")
        #expect(denied.stderr.contains("SignatureDoesNotMatch"))
        #expect(!denied.stderr.contains("no backup"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/x.dump"))
    }

    @Test func latestWithoutJobRefusesSeveralJobsAndFilesAreNeverClobberedOrLeftHalfWritten() async throws {
        let db = try await TestDatabase.create("fidj", sql: "CREATE TABLE t (x int);\nINSERT INTO t SELECT generate_series(1, 100)")
        do {
            try await severalJobsAndFiles(db)
        } catch {
            await db.drop()
            throw error
        }
        await db.drop()
    }

    func severalJobsAndFiles(_ db: TestDatabase) async throws {
        try await withDirectoryStore { store, root in
            let dir = root + "/../cfg-\(UUID().uuidString.prefix(6))"
            try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let key = try await cliKey(in: dir)
            try """
            state_dir = "\(dir)/state"
            [storage.local]
            url = "file://\(root)"
            [keys]
            active = "k"
            [keys.files]
            k = "\(dir)/k.key"
            """.write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)
            var manifests: [BackupManifest] = []
            for job in ["alpha", "beta"] {
                try "kind = \"backup\"\n[backup]\ndatabase = \"\(db.url)\"\nprefix = \"\(job)\"\n"
                    .write(toFile: dir + "/jobs/\(job).toml", atomically: true, encoding: .utf8)
                let spec = BackupSpec(database: db.url, prefix: job)
                manifests.append(try await BackupJob(name: job, spec: spec, store: store, keyring: key.keyring).run())
            }
            let cfg = dir + "/cairn.toml"
            let file = dir + "/out.dump"

            let ambiguous = try await CLI.run(["restore", "-c", cfg, "latest", "--to-file", file])
            #expect(ambiguous.status == ErrorCode.usage.exitStatus)
            #expect(ambiguous.stderr.contains("found in several jobs: alpha (\(manifests[0].id)), beta (\(manifests[1].id)); pass --job"), "\(ambiguous.stderr)")
            #expect(!FileManager.default.fileExists(atPath: file))

            let ok = try await CLI.run(["restore", "-c", cfg, "latest", "--job", "beta", "--to-file", file])
            #expect(ok.status == 0, "\(ok.stderr)")
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)).count == Int(manifests[1].dump.plaintextSize))

            // An existing file is refused without --force, and left as it was.
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: file))
            let refused = try await CLI.run(["restore", "-c", cfg, "latest", "--job", "alpha", "--to-file", file])
            #expect(refused.status == ErrorCode.usage.exitStatus)
            #expect(refused.stderr.contains("\(file) already exists: pass --force"))
            #expect(try String(contentsOfFile: file, encoding: .utf8) == "keep me")
            let forced = try await CLI.run(["restore", "-c", cfg, "latest", "--job", "alpha", "--to-file", file, "--force"])
            #expect(forced.status == 0, "\(forced.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)).prefix(5) == Data("PGDMP".utf8))

            // A stored object that fails authentication half-way: no file, no temporary file.
            let object = root + "/" + manifests[0].dump.key
            var bytes = try Data(contentsOf: URL(fileURLWithPath: object))
            bytes[bytes.count - 40] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: object))
            let broken = dir + "/broken.dump"
            let failed = try await CLI.run(["restore", "-c", cfg, "latest", "--job", "alpha", "--to-file", broken])
            #expect(failed.status != 0)
            #expect(!FileManager.default.fileExists(atPath: broken))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("broken") }.isEmpty)
        }
    }
}
