import Core
import Foundation

/// Exact row counts per user table, keyed by `schema.table` (each part quoted
/// like `quote_ident`, e.g. `public.users`, `"Sales"."Order"`).
public typealias TableRowCounts = [String: Int64]

extension PGConnection {
    /// The tables whose rows a dump carries: leaf tables only (`relkind = 'r'`,
    /// so a partitioned parent is not counted twice), in every schema except
    /// pg_catalog, information_schema, pg_toast and temporary schemas, and not
    /// tables that belong to an extension (pg_dump does not dump their rows).
    static let userTablesSQL = """
        SELECT n.nspname, c.relname
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r'
          AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema'
          AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                          WHERE d.classid = 'pg_catalog.pg_class'::regclass
                            AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1, 2
        """

    /// Counts the rows of every user table exactly (`count(*) FROM ONLY`, so
    /// inheritance children are not counted in their parent), in whatever
    /// snapshot the connection is in: inside `DumpSnapshot` that is the dump's
    /// own snapshot; on a restored database it gives the numbers to compare.
    public func tableRowCounts() async throws -> TableRowCounts {
        let tables = try await query(Self.userTablesSQL)
        var counts: TableRowCounts = [:]
        // Count in batches of UNION ALL: one round trip per batch, not per table.
        let batchSize = 100
        var i = 0
        while i < tables.count {
            let batch = tables[i..<min(i + batchSize, tables.count)]
            var parts: [String] = []
            var names: [String] = []
            for (j, row) in batch.enumerated() {
                guard let schema = row[0], let table = row[1] else { continue }
                let q = qualifiedName(schema: schema, table: table)
                names.append(q)
                parts.append("SELECT \(j) AS i, count(*) AS n FROM ONLY \(q)")
            }
            if !parts.isEmpty {
                for row in try await query(parts.joined(separator: " UNION ALL ")) {
                    guard let js = row[0], let j = Int(js), let ns = row[1], let n = Int64(ns) else {
                        throw CairnError(.database, "unexpected row count result from postgres at \(endpoint)")
                    }
                    counts[names[j]] = n
                }
            }
            i += batchSize
        }
        return counts
    }
}

/// An exported snapshot for `pg_dump --snapshot`, with the facts a manifest
/// records taken in that same snapshot: exact row counts, database size,
/// server version.
///
/// The exporting transaction (REPEATABLE READ READ ONLY) stays open until
/// `close()`: keep it open until pg_dump has finished.
public final class DumpSnapshot: Sendable {
    /// The id to pass to `pg_dump --snapshot`.
    public let snapshotID: String
    public let rowCounts: TableRowCounts
    /// `pg_database_size(current_database())` in bytes: an upper bound for the dump.
    public let databaseSize: Int64
    public let database: String
    /// `SHOW server_version`, e.g. "15.20 (Debian 15.20-0+deb12u1)".
    public let serverVersion: String
    /// `PQserverVersion`, e.g. 150020.
    public let serverVersionNumber: Int
    private let connection: PGConnection

    private init(connection: PGConnection, snapshotID: String, rowCounts: TableRowCounts,
                 databaseSize: Int64, database: String, serverVersion: String) {
        self.connection = connection
        self.snapshotID = snapshotID
        self.rowCounts = rowCounts
        self.databaseSize = databaseSize
        self.database = database
        self.serverVersion = serverVersion
        self.serverVersionNumber = connection.serverVersion
    }

    /// Connects, opens the snapshot transaction, exports its snapshot and counts rows in it.
    public static func open(_ conninfo: String, countRows: Bool = true) async throws -> DumpSnapshot {
        let conn = try await PGConnection.connect(conninfo)
        do {
            try await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            // First statement of the transaction: it fixes the snapshot that
            // the counts below and pg_dump --snapshot both see.
            guard let id = try await conn.queryValue("SELECT pg_catalog.pg_export_snapshot()") else {
                throw CairnError(.database, "pg_export_snapshot() returned NULL on postgres at \(conn.endpoint)")
            }
            let counts = countRows ? try await conn.tableRowCounts() : [:]
            let sizeText = try await conn.queryValue("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())")
            guard let sizeText, let size = Int64(sizeText) else {
                throw CairnError(.database, "cannot read database size on postgres at \(conn.endpoint)")
            }
            let db = try await conn.currentDatabase()
            let version = try await conn.serverVersionString()
            return DumpSnapshot(connection: conn, snapshotID: id, rowCounts: counts,
                                databaseSize: size, database: db, serverVersion: version)
        } catch {
            await conn.close()
            throw error
        }
    }

    /// `host:port/db` of the snapshot's connection.
    public var endpoint: String { connection.endpoint }

    /// Ends the snapshot transaction and closes the connection.
    public func close() async {
        _ = try? await connection.execute("ROLLBACK")
        await connection.close()
    }
}
