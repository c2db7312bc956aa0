import Core
import Foundation
import Logging
import Postgres

/// The server where verifications restore: creates and drops scratch
/// databases through the scratch URL's own database (the maintenance
/// database), and drops leftovers of crashed runs. Every libpq call runs off
/// the cooperative pool (`PGConnection`).
struct ScratchServer: Sendable {
    /// The scratch URL as keywords, with the password when there is one.
    let maintenance: ConnInfo
    let logger: Logger

    init(url: String, password: String?, logger: Logger) throws {
        var info = try ConnInfo(url)
        if let password { info = info.with("password", password) }
        maintenance = info
        self.logger = logger
    }

    /// The connection string of database `name` on this server.
    func conninfo(of name: String) -> String { maintenance.with("dbname", name).keywordString }

    private func connect() async throws -> PGConnection {
        try await PGConnection.connect(maintenance.keywordString)
    }

    /// A scratch name held by a run: a session-level advisory lock keyed by
    /// the name, on a connection of its own that lives as long as the run
    /// (and dies with its process, which frees the name for clean-up).
    final class Claim: Sendable {
        let conn: PGConnection
        init(_ conn: PGConnection) { self.conn = conn }
        /// Ends the session (and so the lock), also when the run was cancelled.
        func release() async {
            let conn = self.conn
            await Task.detached { await conn.close() }.value
        }
    }

    static func lockKey(_ name: String) -> String { "cairn_verify:" + name }

    /// Claims `name` for this run: waits for no one (the job's lock makes a
    /// second run of the same job impossible); fails if another session holds it.
    func claim(_ name: String) async throws -> Claim {
        let conn = try await connect()
        let got = try await conn.queryValue("SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext($1))", params: [Self.lockKey(name)])
        guard got == "t" else {
            await conn.close()
            throw CairnError(.busy, "scratch database \(name) is claimed by another verification on this server")
        }
        return Claim(conn)
    }

    /// Drops every `cairn_verify_%` database that no live verification
    /// claims (each run holds an advisory lock keyed by its database's name
    /// for its whole life, taken before the database exists: a crashed run's
    /// lock went with its session), and `own` (this run's name, which the
    /// caller has claimed: a database by that name is a killed run's). Another
    /// unit's database being restored right now is left alone. Returns the
    /// names dropped.
    func dropLeftovers(own: String) async throws -> [String] {
        let conn = try await connect()
        defer { Task.detached { await conn.close() } }
        let rows = try await conn.query("""
            SELECT d.datname FROM pg_catalog.pg_database d WHERE d.datname LIKE 'cairn\\_verify\\_%' ORDER BY 1
            """)
        var dropped: [String] = []
        for row in rows {
            guard let name = row[0] else { continue }
            if name != own {
                let free = try await conn.queryValue("SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext($1))", params: [Self.lockKey(name)])
                guard free == "t" else {
                    logger.notice("scratch database of a verification in progress; left alone", metadata: ["database": "\(name)"])
                    continue
                }
            }
            do {
                try await drop(name, on: conn)
            } catch {
                if name != own { _ = try? await conn.queryValue("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext($1))", params: [Self.lockKey(name)]) }
                throw error
            }
            if name != own { _ = try await conn.queryValue("SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtext($1))", params: [Self.lockKey(name)]) }
            logger.notice("dropped a scratch database left by an earlier verification", metadata: ["database": "\(name)"])
            dropped.append(name)
        }
        return dropped
    }

    func create(_ name: String) async throws {
        let conn = try await connect()
        defer { Task.detached { await conn.close() } }
        do {
            try await conn.execute("CREATE DATABASE \(quoteIdentifier(name))")
        } catch {
            throw CairnError.wrap(error, .database, "cannot create scratch database \(name)")
        }
    }

    /// Drops `name`, ending its sessions first. Runs in a detached task: a
    /// cancelled or timed-out verification still drops its database.
    func dropDetached(_ name: String) async throws {
        try await Task.detached { [self] in
            let conn = try await connect()
            defer { Task.detached { await conn.close() } }
            try await drop(name, on: conn)
        }.value
    }

    private func drop(_ name: String, on conn: PGConnection) async throws {
        if conn.serverVersion >= 130000 {
            try await conn.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(name)) WITH (FORCE)")
            return
        }
        // Before 13: refuse new connections, end the current ones, then drop.
        try await conn.execute("UPDATE pg_catalog.pg_database SET datallowconn = false WHERE datname = $1", params: [name])
        try await conn.execute("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", params: [name])
        try await conn.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(name))")
    }
}
