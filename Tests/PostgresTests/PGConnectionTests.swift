import Core
import Foundation
@testable import Postgres
import Testing

@Suite(.serialized) struct PGConnectionTests {
    @Test func connectsAndRunsParameterisedQueries() async throws {
        let conn = try await PGConnection.connect(testServerURL())
        #expect(conn.serverVersion >= 100000)
        #expect(try await conn.currentDatabase() == ConnInfo(testServerURL())["dbname"])
        let rows = try await conn.query("SELECT $1::int + 1, $2::text, 'x'", params: ["41", nil])
        #expect(rows == [["42", nil, "x"]])
        try await conn.execute("SELECT 1")
        await conn.close()
        await #expect(throws: CairnError.self) { try await conn.execute("SELECT 1") }
    }

    @Test func missingDatabaseFailsWithOneLineDatabaseError() async throws {
        let info = try ConnInfo(testServerURL())
        let port = info["port"] ?? "5432"
        _ = await expectError(.database, containing: ["cannot connect to postgres at", ":\(port)/cairn_no_such_db", "does not exist"]) {
            _ = try await PGConnection.connect(conninfo(database: "cairn_no_such_db"))
        }
    }

    @Test func connectErrorNeverShowsThePassword() async throws {
        let secret = "Sup3r-s3cret-\(UInt32.random(in: 0...UInt32.max))"
        let info = try ConnInfo(testServerURL()).with("dbname", "cairn_no_such_db").with("password", secret)
        let e = await expectError(.database, containing: ["does not exist"]) {
            _ = try await PGConnection.connect(info.keywordString)
        }
        #expect(e.map { !"\($0)".contains(secret) } ?? false)
        #expect(!info.description.contains(secret))
        #expect(!info.withoutPassword.contains(secret))
    }

    @Test func queryErrorsCarrySQLStateAndEndpoint() async throws {
        let conn = try await PGConnection.connect(testServerURL())
        _ = await expectError(.database, containing: ["query on postgres at", "SQLSTATE 42P01"]) {
            try await conn.execute("SELECT * FROM cairn_no_such_table")
        }
    }

    @Test func cancellingAQueryCancelsItOnTheServer() async throws {
        let conn = try await PGConnection.connect(testServerURL())
        let backend = try #require(try await conn.queryValue("SELECT pg_backend_pid()"))
        let t = Task { try await conn.execute("SELECT pg_sleep(30)") }
        // Cancel once the server runs the query (however long that takes to start).
        let watcher = try await PGConnection.connect(testServerURL())
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline,
              try await watcher.queryValue("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND query = 'SELECT pg_sleep(30)' AND state = 'active'",
                                           params: [backend]) != "1" {
            try await Task.sleep(for: .milliseconds(20))
        }
        await watcher.close()
        t.cancel()
        // An error (the server's "canceling statement"), not the sleep's normal end.
        await #expect(throws: CairnError.self) { try await t.value }
        #expect(try await conn.queryValue("SELECT 7") == "7")
    }

    @Test func connInfoParsesURLsAndKeywordsAndQuotes() throws {
        let u = try ConnInfo("postgres://alice:pw@db.example:6543/sales?sslmode=require")
        #expect(u["host"] == "db.example" && u["port"] == "6543" && u["dbname"] == "sales" && u["sslmode"] == "require")
        #expect(u.password == "pw")
        #expect(!u.withoutPassword.contains("pw'") && !u.withoutPassword.contains("password"))
        let k = try ConnInfo(#"host=/tmp dbname='it\'s' user=bob"#)
        #expect(k["dbname"] == "it's")
        #expect(try ConnInfo(k.withoutPassword)["dbname"] == "it's")
        #expect(throws: CairnError.self) { try ConnInfo("nonsense_keyword=1") }
    }

    @Test func identifiersAreQuotedLikeQuoteIdent() {
        #expect(qualifiedName(schema: "public", table: "users") == "public.users")
        #expect(qualifiedName(schema: "Sales", table: "Order") == "\"Sales\".\"Order\"")
        #expect(quoteIdentifier("order") == "\"order\"")
        #expect(quoteIdentifier("a\"b") == "\"a\"\"b\"")
        #expect(quoteIdentifier("t1$") == "t1$")
        #expect(quoteIdentifier("1t") == "\"1t\"")
    }
}
