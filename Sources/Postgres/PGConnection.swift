import CLibPQ
import Core
import Foundation

/// One libpq connection. Owns its `PGconn` (freed with `PQfinish` in deinit).
///
/// Every libpq call runs on a dedicated thread (`runBlocking`), never on the
/// cooperative pool, and calls are serialised: a `PGconn` is not thread-safe.
/// Cancelling the task that awaits `query` sends a cancel request to the server
/// (`PQcancel`) and the query fails with `.cancelled`.
///
/// Error messages name `host:port/db` (from `PQhost`/`PQport`/`PQdb`), never
/// the connection string, so they never contain a password.
public final class PGConnection: @unchecked Sendable {
    private var conn: OpaquePointer?   // nil once closed; guarded by `lock`
    private let cancelHandle: OpaquePointer?
    private let lock = NSLock()

    /// `host:port/db` of this connection, for messages.
    public let endpoint: String
    /// `PQserverVersion`, e.g. 150020 for 15.20.
    public let serverVersion: Int

    private init(conn: OpaquePointer) {
        self.conn = conn
        self.cancelHandle = PQgetCancel(conn)
        self.endpoint = PGConnection.endpoint(conn)
        self.serverVersion = Int(PQserverVersion(conn))
    }

    deinit {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        if let conn { PQfinish(conn) }
    }

    static func endpoint(_ conn: OpaquePointer) -> String {
        func s(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        let host = s(PQhost(conn))
        let port = s(PQport(conn))
        let db = s(PQdb(conn))
        return "\(host.isEmpty ? "localhost" : host):\(port.isEmpty ? "5432" : port)/\(db)"
    }

    /// Connects with a URL (`postgres://user@host:port/db?sslmode=…`) or libpq
    /// keywords. The password comes from the string, `PGPASSWORD`, `PGPASSFILE`
    /// or `~/.pgpass`, all resolved by libpq.
    public static func connect(_ conninfo: String) async throws -> PGConnection {
        // Parse first: a malformed string fails as .config without echoing it.
        _ = try ConnInfo(conninfo)
        return try await runBlocking {
            guard let conn = PQconnectdb(conninfo) else {
                throw CairnError(.database, "cannot connect to postgres: out of memory")
            }
            if PQstatus(conn) != CONNECTION_OK {
                let msg = firstLine(String(cString: PQerrorMessage(conn)))
                let where_ = PGConnection.endpoint(conn)
                PQfinish(conn)
                throw CairnError(.database, "cannot connect to postgres at \(where_): \(msg)")
            }
            return PGConnection(conn: conn)
        }
    }

    /// Runs one statement with text parameters ($1, $2, …; nil is NULL) and
    /// returns the rows as text (nil for NULL).
    @discardableResult
    public func query(_ sql: String, params: [String?] = []) async throws -> [[String?]] {
        try await withTaskCancellationHandler {
            try await runBlocking { [self] in try self.queryBlocking(sql, params: params) }
        } onCancel: {
            self.sendCancel()
        }
    }

    /// Asks the server to cancel the running query (PQcancel is thread-safe).
    private func sendCancel() {
        guard let cancelHandle else { return }
        var buf = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancelHandle, &buf, Int32(buf.count))
    }

    /// Runs a statement whose rows, if any, are not needed.
    public func execute(_ sql: String, params: [String?] = []) async throws {
        try await query(sql, params: params)
    }

    /// The first column of the first row, as text.
    public func queryValue(_ sql: String, params: [String?] = []) async throws -> String? {
        let rows = try await query(sql, params: params)
        guard let first = rows.first, let v = first.first else {
            throw CairnError(.database, "query on postgres at \(endpoint) returned no rows")
        }
        return v
    }

    /// `current_database()`.
    public func currentDatabase() async throws -> String {
        try await queryValue("SELECT current_database()") ?? ""
    }

    /// `SHOW server_version`, e.g. "15.20 (Debian 15.20-0+deb12u1)".
    public func serverVersionString() async throws -> String {
        try await queryValue("SHOW server_version") ?? ""
    }

    /// Closes the connection now (`PQfinish`); it is also closed when released.
    /// Waits for a running query on this connection to end first.
    public func close() async {
        _ = try? await runBlocking { [self] in self.closeBlocking() }
    }

    func closeBlocking() {
        lock.lock()
        defer { lock.unlock() }
        if let conn { PQfinish(conn) }
        conn = nil
    }

    func queryBlocking(_ sql: String, params: [String?]) throws -> [[String?]] {
        lock.lock()
        defer { lock.unlock() }
        guard let conn else { throw CairnError(.database, "query on a closed connection to postgres at \(endpoint)") }
        if Task.isCancelled { throw CairnError(.cancelled, "query on postgres at \(endpoint) cancelled") }

        // Copy the parameters into C strings that live for the call.
        var cParams: [UnsafeMutablePointer<CChar>?] = params.map { $0.flatMap { strdup($0) } }
        defer { for p in cParams { free(p) } }
        let result: OpaquePointer? = cParams.withUnsafeMutableBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buf.count, 1)) { values in
                PQexecParams(conn, sql, Int32(params.count), nil, params.isEmpty ? nil : values, nil, nil, 0)
            }
        }
        guard let result else {
            let msg = firstLine(String(cString: PQerrorMessage(conn)))
            throw CairnError(.database, "query on postgres at \(endpoint) failed: \(msg)")
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            break
        default:
            let msg = firstLine(String(cString: PQresultErrorMessage(result)))
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            if state == "57014" {  // query_canceled
                throw CairnError(.cancelled, "query on postgres at \(endpoint) cancelled")
            }
            let suffix = state.isEmpty ? "" : " (SQLSTATE \(state))"
            throw CairnError(.database, "query on postgres at \(endpoint) failed: \(msg)\(suffix)")
        }
        let nrows = PQntuples(result)
        let ncols = PQnfields(result)
        var rows: [[String?]] = []
        rows.reserveCapacity(Int(nrows))
        for r in 0..<nrows {
            var row: [String?] = []
            row.reserveCapacity(Int(ncols))
            for c in 0..<ncols {
                if PQgetisnull(result, r, c) != 0 {
                    row.append(nil)
                } else {
                    row.append(String(cString: PQgetvalue(result, r, c)))
                }
            }
            rows.append(row)
        }
        return rows
    }
}
