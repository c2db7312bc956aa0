import Config
import Core
import Crypto
import Foundation
import Logging
import ObjectStore
import Postgres
import State

/// Proves a backup restores: picks it (`VerifySelection`), streams it (one
/// GET → decrypt → zstd -d) into pg_restore into a fresh scratch database,
/// compares every table's row count with the manifest, runs the SQL checks,
/// decrypts and authenticates the globals (without applying them), records
/// the result next to the backup and in the state database, and always drops
/// the scratch database (success, failure, cancellation, timeout).
public struct VerifyJob: Sendable {
    /// The verify job's name.
    public var name: String
    public var spec: VerifySpec
    /// The backup job's key prefix.
    public var prefix: String
    public var store: any ObjectStore
    public var keyring: Keyring
    /// Where the spool file (`restore_jobs > 1`) and the state database live.
    public var stateDir: String
    /// The process's state database (one connection per process: the executor's); nil opens one.
    public var state: StateStore?
    public var logger: Logger
    /// Called once the backup is chosen, with its progress.
    public var started: @Sendable (RestoreProgress) -> Void = { _ in }
    public var now: @Sendable () -> Date = { Date() }

    public init(name: String, spec: VerifySpec, prefix: String, store: any ObjectStore, keyring: Keyring, stateDir: String,
                logger: Logger = .cairn("verify")) {
        self.name = name; self.spec = spec; self.prefix = prefix; self.store = store; self.keyring = keyring
        self.stateDir = stateDir; self.logger = logger
    }

    public func run() async throws -> VerifyReport {
        let catalog = BackupCatalog(store: store, prefix: prefix, keyring: keyring)
        let scan = try await catalog.scan()
        guard let entry = try VerifySelection.choose(spec.backupID, in: scan, catalog: catalog) else {
            let newest = VerifySelection.newestVerified(scan.entries)
            return VerifyReport(record: nil, newestVerifiedBackupID: newest?.manifest.id, newestVerifiedBackupAt: newest?.manifest.startedAt, now: now())
        }
        try entry.requireTrusted(trustUnauthenticated: false)
        let manifest = entry.manifest
        let server = try ScratchServer(url: spec.scratchDatabaseURL, password: try spec.readPassword(), logger: logger)
        let scratch = ScratchDatabaseName.make(job: name, backupID: manifest.id)
        // The name is claimed before the database exists, so no other unit's clean-up takes it for a leftover.
        let claim = try await server.claim(scratch)
        let result: Result<VerifyReport, any Error>
        do {
            result = .success(try await verify(entry: entry, manifest: manifest, server: server, scratch: scratch, entries: scan.entries))
        } catch {
            result = .failure(error)
        }
        // After the scratch database is dropped (or the run failed), also when cancelled.
        await claim.release()
        return try result.get()
    }

    private func verify(entry: CatalogEntry, manifest: BackupManifest, server: ScratchServer, scratch: String,
                        entries scanned: [CatalogEntry]) async throws -> VerifyReport {
        _ = try await server.dropLeftovers(own: scratch)
        if spec.restoreJobs > 1 { try SpoolSpace.require(manifest.dump.plaintextSize, in: stateDir) }

        var restoreSeconds: Double?
        var tables: [VerifyRecord.Table] = []
        var checks: [VerifyRecord.Check] = []
        var globals = manifest.globals == nil ? "absent" : "not checked"
        var failure: (any Error)?
        // Whole seconds: the record's JSON carries ISO 8601 times without fractions.
        let startedAt = Date(timeIntervalSince1970: now().timeIntervalSince1970.rounded(.down))
        // A scratch server that cannot create the database says nothing about the backup: no record.
        try await server.create(scratch)
        do {
            logger.info("verifying", metadata: ["backup": "\(manifest.id)", "database": "\(scratch)"])
            let conninfo = server.conninfo(of: scratch)
            var restore = RestoreJob(manifest: manifest, store: store, keyring: keyring, logger: logger)
            let progress = RestoreProgress(total: manifest.dump.ciphertextSize)
            started(progress)
            restore.progress = { progress.read($0) }
            // Roles of the source need not exist on the scratch server: objects belong to the restoring role.
            restore.options = RestoreJob.Options(noOwner: true, noPrivileges: true, globals: .skip, note: { _ in })
            restore.options.spoolDirectory = stateDir
            let clock = ContinuousClock()
            let t0 = clock.now
            let result = try await restore.run(to: .database(conninfo, create: false, jobs: spec.restoreJobs))
            let elapsed = clock.now - t0
            restoreSeconds = elapsed.inSeconds
            let comparison = RowCountComparison(manifest: manifest.rowCounts, restored: result.rowCounts ?? [:])
            tables = comparison.tables
            checks = try await runChecks(conninfo)
            if manifest.globals != nil {
                do {
                    try await checkGlobals(restore)
                    globals = "ok"
                } catch let e as CairnError where e.code == .cancelled {
                    throw e
                } catch {
                    globals = "failed"
                    throw CairnError.wrap(error, .integrity, "globals of backup \(manifest.id)")
                }
            }
            var problems: [String] = []
            if let m = comparison.failureMessage { problems.append(m) }
            for c in checks where !c.passed { problems.append("check '\(c.name)' failed: \(c.detail ?? "not true")") }
            if !problems.isEmpty {
                throw CairnError(.integrity, "verification of backup \(manifest.id) failed: " + problems.joined(separator: "; "))
            }
        } catch {
            failure = error
        }
        // Always, also when cancelled: a detached task the cancellation does not reach.
        do {
            try await server.dropDetached(scratch)
        } catch {
            logger.error("cannot drop the scratch database", metadata: ["database": "\(scratch)", "error": "\(error)"])
            if failure == nil { failure = CairnError.wrap(error, .database, "cannot drop scratch database \(scratch)") }
        }
        if let failure, Self.isCancellation(failure) { throw failure }

        let record = VerifyRecord(backupID: manifest.id, backupJob: spec.backupJob, verifyJob: name, verifiedAt: startedAt,
                                  host: ProcessInfo.processInfo.hostName, cairnVersion: CairnVersion.current,
                                  scratchDatabase: scratch, ok: failure == nil, restoreSeconds: restoreSeconds,
                                  tables: tables, checks: checks, globals: globals,
                                  error: failure.map { ($0 as? CairnError)?.message ?? "\($0)" })
        try await save(record)
        if let failure { throw failure }
        var entries = scanned
        if let i = entries.firstIndex(where: { $0.manifest.id == manifest.id }) { entries[i].verification = record }
        let newest = VerifySelection.newestVerified(entries)
        return VerifyReport(record: record, newestVerifiedBackupID: newest?.manifest.id, newestVerifiedBackupAt: newest?.manifest.startedAt, now: now())
    }

    static func isCancellation(_ e: any Error) -> Bool {
        e is CancellationError || (e as? CairnError)?.code == .cancelled || Task.isCancelled
    }

    /// Each check must return exactly one row of one column, true.
    func runChecks(_ conninfo: String) async throws -> [VerifyRecord.Check] {
        guard !spec.checks.isEmpty else { return [] }
        let conn = try await PGConnection.connect(conninfo)
        defer { Task.detached { await conn.close() } }
        var out: [VerifyRecord.Check] = []
        for check in spec.checks {
            do {
                let rows = try await conn.query(check.sql)
                if rows.count == 1, rows[0].count == 1, rows[0][0] == "t" {
                    out.append(.init(name: check.name, sql: check.sql, passed: true))
                } else {
                    let got = rows.count == 1 && rows[0].count == 1 ? "returned \(rows[0][0] ?? "NULL")"
                        : "returned \(rows.count) row(s) of \(rows.first?.count ?? 0) column(s); expected one row with one true value"
                    out.append(.init(name: check.name, sql: check.sql, passed: false, detail: got))
                }
            } catch let e as CairnError where e.code == .cancelled {
                throw e
            } catch {
                out.append(.init(name: check.name, sql: check.sql, passed: false, detail: (error as? CairnError)?.message ?? "\(error)"))
            }
        }
        return out
    }

    /// Downloads, decrypts and authenticates the globals object (size and
    /// SHA-256 against the manifest); does not apply it.
    func checkGlobals(_ restore: RestoreJob) async throws {
        guard let g = restore.manifest.globals else { return }
        _ = try await restore.decrypt(g, into: { ch in while try await ch.receive() != nil {} })
    }

    /// Writes the record next to the backup and into the state database.
    func save(_ record: VerifyRecord) async throws {
        let data = try record.encoded()
        let key = BackupLayout.verifyKey(prefix: prefix, id: record.backupID)
        var firstError: (any Error)?
        do {
            _ = try await store.put(key: key, data: data)
        } catch {
            logger.error("cannot write the verification record", metadata: ["key": "\(key)", "error": "\(error)"])
            firstError = error
        }
        let stateDir = self.stateDir, shared = self.state
        do {
            try await runBlocking {
                let state = try shared ?? StateStore(stateDir: stateDir)
                try state.recordVerification(verifyJob: record.verifyJob, backupJob: record.backupJob, backupID: record.backupID,
                                             verifiedAt: record.verifiedAt, ok: record.ok, restoreSeconds: record.restoreSeconds,
                                             tables: record.tablesCompared, rows: record.rowsCompared, error: record.error, record: data)
            }
        } catch {
            logger.error("cannot record the verification in the state database", metadata: ["error": "\(error)"])
            if firstError == nil { firstError = error }
        }
        // A verification that failed throws its own failure; one that passed fails if it cannot be recorded.
        if record.ok, let firstError { throw firstError }
    }
}
