import Foundation

/// The result of verifying one backup, stored next to it as
/// `<prefix>/<backup id>.verify.json` (`BackupLayout.verifyKey`) and in the
/// state database: written on success and on failure (not when the run was
/// cancelled: that says nothing about the backup).
public struct VerifyRecord: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    /// One table: the manifest's count and the restored database's.
    public struct Table: Codable, Sendable, Equatable {
        public var table: String
        /// nil: the table is not in the manifest.
        public var manifestRows: Int64?
        /// nil: the table is not in the restored database (or was not counted).
        public var restoredRows: Int64?
        public var matches: Bool { manifestRows == restoredRows }
        public init(table: String, manifestRows: Int64?, restoredRows: Int64?) {
            self.table = table; self.manifestRows = manifestRows; self.restoredRows = restoredRows
        }
    }

    /// One SQL check and how it went.
    public struct Check: Codable, Sendable, Equatable {
        public var name: String
        public var sql: String
        public var passed: Bool
        /// What it returned or why it failed, when it did not pass.
        public var detail: String?
        public init(name: String, sql: String, passed: Bool, detail: String? = nil) {
            self.name = name; self.sql = sql; self.passed = passed; self.detail = detail
        }
    }

    public var formatVersion = VerifyRecord.currentFormatVersion
    public var backupID: String
    /// The backup job whose backup this is.
    public var backupJob: String
    /// The verify job that ran.
    public var verifyJob: String
    public var verifiedAt: Date
    public var host: String
    public var cairnVersion: String
    public var scratchDatabase: String
    /// true: every step passed.
    public var ok: Bool
    /// Download + decrypt + pg_restore, in seconds: the measured recovery time (RTO) for this backup.
    public var restoreSeconds: Double?
    public var tablesCompared: Int
    public var rowsCompared: Int64
    /// Every table compared, in name order.
    public var tables: [Table]
    public var checks: [Check]
    /// "ok" (decrypted and authenticated, not applied), "absent" (the backup has none), "failed", or "not checked".
    public var globals: String
    /// The first failure, one line.
    public var error: String?

    public var mismatches: [Table] { tables.filter { !$0.matches } }
    public var state: String { ok ? "verified" : "failed" }

    public init(backupID: String, backupJob: String, verifyJob: String, verifiedAt: Date, host: String, cairnVersion: String,
                scratchDatabase: String, ok: Bool, restoreSeconds: Double?, tables: [Table], checks: [Check],
                globals: String, error: String?) {
        self.backupID = backupID; self.backupJob = backupJob; self.verifyJob = verifyJob; self.verifiedAt = verifiedAt
        self.host = host; self.cairnVersion = cairnVersion; self.scratchDatabase = scratchDatabase; self.ok = ok
        self.restoreSeconds = restoreSeconds; self.tables = tables; self.checks = checks; self.globals = globals; self.error = error
        self.tablesCompared = tables.count
        self.rowsCompared = tables.reduce(0) { $0 + ($1.restoredRows ?? 0) }
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion, backupID = "backupId", backupJob, verifyJob, verifiedAt, host, cairnVersion, scratchDatabase, ok,
             restoreSeconds, tablesCompared, rowsCompared, tables, mismatches, checks, globals, error
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        backupID = try c.decode(String.self, forKey: .backupID)
        backupJob = try c.decode(String.self, forKey: .backupJob)
        verifyJob = try c.decode(String.self, forKey: .verifyJob)
        verifiedAt = try c.decode(Date.self, forKey: .verifiedAt)
        host = try c.decode(String.self, forKey: .host)
        cairnVersion = try c.decode(String.self, forKey: .cairnVersion)
        scratchDatabase = try c.decode(String.self, forKey: .scratchDatabase)
        ok = try c.decode(Bool.self, forKey: .ok)
        restoreSeconds = try c.decodeIfPresent(Double.self, forKey: .restoreSeconds)
        tablesCompared = try c.decode(Int.self, forKey: .tablesCompared)
        rowsCompared = try c.decode(Int64.self, forKey: .rowsCompared)
        tables = try c.decode([Table].self, forKey: .tables)
        checks = try c.decode([Check].self, forKey: .checks)
        globals = try c.decode(String.self, forKey: .globals)
        error = try c.decodeIfPresent(String.self, forKey: .error)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(formatVersion, forKey: .formatVersion)
        try c.encode(backupID, forKey: .backupID)
        try c.encode(backupJob, forKey: .backupJob)
        try c.encode(verifyJob, forKey: .verifyJob)
        try c.encode(verifiedAt, forKey: .verifiedAt)
        try c.encode(host, forKey: .host)
        try c.encode(cairnVersion, forKey: .cairnVersion)
        try c.encode(scratchDatabase, forKey: .scratchDatabase)
        try c.encode(ok, forKey: .ok)
        try c.encodeIfPresent(restoreSeconds, forKey: .restoreSeconds)
        try c.encode(tablesCompared, forKey: .tablesCompared)
        try c.encode(rowsCompared, forKey: .rowsCompared)
        try c.encode(tables, forKey: .tables)
        try c.encode(mismatches, forKey: .mismatches)
        try c.encode(checks, forKey: .checks)
        try c.encode(globals, forKey: .globals)
        try c.encodeIfPresent(error, forKey: .error)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    public func encoded() throws -> Data { try Self.encoder.encode(self) }
    public static func decode(_ data: Data) throws -> VerifyRecord { try decoder.decode(VerifyRecord.self, from: data) }
}
