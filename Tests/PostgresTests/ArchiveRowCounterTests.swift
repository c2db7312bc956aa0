import Core
import Foundation
@testable import Postgres
import Testing

/// The row counter must give the same counts however the archive's bytes are
/// cut into chunks: boundaries inside length fields, inside the `\.` line,
/// inside rows, everywhere.
@Suite(.serialized) struct ArchiveRowCounterTests {
    static let sql = [
        "CREATE TABLE empty (id int)",
        "CREATE TABLE backslashes (t text, u text)",
        "INSERT INTO backslashes VALUES (E'\\\\', E'a\\\\b'), (E'\\\\.', 'x'), (E'\\\\\\\\.', NULL), (E'\\n\\\\.\\n', E'\\t'), ('.', E'\\\\')",
        "CREATE TABLE dotonly (t text)",
        "INSERT INTO dotonly VALUES (E'\\\\.'), (E'\\\\.'), (''), (NULL)",
        "CREATE TABLE longrows (id int, t text)",
        "INSERT INTO longrows SELECT g, repeat(E'ab\\\\c\\n', 40000 + g) FROM generate_series(1, 3) g",
        "CREATE TABLE smallrows (id int)",
        "INSERT INTO smallrows SELECT g FROM generate_series(1, 20000) g",
        "CREATE TABLE \"Odd \"\"name\"\"\" (t text)",
        "INSERT INTO \"Odd \"\"name\"\"\" VALUES (E'\\\\.\\\\.')",
        // A large object whose bytes look like COPY text: never counted.
        "SELECT lo_from_bytea(0, '\\x0a5c2e0a310a'::bytea)",
    ]

    @Test func countsDoNotDependOnChunkBoundaries() async throws {
        let db = try await createDatabase("rowsplit")
        defer { Task { await dropDatabase(db) } }
        let setup = try await PGConnection.connect(conninfo(database: db))
        for s in Self.sql { try await setup.execute(s) }
        let truth = try await setup.tableRowCounts()
        await setup.close()
        #expect(truth["public.empty"] == 0 && truth["public.dotonly"] == 4 && truth["public.smallrows"] == 20000)
        #expect(truth["public.backslashes"] == 5 && truth["public.longrows"] == 3)

        let out = ByteChannel(capacity: 1 << 20)
        let dump = try PgDump(conninfo: conninfo(database: db), snapshot: nil, output: out)
        let archive = try await collect(out)
        try await dump.wait()

        let whole = try Self.count(archive, sizes: [archive.count])
        #expect(whole == truth)
        var rng = SplitMix(seed: 15)
        var plans: [(String, [Int])] = [1, 2, 3, 7, 4096].map { ("size \($0)", [$0]) }
        for k in 0..<4 {
            plans.append(("random \(k)", (0..<64).map { _ in 1 + Int(rng.next() % UInt64(k.isMultiple(of: 2) ? 17 : 70_000)) }))
        }
        for (label, sizes) in plans {
            let counts = try Self.count(archive, sizes: sizes)
            #expect(counts == whole, "\(label)")
        }
        // Every cut point in the data part, one cut at a time (the cuts that
        // land in a header or TOC are buffered whole anyway).
        let step = max(1, archive.count / 3000)
        var cut = 1
        while cut < archive.count {
            var c = ArchiveRowCounter()
            try c.consume(archive.prefix(cut))
            try c.consume(archive.dropFirst(cut))
            let counts = try c.finish()
            if counts != whole { Issue.record("cut at \(cut)"); break }
            cut += step
        }
    }

    @Test func truncatedDataIsDetectedAtEveryChunking() async throws {
        let db = try await createDatabase("rowtrunc")
        defer { Task { await dropDatabase(db) } }
        let setup = try await PGConnection.connect(conninfo(database: db))
        try await setup.execute("CREATE TABLE t (v text)")
        try await setup.execute("INSERT INTO t SELECT repeat('z', g) FROM generate_series(1, 300) g")
        await setup.close()
        let out = ByteChannel(capacity: 1 << 20)
        let dump = try PgDump(conninfo: conninfo(database: db), snapshot: nil, output: out)
        let archive = try await collect(out)
        try await dump.wait()
        #expect(try Self.count(archive, sizes: [archive.count]) == ["public.t": 300])
        // Cut short anywhere after the TOC: every prefix must fail to finish.
        for drop in [1, 2, 5, 100, 1000] {
            for size in [1, 3, 4096] {
                #expect(throws: CairnError.self, "drop \(drop) size \(size)") {
                    _ = try Self.count(archive.dropLast(drop), sizes: [size])
                }
            }
        }
    }

    /// Feeds `archive` in chunks of the given sizes, cycling.
    static func count(_ archive: Data, sizes: [Int]) throws -> TableRowCounts {
        var c = ArchiveRowCounter()
        var i = archive.startIndex
        var k = 0
        while i < archive.endIndex {
            let n = min(sizes[k % sizes.count], archive.endIndex - i)
            try c.consume(archive[i..<i + n])
            i += n; k += 1
        }
        return try c.finish()
    }
}

/// A deterministic generator, so a failure reproduces.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
