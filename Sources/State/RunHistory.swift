import Core
import Foundation
import GRDB

/// One run of a job, as recorded in the state database.
public struct RunRecord: Sendable, Equatable, Codable {
    public enum Result: String, Sendable, Codable { case running, ok, failed, cancelled, skipped }
    public var id: Int64
    public var job: String
    /// "manual" (cairn run) or "schedule".
    public var trigger: String
    public var scheduledAt: Date?
    public var startedAt: Date
    public var finishedAt: Date?
    public var result: Result
    public var error: String?
    public var bytes: Int64?
    public var backupID: String?
    /// 1 for a first attempt, 2 for the first retry, …
    public var attempt: Int = 1
    /// A probe's request latency, in seconds.
    public var latency: Double?

    public var duration: TimeInterval? { finishedAt.map { $0.timeIntervalSince(startedAt) } }
}

/// The state database (`STATE_DIR/cairn.sqlite`): run history, through GRDB
/// with named migrations. One connection (a DatabaseQueue) per process.
public final class StateStore: Sendable {
    let db: DatabaseQueue
    public let path: String

    public init(stateDir: String) throws {
        do {
            try PrivateFiles.createDirectory(stateDir)
        } catch let e as CairnError {
            throw CairnError(.io, "cannot create state directory \(stateDir): \(e.message)", cause: e.cause)
        }
        path = stateDir + "/cairn.sqlite"
        do {
            // 0600 before SQLite opens it: SQLite would create it 0644, and gives its journal the same mode.
            try PrivateFiles.createFile(path)
            var config = Configuration()
            config.busyMode = .timeout(10)
            db = try DatabaseQueue(path: path, configuration: config)
            try SchemaLock.migrate(Self.migrator, db, path: path)
            try markDeadRuns()
        } catch let e as CairnError {
            throw CairnError(.io, "cannot open state database \(path): \(e.message)", cause: e.cause)
        } catch {
            throw CairnError(.io, "cannot open state database \(path)", cause: Self.cause(error))
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-runs") { db in
            try db.create(table: "runs") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("job", .text).notNull().indexed()
                t.column("trigger", .text).notNull()
                t.column("scheduled_at", .datetime)
                t.column("started_at", .datetime).notNull()
                t.column("finished_at", .datetime)
                t.column("result", .text).notNull()
                t.column("error", .text)
                t.column("bytes", .integer)
                t.column("backup_id", .text)
            }
        }
        m.registerMigration("v2-attempts") { db in
            try db.alter(table: "runs") { t in
                t.add(column: "attempt", .integer).notNull().defaults(to: 1)
            }
            try db.create(index: "runs_job_scheduled", on: "runs", columns: ["job", "scheduled_at"])
        }
        m.registerMigration("v3-run-process") { db in
            // The process running a run (ProcessIdentity): a run whose process is gone was interrupted.
            try db.alter(table: "runs") { t in
                t.add(column: "process", .text)
            }
        }
        registerAlertMigrations(&m)
        m.registerMigration("v5-run-latency") { db in
            // A probe's request latency (seconds).
            try db.alter(table: "runs") { t in t.add(column: "latency", .double) }
        }
        registerVerificationsMigration(&m)
        return m
    }

    /// Records the start of a run; returns its id.
    public func start(job: String, trigger: String, scheduledAt: Date? = nil, attempt: Int = 1, at now: Date = Date()) throws -> Int64 {
        try wrap("record the start of \(job)") {
            try db.write { db in
                try db.execute(sql: "INSERT INTO runs (job, trigger, scheduled_at, started_at, result, attempt, process) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                               arguments: [job, trigger, scheduledAt, now, attempt, ProcessIdentity.current?.description])
                return db.lastInsertedRowID
            }
        }
    }

    /// Records a run that did not happen (overlap, missed instant, ran on another node).
    public func recordSkipped(job: String, trigger: String, scheduledAt: Date?, reason: String, at now: Date = Date()) throws {
        try wrap("record a skipped run of \(job)") {
            try db.write { db in
                try db.execute(sql: """
                    INSERT INTO runs (job, trigger, scheduled_at, started_at, finished_at, result, error) VALUES (?, ?, ?, ?, ?, 'skipped', ?)
                    """, arguments: [job, trigger, scheduledAt, now, now, reason])
            }
        }
    }

    /// Per job, the latest scheduled instant that was run or attempted (for catch-up).
    public func lastScheduled() throws -> [String: Date] {
        try wrap("read the last scheduled runs") {
            try db.read { db in
                let rows = try Row.fetchAll(db, sql: """
                    SELECT job, MAX(scheduled_at) AS last FROM runs
                    WHERE scheduled_at IS NOT NULL AND trigger IN ('schedule', 'catch-up') GROUP BY job
                    """)
                var out: [String: Date] = [:]
                for r in rows { if let d: Date = r["last"] { out[r["job"]] = d } }
                return out
            }
        }
    }

    static let interruptedText = "interrupted: the process running it stopped (killed, crashed or host restarted)"

    /// Marks every run still "running" whose process is gone (SIGKILL, a
    /// crash, a reboot) as failed, interrupted. Runs by every process that
    /// opens the state, so `cairn history` after a killed `cairn run` shows
    /// the truth without a daemon. Rows written before the process was
    /// recorded are left to `markInterrupted` (under the job's lock).
    /// Returns the runs marked.
    @discardableResult
    public func markDeadRuns(at now: Date = Date()) throws -> [RunRecord] {
        try wrap("mark interrupted runs") {
            let running = try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE result = 'running' AND process IS NOT NULL")
                    .map { (Self.record($0), $0["process"] as String?) }
            }
            let dead = running.filter { _, process in process.flatMap(ProcessIdentity.init).map { !$0.isAlive } ?? false }
            guard !dead.isEmpty else { return [] }
            try db.write { db in
                for (run, _) in dead {
                    try db.execute(sql: "UPDATE runs SET result = 'failed', finished_at = ?, error = ? WHERE id = ? AND result = 'running'",
                                   arguments: [now, Self.interruptedText, run.id])
                }
            }
            return dead.map(\.0)
        }
    }

    /// Runs of `job` still marked running (their process died): marks them failed.
    /// Call only while holding the job's lock. Returns how many were marked.
    @discardableResult
    public func markInterrupted(job: String, at now: Date = Date()) throws -> Int {
        try wrap("mark interrupted runs of \(job)") {
            try db.write { db in
                try db.execute(sql: """
                    UPDATE runs SET result = 'failed', finished_at = ?, error = ?
                    WHERE job = ? AND result = 'running'
                    """, arguments: [now, Self.interruptedText, job])
                return db.changesCount
            }
        }
    }

    /// Records how a run ended.
    public func finish(id: Int64, result: RunRecord.Result, error: String? = nil, bytes: Int64? = nil,
                       backupID: String? = nil, latency: Double? = nil, at now: Date = Date()) throws {
        try wrap("record the end of run \(id)") {
            try db.write { db in
                try db.execute(sql: "UPDATE runs SET finished_at = ?, result = ?, error = ?, bytes = ?, backup_id = ?, latency = ? WHERE id = ?",
                               arguments: [now, result.rawValue, error, bytes, backupID, latency, id])
            }
        }
    }

    /// A job's runs, newest first.
    public func history(job: String, limit: Int = 20) throws -> [RunRecord] {
        try wrap("read the history of \(job)") {
            try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE job = ? ORDER BY started_at DESC, id DESC LIMIT ?",
                                 arguments: [job, limit]).map(Self.record)
            }
        }
    }

    /// The latest run of every job (skipped runs aside).
    public func latestRuns() throws -> [String: RunRecord] {
        try wrap("read the latest runs") {
            try db.read { db in
                let rows = try Row.fetchAll(db, sql: """
                    SELECT * FROM runs r WHERE id = (SELECT id FROM runs WHERE job = r.job AND result != 'skipped' ORDER BY started_at DESC, id DESC LIMIT 1)
                    """)
                return Dictionary(uniqueKeysWithValues: rows.map(Self.record).map { ($0.job, $0) })
            }
        }
    }

    /// The latest successful run of every job.
    public func lastSuccesses() throws -> [String: RunRecord] {
        try wrap("read the last successful runs") {
            try db.read { db in
                let rows = try Row.fetchAll(db, sql: """
                    SELECT * FROM runs r WHERE id = (SELECT id FROM runs WHERE job = r.job AND result = 'ok' ORDER BY started_at DESC, id DESC LIMIT 1)
                    """)
                return Dictionary(uniqueKeysWithValues: rows.map(Self.record).map { ($0.job, $0) })
            }
        }
    }

    static func record(_ row: Row) -> RunRecord {
        RunRecord(id: row["id"], job: row["job"], trigger: row["trigger"], scheduledAt: row["scheduled_at"],
                  startedAt: row["started_at"], finishedAt: row["finished_at"],
                  result: RunRecord.Result(rawValue: row["result"]) ?? .failed, error: row["error"],
                  bytes: row["bytes"], backupID: row["backup_id"], attempt: row["attempt"] ?? 1, latency: row["latency"])
    }

    /// Every failure of the state database is `.io`, its cause the SQLite
    /// error (result code and message) as data.
    func wrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as CairnError { throw e } catch {
            throw CairnError(.io, "state database \(path): cannot \(what)", cause: Self.cause(error))
        }
    }

    static func cause(_ error: any Error) -> any Error & Sendable {
        (error as? DatabaseError) ?? CairnError(.io, "\(error)")
    }
}

/// An exclusive per-job lock (flock on `STATE_DIR/locks/JOB.lock`), shared by
/// `cairn run` and the daemon: a job never runs twice at once on one host.
public final class JobLock: @unchecked Sendable {
    private let fd: Int32
    public let path: String

    /// Takes the lock or fails at once with `.busy`.
    public init(stateDir: String, job: String) throws {
        let dir = stateDir + "/locks"
        try? PrivateFiles.createDirectory(dir)
        let path = dir + "/\(job).lock"
        self.path = path
        // The descriptor is stored only once the lock is held: an initializer that throws after
        // every property is set runs deinit, which would close the descriptor a second time (and
        // with it whatever file another thread had opened under that number meanwhile).
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CairnError(.io, "cannot open lock file \(path): \(errnoString())") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let busy = errno == EWOULDBLOCK
            let why = errnoString()
            close(fd)
            throw busy ? CairnError(.busy, "job \(job) is already running (lock \(path) is held)")
                       : CairnError(.io, "cannot lock \(path): \(why)")
        }
        self.fd = fd
    }

    deinit { flock(fd, LOCK_UN); close(fd) }
}
