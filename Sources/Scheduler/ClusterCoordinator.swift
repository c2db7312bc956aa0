import Config
import Core
import Foundation
import Logging
import Postgres
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What started a run that the cluster coordinates.
public enum ClusterTrigger: String, Sendable {
    /// A scheduled instant (`claim(job:scheduledAt:)`).
    case schedule
    /// An on-demand run (`claimManual(job:)`); its row is keyed by the claim time.
    case manual
}

/// A run this node may execute: it holds the job's advisory lock in its own
/// PostgreSQL session until `finish` (or until the process dies, when
/// PostgreSQL releases the lock by itself).
public struct ClusterClaim: Sendable, CustomStringConvertible {
    public let job: String
    /// The scheduled instant, or the claim time of a manual run.
    public let scheduledAt: Date
    public let trigger: ClusterTrigger
    /// 1, or more when this node took over an instant whose owner died.
    public let attempt: Int
    /// This node's name, as recorded in the runs table.
    public let node: String

    /// The session holding the lock.
    let session: PGConnection
    /// `scheduled_at` as PostgreSQL printed it (UTC, ISO): the exact key of the row.
    let key: String
    /// `pg_backend_pid()` of `session` (for tests that kill it).
    let backendPID: Int32

    public var description: String {
        "\(job) \(trigger.rawValue) \(ISO8601DateFormatter().string(from: scheduledAt)) attempt \(attempt) on \(node)"
    }
}

public enum ClaimResult: Sendable {
    /// This node runs it; call `finish` afterwards.
    case claimed(ClusterClaim)
    /// The instant was already run to its end by `node`.
    case alreadyRan(node: String)
    /// Another session holds the job's lock (it is running there); `node` is
    /// that run's node when it can be told.
    case runningElsewhere(node: String?)

    public var claim: ClusterClaim? {
        if case .claimed(let c) = self { return c }
        return nil
    }
}

/// One row of `cairn_cluster_runs`.
public struct ClusterRunRecord: Sendable, Equatable {
    public var job: String
    public var scheduledAt: Date
    public var trigger: String
    public var node: String
    public var pid: Int?
    public var attempt: Int
    public var startedAt: Date
    public var finishedAt: Date?
    public var result: String?
    public var error: String?
}

/// Coordinates several `cairn serve` daemons that share jobs through a
/// PostgreSQL "lock database" (`[cluster]` in cairn.toml) so that each
/// scheduled instant of a job runs exactly once across the nodes.
///
/// PostgreSQL does all the consensus:
/// - Every claim opens its own session and takes the session-level advisory
///   lock `pg_try_advisory_lock(classID, hashtext(job))`, held for the whole
///   run: a job never runs on two nodes at once. If the node dies, its TCP
///   session ends (or TCP keepalives, 30 s idle + 3 × 10 s, find it dead) and
///   PostgreSQL releases the lock.
/// - While holding the lock the claim upserts the row (job, scheduled_at) of
///   `cairn_cluster_runs`. A new row is attempt 1. An existing unfinished row
///   means its owner died (a live owner would hold the lock), so this node
///   takes it over as attempt + 1. A finished row means the instant ran:
///   the lock is released and the claim answers `.alreadyRan`.
///
/// The lock key is two 32-bit ints: the constant `classID` (ASCII "CAIR")
/// and `hashtext(job)` computed by the server, so all nodes agree on it. Two
/// job names with the same 32-bit hash would merely exclude each other
/// (never run together), which is safe.
///
/// The node name is `[cluster] node`, by default the host name; the daemon's
/// pid is recorded next to it, so two daemons on one host are still told apart.
public final class ClusterCoordinator: Sendable {
    /// First key of the per-job advisory locks ("CAIR").
    public static let classID: Int32 = 0x4341_4952
    /// First key of the schema-creation lock ("CAIS").
    static let schemaLockClassID: Int32 = 0x4341_4953
    /// The schema version this code writes and reads.
    public static let schemaVersion = 1

    public let config: ClusterConfig
    /// This node's name in the runs table.
    public let node: String
    private let env: [String: String]
    private let pid = Int(getpid())
    private let logger = Logger.cairn("cluster")

    public init(config: ClusterConfig, env: [String: String] = ProcessInfo.processInfo.environment) {
        self.config = config
        self.env = env
        self.node = config.node.flatMap { $0.isEmpty ? nil : $0 } ?? Self.hostName()
    }

    static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "unknown-host" }
        let s = String(cString: buf)
        return s.isEmpty ? "unknown-host" : s
    }

    // MARK: - Sessions

    /// The libpq connection string: the configured one plus the password from
    /// `password_file`, keepalives and timeouts unless the URL sets them.
    func connectionString() throws -> String {
        var info: ConnInfo
        do {
            info = try ConnInfo(config.lockDatabase)
        } catch let e as CairnError {
            throw CairnError(e.code, "cluster lock database: \(e.message)")
        }
        if let password = try config.readPassword(env: env) { info = info.with("password", password) }
        let defaults: [(String, String)] = [
            ("connect_timeout", "10"),
            ("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10"), ("keepalives_count", "3"),
            ("tcp_user_timeout", "60000"),
            ("application_name", "cairn-cluster"),
        ]
        for (k, v) in defaults where info[k] == nil { info = info.with(k, v) }
        return info.keywordString
    }

    /// A new session with server-side keepalives (so the server notices a dead
    /// node and releases its locks), no idle-session timeout (a lock holder is
    /// idle while its job runs), UTC and ISO dates.
    func openSession() async throws -> PGConnection {
        let conninfo = try connectionString()
        let conn: PGConnection
        do {
            conn = try await PGConnection.connect(conninfo)
        } catch {
            throw Self.wrap(error, "connect")
        }
        var settings = ["tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3",
                        "TimeZone": "UTC", "DateStyle": "ISO, YMD"]
        if conn.serverVersion >= 140000 { settings["idle_session_timeout"] = "0" }
        let sql = "SELECT " + settings.keys.sorted().enumerated().map { i, k in "set_config('\(k)', $\(i + 1), false)" }.joined(separator: ", ")
        do {
            try await conn.execute(sql, params: settings.keys.sorted().map { settings[$0] })
        } catch {
            await conn.close()
            throw Self.wrap(error, "session setup")
        }
        return conn
    }

    static func wrap(_ error: any Error, _ what: String) -> CairnError {
        if let e = error as? CairnError {
            if e.message.hasPrefix("cluster lock database") { return e }
            return CairnError(e.code, "cluster lock database: \(e.message)", transient: e.isTransient)
        }
        return CairnError.wrap(error, .database, "cluster lock database: \(what)")
    }

    // MARK: - Schema

    /// Connects once and creates the tables if they are missing (version 1).
    /// Safe when several daemons start at once: creation runs in a transaction
    /// begun under a session-level advisory lock (the session ends right
    /// after). A role without CREATE can use tables that already exist.
    public func prepare() async throws {
        let conn = try await openSession()
        do {
            if try await Self.schemaVersion(conn) != Self.schemaVersion {
                // Lock first, then start the transaction: a transaction that
                // began before another daemon committed the tables could still
                // see them missing through its cached catalog entries.
                try await conn.execute("SELECT pg_advisory_lock($1::int4, 0)", params: [String(Self.schemaLockClassID)])
                try await conn.execute("BEGIN")
                let current = try await Self.schemaVersion(conn)
                if current < 1 {
                    for statement in Self.schemaV1 { try await conn.execute(statement) }
                    try await conn.execute("INSERT INTO cairn_cluster_schema (version) VALUES (1) ON CONFLICT DO NOTHING")
                    logger.info("created cluster tables", metadata: ["version": "1"])
                }
                try await conn.execute("COMMIT")
                try await conn.execute("SELECT pg_advisory_unlock($1::int4, 0)", params: [String(Self.schemaLockClassID)])
            }
        } catch {
            _ = try? await conn.execute("ROLLBACK")
            await conn.close()
            throw Self.wrap(error, "prepare")
        }
        await conn.close()
    }

    /// The schema version in the database (0 when there is none); throws for a newer one.
    static func schemaVersion(_ conn: PGConnection) async throws -> Int {
        guard try await conn.queryValue("SELECT to_regclass('cairn_cluster_schema') IS NOT NULL") == "t" else { return 0 }
        let v = Int(try await conn.queryValue("SELECT coalesce(max(version), 0) FROM cairn_cluster_schema") ?? "0") ?? 0
        if v > schemaVersion {
            throw CairnError(.database, "cluster lock database at \(conn.endpoint) has schema version \(v); this cairn knows up to \(schemaVersion): upgrade cairn on this node")
        }
        return v
    }

    static let schemaV1 = [
        """
        CREATE TABLE IF NOT EXISTS cairn_cluster_schema (
            version    int PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS cairn_cluster_runs (
            job          text        NOT NULL,
            scheduled_at timestamptz NOT NULL,
            trigger      text        NOT NULL DEFAULT 'schedule' CHECK (trigger IN ('schedule', 'manual')),
            node         text        NOT NULL,
            pid          int,
            backend_pid  int         NOT NULL,
            attempt      int         NOT NULL DEFAULT 1,
            started_at   timestamptz NOT NULL DEFAULT now(),
            finished_at  timestamptz,
            result       text,
            error        text,
            PRIMARY KEY (job, scheduled_at)
        )
        """,
        "CREATE INDEX IF NOT EXISTS cairn_cluster_runs_unfinished ON cairn_cluster_runs (job) WHERE finished_at IS NULL",
    ]

    // MARK: - Claims

    /// Claims scheduled instant `scheduledAt` of `job` (rounded to whole
    /// microseconds, PostgreSQL's precision).
    public func claim(job: String, scheduledAt: Date) async throws -> ClaimResult {
        try await claim(job: job, trigger: .schedule, scheduledAt: scheduledAt)
    }

    /// Claims an on-demand run of `job`: only the job's lock decides; the row
    /// records it with trigger `manual`, keyed by the claim time. It excludes
    /// scheduled runs of the job while it runs, and vice versa.
    public func claimManual(job: String) async throws -> ClaimResult {
        try await claim(job: job, trigger: .manual, scheduledAt: nil)
    }

    private func claim(job: String, trigger: ClusterTrigger, scheduledAt: Date?) async throws -> ClaimResult {
        let conn = try await openSession()
        do {
            let lockParams = [String(Self.classID), job]
            guard try await conn.queryValue("SELECT pg_try_advisory_lock($1::int4, hashtext($2))", params: lockParams) == "t" else {
                // The lock may be held for a later instant while this one has
                // finished (its node went straight on to the next): say so,
                // so that a node waiting for this instant stops waiting.
                if let scheduledAt, let ranOn = try await conn.query("""
                    SELECT node FROM cairn_cluster_runs
                    WHERE job = $1 AND scheduled_at = to_timestamp($2::float8) AND finished_at IS NOT NULL
                    """, params: [job, Self.epoch(scheduledAt)]).first?.first {
                    await conn.close()
                    return .alreadyRan(node: ranOn ?? "?")
                }
                let holder = try await holderNode(conn, job: job)
                await conn.close()
                return .runningElsewhere(node: holder)
            }
            let instant: String
            if let scheduledAt {
                instant = "to_timestamp($2::float8)"
            } else {
                instant = "clock_timestamp()"
            }
            var params: [String?] = [job]
            if let scheduledAt { params.append(Self.epoch(scheduledAt)) }
            let n = params.count
            params += [trigger.rawValue, node, String(pid)]
            let rows = try await conn.query("""
                INSERT INTO cairn_cluster_runs AS r (job, scheduled_at, trigger, node, pid, backend_pid, attempt, started_at)
                VALUES ($1, \(instant), $\(n + 1), $\(n + 2), $\(n + 3)::int, pg_backend_pid(), 1, now())
                ON CONFLICT (job, scheduled_at) DO UPDATE
                    SET node = EXCLUDED.node, pid = EXCLUDED.pid, backend_pid = EXCLUDED.backend_pid,
                        attempt = r.attempt + 1, started_at = now()
                    WHERE r.finished_at IS NULL
                RETURNING attempt, scheduled_at::text, extract(epoch FROM scheduled_at)::float8, backend_pid
                """, params: params)
            if let row = rows.first, let a = row[0].flatMap({ Int($0) }), let key = row[1],
               let epoch = row[2].flatMap({ Double($0) }), let bpid = row[3].flatMap({ Int32($0) }) {
                let c = ClusterClaim(job: job, scheduledAt: Date(timeIntervalSince1970: epoch), trigger: trigger, attempt: a,
                                     node: node, session: conn, key: key, backendPID: bpid)
                if a > 1 {
                    logger.notice("taking over a run whose node died", metadata: ["job": "\(job)", "scheduled": "\(key)", "attempt": "\(a)"])
                }
                return .claimed(c)
            }
            // The row exists and is finished: the instant ran.
            let ranOn = try await conn.queryValue(
                "SELECT node FROM cairn_cluster_runs WHERE job = $1 AND scheduled_at = to_timestamp($2::float8)",
                params: [job, Self.epoch(scheduledAt ?? Date())])
            _ = try await conn.query("SELECT pg_advisory_unlock($1::int4, hashtext($2))", params: lockParams)
            await conn.close()
            return .alreadyRan(node: ranOn ?? "?")
        } catch {
            await conn.close()
            throw Self.wrap(error, "claim")
        }
    }

    /// The node of the unfinished run whose session holds `job`'s lock, if any.
    private func holderNode(_ conn: PGConnection, job: String) async throws -> String? {
        let rows = try await conn.query("""
            SELECT r.node FROM pg_locks l
            JOIN cairn_cluster_runs r ON r.backend_pid = l.pid AND r.job = $2 AND r.finished_at IS NULL
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.classid = $1::int4::oid AND l.objid = hashtext($2)::oid
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY r.started_at DESC LIMIT 1
            """, params: [String(Self.classID), job])
        return rows.first?.first ?? nil
    }

    /// Whether the claim's session is still alive (and so still holds the
    /// lock). A daemon may check this before expensive steps: a lost session
    /// means another node may take the instant over.
    public func stillHolds(_ claim: ClusterClaim) async -> Bool {
        (try? await claim.session.queryValue("SELECT 1")) == "1"
    }

    /// Records the end of the run (`result` such as "ok" or "failed", `error`
    /// a one-line message), releases the lock and closes the session. Best
    /// effort: failures are logged. If the session was lost meanwhile, the end
    /// is recorded through a new session, unless another node took the
    /// instant over.
    public func finish(_ claim: ClusterClaim, result: String, error: String?) async {
        let sql = """
            UPDATE cairn_cluster_runs SET finished_at = now(), result = $3, error = $4
            WHERE job = $1 AND scheduled_at = $2::timestamptz AND attempt = $5::int AND finished_at IS NULL
            """
        let params: [String?] = [claim.job, claim.key, result, error.map { String($0.prefix(4000)) }, String(claim.attempt)]
        do {
            try await claim.session.execute(sql, params: params)
            _ = try await claim.session.query("SELECT pg_advisory_unlock($1::int4, hashtext($2))", params: [String(Self.classID), claim.job])
        } catch let first {
            logger.warning("cluster session lost before the run's end was recorded; retrying on a new session",
                           metadata: ["job": "\(claim.job)", "scheduled": "\(claim.key)", "error": "\(first)"])
            do {
                let conn = try await openSession()
                try await conn.execute(sql, params: params)
                await conn.close()
            } catch {
                logger.error("cannot record the run's end in the cluster lock database",
                             metadata: ["job": "\(claim.job)", "scheduled": "\(claim.key)", "error": "\(error)"])
            }
        }
        await claim.session.close()
    }

    /// Test hook: ends the claim's session without recording anything, as
    /// if the node had been killed.
    func abandon(_ claim: ClusterClaim) async {
        await claim.session.close()
    }

    // MARK: - Reading

    /// The newest `limit` runs of `job`, newest scheduled instant first.
    public func recentRuns(job: String, limit: Int) async throws -> [ClusterRunRecord] {
        try await withSession { conn in
            try await conn.query(Self.recordSelect + " WHERE job = $1 ORDER BY scheduled_at DESC LIMIT $2::int",
                                 params: [job, String(max(0, limit))])
        }.map(Self.record)
    }

    /// Unfinished runs of `job` whose session is gone (their node died):
    /// candidates for a take-over by `claim` within the catch-up window.
    public func abandonedRuns(job: String) async throws -> [ClusterRunRecord] {
        try await withSession { conn in
            try await conn.query(Self.recordSelect + """
                 WHERE job = $1 AND finished_at IS NULL AND NOT EXISTS (
                    SELECT 1 FROM pg_locks l
                    WHERE l.pid = cairn_cluster_runs.backend_pid AND l.locktype = 'advisory' AND l.granted
                      AND l.objsubid = 2 AND l.classid = $2::int4::oid AND l.objid = hashtext($1)::oid)
                ORDER BY scheduled_at
                """, params: [job, String(Self.classID)])
        }.map(Self.record)
    }

    private func withSession<T: Sendable>(_ body: (PGConnection) async throws -> T) async throws -> T {
        let conn = try await openSession()
        do {
            let v = try await body(conn)
            await conn.close()
            return v
        } catch {
            await conn.close()
            throw Self.wrap(error, "query")
        }
    }

    static let recordSelect = """
        SELECT job, extract(epoch FROM scheduled_at)::float8, trigger, node, pid, attempt,
               extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8, result, error
        FROM cairn_cluster_runs
        """

    static func record(_ r: [String?]) -> ClusterRunRecord {
        func date(_ s: String?) -> Date? { s.flatMap(Double.init).map { Date(timeIntervalSince1970: $0) } }
        return ClusterRunRecord(job: r[0] ?? "", scheduledAt: date(r[1]) ?? Date(timeIntervalSince1970: 0), trigger: r[2] ?? "",
                                node: r[3] ?? "", pid: r[4].flatMap { Int($0) }, attempt: r[5].flatMap { Int($0) } ?? 0,
                                startedAt: date(r[6]) ?? Date(timeIntervalSince1970: 0), finishedAt: date(r[7]),
                                result: r[8], error: r[9])
    }

    /// Seconds since the epoch with microseconds, for `to_timestamp($n::float8)`.
    static func epoch(_ d: Date) -> String {
        let micros = (d.timeIntervalSince1970 * 1_000_000).rounded()
        let whole = Int64(micros) / 1_000_000
        var frac = Int64(micros) % 1_000_000
        var w = whole
        if frac < 0 { frac += 1_000_000; w -= 1 }
        return "\(w)." + String(repeating: "0", count: 6 - String(frac).count) + String(frac)
    }
}
