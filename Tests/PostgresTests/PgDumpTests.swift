import Core
import Foundation
@testable import Postgres
import Testing

@Suite(.serialized) struct PgDumpTests {
    /// Tables of every shape the counts must handle.
    static let schemaSQL = [
        "CREATE TABLE plain (id int, note text)",
        "CREATE SCHEMA \"Sales\"",
        "CREATE TABLE \"Sales\".\"Order\" (id int)",
        "CREATE TABLE measurements (at date, v int) PARTITION BY RANGE (at)",
        "CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        "CREATE TABLE parent (id int)",
        "CREATE TABLE child () INHERITS (parent)",
        "CREATE TABLE empty (id int)",
        "CREATE TABLE multiline (t text)",
    ]
    static let dataSQL = [
        "INSERT INTO plain SELECT g, 'n' || g FROM generate_series(1, 1000) g",
        "INSERT INTO \"Sales\".\"Order\" SELECT g FROM generate_series(1, 7) g",
        "INSERT INTO measurements SELECT DATE '2024-06-01' + (g % 400), g FROM generate_series(1, 500) g",
        "INSERT INTO parent SELECT g FROM generate_series(1, 5) g",
        "INSERT INTO child SELECT g FROM generate_series(1, 3) g",
        "INSERT INTO multiline VALUES (E'line1\\nline2'), (E'\\\\.'), ('x')",
    ]

    @Test func snapshotCountsDumpAndRestoreAgreeDespiteConcurrentInserts() async throws {
        let src = try await createDatabase("src")
        let dst = try await createDatabase("dst")
        defer { Task { await dropDatabase(src); await dropDatabase(dst) } }
        let setup = try await PGConnection.connect(conninfo(database: src))
        for s in Self.schemaSQL + Self.dataSQL { try await setup.execute(s) }

        let snapshot = try await DumpSnapshot.open(conninfo(database: src))
        let expected: TableRowCounts = [
            "public.plain": 1000, "\"Sales\".\"Order\"": 7,
            "public.measurements_2024": Int64(try await setup.queryValue("SELECT count(*) FROM measurements_2024")!)!,
            "public.measurements_2025": Int64(try await setup.queryValue("SELECT count(*) FROM measurements_2025")!)!,
            "public.parent": 5, "public.child": 3, "public.empty": 0, "public.multiline": 3,
        ]
        #expect(snapshot.rowCounts == expected)
        #expect(expected["public.measurements_2024"]! + expected["public.measurements_2025"]! == 500)
        #expect(snapshot.databaseSize > 1_000_000)
        #expect(snapshot.database == src)
        #expect(!snapshot.snapshotID.isEmpty)

        // After the snapshot: rows that neither the counts nor the dump may see.
        try await setup.execute("INSERT INTO plain SELECT g, 'late' FROM generate_series(1, 250) g")
        try await setup.execute("INSERT INTO empty VALUES (1)")
        try await setup.execute("DELETE FROM \"Sales\".\"Order\" WHERE id < 3")
        let now = try await setup.tableRowCounts()
        #expect(now["public.plain"] == 1250 && now["public.empty"] == 1 && now["\"Sales\".\"Order\""] == 5)

        let out = ByteChannel(capacity: 256 << 10)
        let dump = try PgDump(conninfo: conninfo(database: src), snapshot: snapshot.snapshotID, output: out)
        var counter = ArchiveRowCounter()
        var archive = Data()
        for try await chunk in out {
            try counter.consume(chunk)
            archive.append(chunk)
        }
        try await dump.wait()
        await snapshot.close()
        #expect(archive.starts(with: Data("PGDMP".utf8)))
        #expect(try counter.finish() == expected)

        // Restore from a stream into a fresh database and count there.
        let input = ByteChannel(capacity: 256 << 10)
        let restore = try PgRestore(source: .channel(input), target: .database(conninfo(database: dst)))
        async let fed = feed(archive, into: input)
        try await restore.wait()
        #expect(await fed == nil)
        let restoredConn = try await PGConnection.connect(conninfo(database: dst))
        #expect(try await restoredConn.tableRowCounts() == expected)
        await restoredConn.close()
        await setup.close()
    }

    @Test func parallelRestoreFromAFile() async throws {
        let src = try await createDatabase("psrc")
        let dst = try await createDatabase("pdst")
        defer { Task { await dropDatabase(src); await dropDatabase(dst) } }
        let setup = try await PGConnection.connect(conninfo(database: src))
        for s in Self.schemaSQL + Self.dataSQL { try await setup.execute(s) }
        let counts = try await setup.tableRowCounts()
        await setup.close()

        let out = ByteChannel(capacity: 1 << 20)
        let dump = try PgDump(conninfo: conninfo(database: src), snapshot: nil, output: out)
        let archive = try await collect(out)
        try await dump.wait()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-test-\(UUID()).dump").path
        try archive.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }

        #expect(throws: CairnError.self) {
            _ = try PgRestore(source: .channel(ByteChannel(capacity: 1)), target: .database(conninfo(database: dst)), options: .init(jobs: 2))
        }
        let restore = try PgRestore(source: .file(path), target: .database(conninfo(database: dst)), options: .init(jobs: 2))
        try await restore.wait()
        let conn = try await PGConnection.connect(conninfo(database: dst))
        #expect(try await conn.tableRowCounts() == counts)
        await conn.close()
    }

    @Test func dumpOfMissingDatabaseFailsWithProcessErrorAndStderrLine() async throws {
        let out = ByteChannel(capacity: 1 << 16)
        let dump = try PgDump(conninfo: conninfo(database: "cairn_no_such_db"), snapshot: nil, output: out)
        _ = await expectError(.process, containing: ["pg_dump exited with status 1: ", "does not exist"]) {
            _ = try await collect(out)
        }
        _ = await expectError(.process, containing: ["pg_dump exited with status 1"]) { try await dump.wait() }
    }

    @Test func dumpKilledMidStreamFailsTheStream() async throws {
        let db = try await createDatabase("kill")
        defer { Task { await dropDatabase(db) } }
        let setup = try await PGConnection.connect(conninfo(database: db))
        try await fillBigTable(setup)
        await setup.close()

        let out = ByteChannel(capacity: 64 << 10)
        let dump = try PgDump(conninfo: conninfo(database: db), snapshot: nil, output: out, options: .init(chunkSize: 64 << 10))
        let first = try await out.receive()
        #expect(first?.isEmpty == false)
        #expect(kill(dump.pid, SIGKILL) == 0)
        _ = await expectError(.process, containing: ["pg_dump was killed by signal 9"]) {
            while try await out.receive() != nil {}
        }
        await #expect(throws: CairnError.self) { try await dump.wait() }
        #expect(!processExists(dump.pid))
    }

    @Test func cancellationKillsAndReapsPgDump() async throws {
        let db = try await createDatabase("cancel")
        defer { Task { await dropDatabase(db) } }
        let setup = try await PGConnection.connect(conninfo(database: db))
        try await fillBigTable(setup)
        await setup.close()

        // The task awaiting wait() is cancelled while nobody reads: pg_dump is blocked on a full pipe.
        let out = ByteChannel(capacity: 64 << 10)
        let dump = try PgDump(conninfo: conninfo(database: db), snapshot: nil, output: out)
        let waiter = Task { try await dump.wait() }
        _ = try await out.receive()
        try await Task.sleep(for: .milliseconds(200))
        #expect(processExists(dump.pid))
        waiter.cancel()
        _ = await expectError(.cancelled, containing: ["pg_dump cancelled"]) { try await waiter.value }
        #expect(!processExists(dump.pid))
        await #expect(throws: CairnError.self) { while try await out.receive() != nil {} }

        // The consumer gives up on the channel.
        let out2 = ByteChannel(capacity: 64 << 10)
        let dump2 = try PgDump(conninfo: conninfo(database: db), snapshot: nil, output: out2)
        _ = try await out2.receive()
        out2.cancel(CairnError(.cancelled, "upload failed"))
        _ = await expectError(.cancelled, containing: ["pg_dump cancelled"]) { try await dump2.wait() }
        #expect(!processExists(dump2.pid))
    }

    @Test func passwordGoesToTheEnvironmentNeverToArgv() async throws {
        let db = try await createDatabase("pw")
        defer { Task { await dropDatabase(db) } }
        let secret = "pw-\(UInt32.random(in: 0...UInt32.max))-Secret"
        let role = "cairn_pw_\(UInt32.random(in: 0...UInt32.max))"
        let admin = try await PGConnection.connect(conninfo(database: db))
        try await admin.execute("CREATE ROLE \(role) LOGIN SUPERUSER PASSWORD '\(secret)'")
        try await fillBigTable(admin)
        await admin.close()
        defer { Task { await dropRole(role) } }

        // The password in the URL (as an operator might write it) must not leak into argv.
        let info = try ConnInfo(conninfo(database: db)).with("user", role).with("password", secret)
        let out = ByteChannel(capacity: 64 << 10)
        let dump = try PgDump(conninfo: info.keywordString, snapshot: nil, output: out)
        _ = try await out.receive()  // running, and blocked on its full pipe
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(dump.pid)/cmdline"))
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(dump.pid)/environ"))
        let argv = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        let env = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(argv.contains { $0.contains("--snapshot") } == false)
        #expect(argv.contains("--no-password"))
        #expect(argv.contains { $0.hasPrefix("--dbname=") && $0.contains("user='\(role)'") })
        #expect(!argv.joined(separator: " ").contains(secret))
        #expect(env.contains("PGPASSWORD=\(secret)"))
        dump.cancel()
        await #expect(throws: CairnError.self) { try await dump.wait() }
        #expect(!processExists(dump.pid))
    }

    @Test func restoreOfGarbageFailsNonZero() async throws {
        let dst = try await createDatabase("garbage")
        defer { Task { await dropDatabase(dst) } }
        let input = ByteChannel(capacity: 1 << 16)
        let restore = try PgRestore(source: .channel(input), target: .database(conninfo(database: dst)))
        _ = await feed(Data(repeating: 0x41, count: 1 << 20), into: input)
        _ = await expectError(.process, containing: ["pg_restore exited with status 1: ", "did not find magic string in file header"]) {
            try await restore.wait()
        }
        #expect(!processExists(restore.pid))
    }

    @Test func versionsAndGlobals() async throws {
        let v = try await pgDumpVersion()
        #expect(v.hasPrefix("pg_dump (PostgreSQL) "))
        let out = ByteChannel(capacity: 1 << 16)
        let all = try PgDumpAll(conninfo: testServerURL(), output: out)
        let sql = String(decoding: try await collect(out), as: UTF8.self)
        try await all.wait()
        #expect(sql.contains("CREATE ROLE postgres"))
        #expect(throws: CairnError.self) { try PostgresTools.locate("pg_dump", configured: "/nonexistent/pg_dump") }
        #expect(try PostgresTools.locate("pg_dump").hasSuffix("/pg_dump"))
    }

    @Test func psqlRunsAScriptAndStopsAtItsFirstErrorNamingIt() async throws {
        let db = try await createDatabase("psql")
        let url = try conninfo(database: db)
        try await Psql.run("CREATE TABLE t (x int);\nINSERT INTO t VALUES (1), (2);\n", conninfo: url)
        do {
            try await Psql.run("INSERT INTO t VALUES (3);\nSELECT * FROM missing_table;\nINSERT INTO t VALUES (4);\n", conninfo: url)
            Issue.record("expected failure")
        } catch let e as CairnError {
            #expect(e.code == .process)
            #expect(e.message == #"psql exited with status 3: psql:<stdin>:2: ERROR: relation "missing_table" does not exist"#)
            #expect((e.cause as? ProcessFailure)?.errorLine == #"psql:<stdin>:2: ERROR: relation "missing_table" does not exist"#)
        }
        let c = try await PGConnection.connect(url)
        #expect(try await c.queryValue("SELECT string_agg(x::text, ',' ORDER BY x) FROM t") == "1,2,3")  // stopped at the error
        await c.close()
        await dropDatabase(db)
    }
}

func dropRole(_ role: String) async {
    guard let url = try? testServerURL(), let admin = try? await PGConnection.connect(url) else { return }
    _ = try? await admin.execute("DROP ROLE IF EXISTS \(quoteIdentifier(role))")
    await admin.close()
}
