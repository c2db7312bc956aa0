import Core
import Foundation
@testable import Postgres
import Testing

/// The test server, from CAIRN_TEST_PG_URL (set by scripts/test). Tests fail,
/// not skip, without it.
func testServerURL() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["CAIRN_TEST_PG_URL"], !url.isEmpty else {
        throw TestSetupError(
            "CAIRN_TEST_PG_URL is not set: start a PostgreSQL server and export "
                + "CAIRN_TEST_PG_URL=postgres://postgres@127.0.0.1:PORT/postgres (scripts/test does this)")
    }
    return url
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A connection string for database `name` on the test server.
func conninfo(database name: String) throws -> String {
    try ConnInfo(testServerURL()).with("dbname", name).keywordString
}

/// A fresh database with a recognisable name; dropped by `dropDatabase`.
func createDatabase(_ tag: String) async throws -> String {
    let name = "cairn_test_\(tag)_\(UInt32.random(in: 0...UInt32.max))"
    let admin = try await PGConnection.connect(testServerURL())
    try await admin.execute("CREATE DATABASE \(quoteIdentifier(name))")
    await admin.close()
    return name
}

func dropDatabase(_ name: String) async {
    guard let url = try? testServerURL(), let admin = try? await PGConnection.connect(url) else { return }
    _ = try? await admin.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(name)) WITH (FORCE)")
    await admin.close()
}

/// Reads a channel to its end.
func collect(_ ch: ByteChannel) async throws -> Data {
    var d = Data()
    for try await chunk in ch { d.append(chunk) }
    return d
}

/// Feeds `data` into a channel in chunks, then finishes it (errors from a
/// cancelled channel are returned, not thrown).
@discardableResult
func feed(_ data: Data, into ch: ByteChannel, chunk: Int = 64 << 10) async -> (any Error)? {
    var off = 0
    do {
        while off < data.count {
            let end = min(off + chunk, data.count)
            try await ch.send(data.subdata(in: off..<end))
            off = end
        }
        ch.finish()
        return nil
    } catch {
        return error
    }
}

/// Whether a process with this pid exists (a zombie counts as existing).
func processExists(_ pid: pid_t) -> Bool {
    kill(pid, 0) == 0 || errno != ESRCH
}

/// Fills `db` with a table big enough that pg_dump outlives a small output buffer.
func fillBigTable(_ conn: PGConnection, rows: Int = 200_000) async throws {
    try await conn.execute("CREATE TABLE big (id int, payload text)")
    try await conn.execute("INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, \(rows)) g")
}

func expectError(_ code: ErrorCode, containing parts: [String], _ body: () async throws -> Void,
                 sourceLocation: SourceLocation = #_sourceLocation) async -> CairnError? {
    do {
        try await body()
        Issue.record("expected a \(code) error, got success", sourceLocation: sourceLocation)
        return nil
    } catch let e as CairnError {
        #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
        for p in parts {
            #expect(e.message.contains(p), "\"\(e.message)\" should contain \"\(p)\"", sourceLocation: sourceLocation)
        }
        #expect(!e.message.contains("\n"), "message should be one line: \(e.message)", sourceLocation: sourceLocation)
        return e
    } catch {
        Issue.record("expected CairnError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
