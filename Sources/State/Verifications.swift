import Core
import Foundation
import GRDB

/// One verification of a backup, as the state database keeps it (the full
/// record, the same JSON as the bucket's `<backup>.verify.json`, is in `record`).
public struct VerificationRow: Sendable, Equatable {
    public var id: Int64
    public var verifyJob: String
    public var backupJob: String
    public var backupID: String
    public var verifiedAt: Date
    public var ok: Bool
    /// The measured recovery time of this backup (download, decrypt, pg_restore).
    public var restoreSeconds: Double?
    public var tables: Int
    public var rows: Int64
    public var error: String?
    /// The verification record as JSON.
    public var record: Data
}

extension StateStore {
    /// The `verifications` table (named migration "v3-verifications").
    static func registerVerificationsMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v3-verifications") { db in
            try db.create(table: "verifications") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("verify_job", .text).notNull()
                t.column("backup_job", .text).notNull()
                t.column("backup_id", .text).notNull()
                t.column("verified_at", .datetime).notNull()
                t.column("ok", .boolean).notNull()
                t.column("restore_seconds", .double)
                t.column("tables", .integer).notNull()
                t.column("rows", .integer).notNull()
                t.column("error", .text)
                t.column("record", .blob).notNull()
            }
            try db.create(index: "verifications_backup_job", on: "verifications", columns: ["backup_job", "verified_at"])
            try db.create(index: "verifications_verify_job", on: "verifications", columns: ["verify_job", "verified_at"])
        }
    }

    /// Records one verification; returns its id.
    @discardableResult
    public func recordVerification(verifyJob: String, backupJob: String, backupID: String, verifiedAt: Date, ok: Bool,
                                   restoreSeconds: Double?, tables: Int, rows: Int64, error: String?, record: Data) throws -> Int64 {
        try verificationsWrap("record the verification of \(backupID)") {
            try db.write { db in
                try db.execute(sql: """
                    INSERT INTO verifications (verify_job, backup_job, backup_id, verified_at, ok, restore_seconds, tables, rows, error, record)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [verifyJob, backupJob, backupID, verifiedAt, ok, restoreSeconds, tables, rows, error, record])
                return db.lastInsertedRowID
            }
        }
    }

    /// Verifications by a verify job (or of a backup job's backups), newest first.
    public func verifications(verifyJob: String? = nil, backupJob: String? = nil, limit: Int = 20) throws -> [VerificationRow] {
        try verificationsWrap("read verifications") {
            try db.read { db in
                var sql = "SELECT * FROM verifications WHERE 1 = 1"
                var args: [(any DatabaseValueConvertible)?] = []
                if let verifyJob { sql += " AND verify_job = ?"; args.append(verifyJob) }
                if let backupJob { sql += " AND backup_job = ?"; args.append(backupJob) }
                sql += " ORDER BY verified_at DESC, id DESC LIMIT ?"
                args.append(limit)
                return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { r in
                    VerificationRow(id: r["id"], verifyJob: r["verify_job"], backupJob: r["backup_job"], backupID: r["backup_id"],
                                    verifiedAt: r["verified_at"], ok: r["ok"], restoreSeconds: r["restore_seconds"],
                                    tables: r["tables"], rows: r["rows"], error: r["error"], record: r["record"])
                }
            }
        }
    }

    private func verificationsWrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as CairnError { throw e } catch {
            throw CairnError(.io, "state database \(path): cannot \(what)", cause: Self.cause(error))
        }
    }
}
