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

    /// Drops every `cairn_verify_%` database no session is connected to
    /// (a verification in progress elsewhere has its pg_restore or counts
    /// connected; a crashed run's database has nobody), and `own` (this run's
    /// name: the caller holds the job's lock, so a session in it is a killed
    /// run's pg_restore). Returns the names dropped.
    func dropLeftovers(own: String) async throws -> [String] {
        let conn = try await connect()
        defer { Task.detached { await conn.close() } }
        let rows = try await conn.query("""
            SELECT d.datname, EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.datid = d.oid AND a.pid <> pg_backend_pid())
            FROM pg_catalog.pg_database d WHERE d.datname LIKE 'cairn\\_verify\\_%' ORDER BY 1
            """)
        var dropped: [String] = []
        for row in rows {
            guard let name = row[0] else { continue }
            if row[1] == "t" && name != own {
                logger.notice("scratch database in use by another session; left alone", metadata: ["database": "\(name)"])
                continue
            }
            try await drop(name, on: conn)
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
