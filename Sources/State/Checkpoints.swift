import Core
import Foundation
import GRDB

/// One file of a migration, as recorded in its checkpoint database.
public struct CheckpointFile: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        /// Seen, not yet stored.
        case pending
        /// A multipart upload is in progress (`uploadId`, `partSize` and the
        /// parts table say how far it got).
        case uploading
        /// The object is complete at the destination and matches `size`,
        /// `mtimeNs` and `sha256`.
        case done
        /// The last attempt failed; `error` says why. Retried by the next run.
        case failed
        /// Not uploaded on purpose (a special file, a symlink out of the source); `error` says why.
        case skipped
    }

    /// Path relative to the source directory, `/`-separated, as on disk.
    public var path: String
    public var size: Int64
    /// Modification time in nanoseconds since the epoch.
    public var mtimeNs: Int64
    /// SHA-256 of the contents (hex), once known.
    public var sha256: String?
    /// MD5 of the contents (hex), for single-PUT files.
    public var md5: String?
    public var state: State
    public var uploadId: String?
    public var partSize: Int64?
    /// The object key (relative to the store).
    public var key: String
    public var etag: String?
    public var contentType: String?
    public var error: String?
    public var updatedAt: Date

    public init(path: String, size: Int64, mtimeNs: Int64, sha256: String? = nil, md5: String? = nil,
                state: State, uploadId: String? = nil, partSize: Int64? = nil, key: String,
                etag: String? = nil, contentType: String? = nil, error: String? = nil, updatedAt: Date = Date()) {
        self.path = path; self.size = size; self.mtimeNs = mtimeNs; self.sha256 = sha256; self.md5 = md5
        self.state = state; self.uploadId = uploadId; self.partSize = partSize; self.key = key
        self.etag = etag; self.contentType = contentType; self.error = error; self.updatedAt = updatedAt
    }
}

/// One completed part of a multipart upload, as recorded.
public struct CheckpointPart: Sendable, Equatable {
    public var partNumber: Int
    public var etag: String
    public var size: Int64
    public init(partNumber: Int, etag: String, size: Int64) { self.partNumber = partNumber; self.etag = etag; self.size = size }
}

/// The checkpoint database of one migration job (`STATE_DIR/migrate/JOB.sqlite`):
/// one row per file and one row per completed part of a multipart upload.
///
/// Every method is one transaction, committed before it returns (WAL mode,
/// `synchronous = NORMAL`: a killed process loses nothing that was committed;
/// only a power loss can lose the last commits). The methods block: call them
/// from a blocking thread (`runBlocking`), never from the cooperative pool.
/// One `DatabaseQueue` per store; open one store per job per process.
public final class CheckpointStore: Sendable {
    private let db: DatabaseQueue
    public let path: String

    /// Opens (creating it and its directory) the checkpoint database of `job`.
    public convenience init(stateDir: String, job: String) throws {
        let dir = stateDir + "/migrate"
        do {
            try PrivateFiles.createDirectory(dir)
        } catch let e as CairnError {
            throw CairnError(.io, "cannot create checkpoint directory \(dir): \(e.message)", cause: e.cause)
        }
        try self.init(path: dir + "/\(job).sqlite")
    }

    /// Stores opened by `reusable`, by path, with the identity of the file
    /// each opened (device, inode).
    nonisolated(unsafe) private static var openStores: [String: (store: CheckpointStore, device: UInt64, inode: UInt64)] = [:]
    private static let openStoresLock = NSLock()

    /// The checkpoint database of `job`, opened once per process and handed
    /// to every later run while the file at its path is still the file it
    /// opened (same device and inode; a checkpoint deleted or replaced in
    /// between is opened afresh).
    ///
    /// Why not open and close it per run: closing releases GRDB's dispatch
    /// queue, and libdispatch disposes a queue's specifics on its default
    /// global queue, whose first worker thread arms libdispatch's 1 Hz
    /// workqueue monitor: a daemon that had run one migration would wake every
    /// second from then on (see Core's `CooperativePool`). Kept open, a store
    /// costs its SQLite connection; the daemon releases its cache when idle
    /// (`releaseMemoryOfOpenStores`).
    public static func reusable(stateDir: String, job: String) throws -> CheckpointStore {
        let path = Self.path(stateDir: stateDir, job: job)
        openStoresLock.lock(); defer { openStoresLock.unlock() }
        var st = stat()
        if let open = openStores[path], lstat(path, &st) == 0,
           UInt64(st.st_dev) == open.device, UInt64(st.st_ino) == open.inode {
            return open.store
        }
        let store = try CheckpointStore(stateDir: stateDir, job: job)
        guard lstat(path, &st) == 0 else {
            let e = errno
            throw CairnError(.io, "cannot stat checkpoint database \(path): \(errnoString(e))", cause: ErrnoError(e))
        }
        openStores[path] = (store, UInt64(st.st_dev), UInt64(st.st_ino))
        return store
    }

    /// Frees the SQLite caches of the stores `reusable` keeps open. Blocking.
    public static func releaseMemoryOfOpenStores() {
        openStoresLock.lock()
        let stores = openStores.values.map(\.store)
        openStoresLock.unlock()
        for s in stores { s.db.releaseMemory() }
    }

    /// The path of a job's checkpoint database, without opening it.
    public static func path(stateDir: String, job: String) -> String { stateDir + "/migrate/\(job).sqlite" }

    public init(path: String) throws {
        self.path = path
        do {
            var config = Configuration()
            config.busyMode = .timeout(10)
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            try PrivateFiles.createFile(path)   // 0600; SQLite gives -wal and -shm the same mode
            db = try DatabaseQueue(path: path, configuration: config)
            // Under the schema lock: a second connection changing the journal mode
            // at the same time gets "database is locked" at once, whatever the busy timeout.
            try SchemaLock.withLock(path: path) {
                try db.writeWithoutTransaction { db in
                    _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                }
                try Self.migrator.migrate(db)
            }
        } catch let e as CairnError {
            throw e
        } catch {
            throw CairnError(.io, "cannot open checkpoint database \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-files-parts") { db in
            try db.create(table: "files") { t in
                t.primaryKey("path", .text)
                t.column("size", .integer).notNull()
                t.column("mtime_ns", .integer).notNull()
                t.column("sha256", .text)
                t.column("md5", .text)
                t.column("state", .text).notNull().indexed()
                t.column("upload_id", .text)
                t.column("part_size", .integer)
                t.column("key", .text).notNull()
                t.column("etag", .text)
                t.column("content_type", .text)
                t.column("error", .text)
                t.column("updated_at", .datetime).notNull()
            }
            try db.create(table: "parts") { t in
                t.column("path", .text).notNull().references("files", column: "path", onDelete: .cascade)
                t.column("part_number", .integer).notNull()
                t.column("etag", .text).notNull()
                t.column("size", .integer).notNull()
                t.primaryKey(["path", "part_number"])
            }
        }
        // A change counter: any change to `files` bumps it, so a run can tell
        // that nothing changed since the mapping file was written (kept in
        // `mapping_stamp`) without reading the rows.
        m.registerMigration("v2-generation-mapping-stamp") { db in
            try db.execute(sql: """
                CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
                INSERT INTO generation (id, n) VALUES (1, 0);
                CREATE TRIGGER files_inserted AFTER INSERT ON files BEGIN UPDATE generation SET n = n + 1; END;
                CREATE TRIGGER files_updated AFTER UPDATE ON files BEGIN UPDATE generation SET n = n + 1; END;
                CREATE TRIGGER files_deleted AFTER DELETE ON files BEGIN UPDATE generation SET n = n + 1; END;
                CREATE TABLE mapping_stamp (
                  id INTEGER PRIMARY KEY CHECK (id = 1), path TEXT NOT NULL, generation INTEGER NOT NULL,
                  basis TEXT NOT NULL, entries INTEGER NOT NULL, device INTEGER NOT NULL, inode INTEGER NOT NULL,
                  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL);
                """)
        }
        return m
    }

    // MARK: reading

    /// What the unchanged-file test of a migration needs of one row.
    public struct QuickRow: Sendable, Equatable {
        public var size: Int64
        public var mtimeNs: Int64
        /// The row is `done` and records the key the caller expects (key prefix + path).
        public var doneAtKey: Bool
        public init(size: Int64, mtimeNs: Int64, doneAtKey: Bool) { self.size = size; self.mtimeNs = mtimeNs; self.doneAtKey = doneAtKey }
    }

    /// The rows whose paths lie between `low` and `high` (inclusive, UTF-8 byte
    /// order), with only the columns an unchanged-file test needs: one range
    /// scan of the path index for a batch of walked files (which come in byte
    /// order), columns read by position, no date decoded.
    public func quickRows(from low: String, to high: String, keyPrefix: String) throws -> [String: QuickRow] {
        try wrap("read the checkpoint") {
            try db.read { db in
                var out: [String: QuickRow] = [:]
                let statement = try db.cachedStatement(sql: """
                    SELECT path, size, mtime_ns, coalesce(state = 'done' AND key = (?3 || path), 0) FROM files WHERE path >= ?1 AND path <= ?2
                    """)
                let rows = try Row.fetchCursor(statement, arguments: [low, high, keyPrefix])
                while let row = try rows.next() {
                    let path: String = row[0]
                    out[path] = QuickRow(size: row[1], mtimeNs: row[2], doneAtKey: row[3])
                }
                return out
            }
        }
    }

    /// The change counter of the `files` table: any insert, update or delete changes it.
    public func generation() throws -> Int64 {
        try wrap("read the checkpoint") {
            try db.read { db in try Int64.fetchOne(db, sql: "SELECT n FROM generation WHERE id = 1") ?? 0 }
        }
    }

    /// The stamp of the last mapping file written, if any.
    public func mappingStamp() throws -> MappingStamp? {
        try wrap("read the checkpoint") {
            try db.read { db in
                try Row.fetchOne(db, sql: "SELECT path, generation, basis, entries, device, inode, size, mtime_ns, ctime_ns FROM mapping_stamp WHERE id = 1").map { r in
                    MappingStamp(path: r[0], generation: r[1], basis: r[2], entries: r[3],
                                 file: FileIdentity(device: UInt64(bitPattern: r[4]), inode: UInt64(bitPattern: r[5]),
                                                    size: r[6], mtimeNs: r[7], ctimeNs: r[8]))
                }
            }
        }
    }

    /// Records the stamp of the mapping file just written (replacing the last one).
    public func setMappingStamp(_ s: MappingStamp) throws {
        try wrap("record the mapping file in the checkpoint", write: true) {
            try db.write { db in
                try db.execute(sql: """
                    INSERT OR REPLACE INTO mapping_stamp (id, path, generation, basis, entries, device, inode, size, mtime_ns, ctime_ns)
                    VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [s.path, s.generation, s.basis, s.entries, Int64(bitPattern: s.file.device),
                                     Int64(bitPattern: s.file.inode), s.file.size, s.file.mtimeNs, s.file.ctimeNs])
            }
        }
    }

    /// Every file row, by path.
    public func allFiles() throws -> [String: CheckpointFile] {
        try wrap("read the checkpoint") {
            try db.read { db in
                var out: [String: CheckpointFile] = [:]
                let rows = try Row.fetchCursor(db, sql: "SELECT * FROM files")
                while let row = try rows.next() {
                    let f = Self.file(row)
                    out[f.path] = f
                }
                return out
            }
        }
    }

    public func file(_ path: String) throws -> CheckpointFile? {
        try wrap("read \(path) from the checkpoint") {
            try db.read { db in try Row.fetchOne(db, sql: "SELECT * FROM files WHERE path = ?", arguments: [path]).map(Self.file) }
        }
    }

    /// The rows of these paths (those that have one), in one read transaction:
    /// a migration looks its files up a batch at a time, so the checkpoint is
    /// never held in memory whole.
    public func files(paths: [String]) throws -> [String: CheckpointFile] {
        try wrap("read the checkpoint") {
            try db.read { db in
                var out: [String: CheckpointFile] = [:]
                let statement = try db.cachedStatement(sql: "SELECT * FROM files WHERE path = ?")
                for p in paths {
                    if let row = try Row.fetchOne(statement, arguments: [p]) { out[p] = Self.file(row) }
                }
                return out
            }
        }
    }

    /// What a mapping file line needs of a done row.
    public struct DoneRow: Sendable, Equatable {
        public var path: String
        public var key: String
        public var size: Int64
        public var sha256: String?
        public var contentType: String?
        public init(path: String, key: String, size: Int64, sha256: String?, contentType: String?) {
            self.path = path; self.key = key; self.size = size; self.sha256 = sha256; self.contentType = contentType
        }
    }

    /// Calls `body` with each done row, ordered by path (UTF-8 byte order),
    /// from a cursor reading only the columns a mapping line needs, by
    /// position. Returns the change counter (`generation()`) the rows are of,
    /// read in the same transaction; `body` must not use this store.
    @discardableResult
    public func forEachDone(_ body: (DoneRow) throws -> Void) throws -> Int64 {
        try wrap("read the checkpoint") {
            try db.read { db in
                let generation = try Int64.fetchOne(db, sql: "SELECT n FROM generation WHERE id = 1") ?? 0
                let rows = try Row.fetchCursor(db, sql: "SELECT path, key, size, sha256, content_type FROM files WHERE state = 'done' ORDER BY path")
                while let row = try rows.next() {
                    try body(DoneRow(path: row[0], key: row[1], size: row[2], sha256: row[3], contentType: row[4]))
                }
                return generation
            }
        }
    }

    /// The multipart upload ids the rows refer to (files being uploaded or failed mid-upload).
    public func uploadIds() throws -> Set<String> {
        try wrap("read the checkpoint") {
            try db.read { db in Set(try String.fetchAll(db, sql: "SELECT upload_id FROM files WHERE upload_id IS NOT NULL")) }
        }
    }

    /// Whether any row records this object key.
    public func hasKey(_ key: String) throws -> Bool {
        try wrap("read the checkpoint") {
            try db.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM files WHERE key = ? LIMIT 1", arguments: [key]) ?? false }
        }
    }

    /// Rows in a state, ordered by path.
    public func files(in state: CheckpointFile.State) throws -> [CheckpointFile] {
        try wrap("read the checkpoint") {
            try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM files WHERE state = ? ORDER BY path", arguments: [state.rawValue]).map(Self.file)
            }
        }
    }

    /// The recorded completed parts of a file's multipart upload, by part number.
    public func parts(_ path: String) throws -> [CheckpointPart] {
        try wrap("read the parts of \(path)") {
            try db.read { db in
                try Row.fetchAll(db, sql: "SELECT part_number, etag, size FROM parts WHERE path = ? ORDER BY part_number", arguments: [path])
                    .map { CheckpointPart(partNumber: $0["part_number"], etag: $0["etag"], size: $0["size"]) }
            }
        }
    }

    /// Counts of rows per state.
    public func counts() throws -> [CheckpointFile.State: Int] {
        try wrap("count the checkpoint") {
            try db.read { db in
                var out: [CheckpointFile.State: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM files GROUP BY state") {
                    if let s = CheckpointFile.State(rawValue: row["state"]) { out[s] = row["n"] }
                }
                return out
            }
        }
    }

    // MARK: writing (each call is one transaction)

    /// Inserts or replaces a file's row. Replacing a row whose upload id changes
    /// (or is cleared) also forgets its recorded parts.
    public func put(_ f: CheckpointFile) throws {
        try wrap("record \(PathText.escape(f.path)) in the checkpoint", write: true) {
            try db.write { db in
                let old = try String.fetchOne(db, sql: "SELECT upload_id FROM files WHERE path = ?", arguments: [f.path])
                if old != f.uploadId {
                    try db.execute(sql: "DELETE FROM parts WHERE path = ?", arguments: [f.path])
                }
                try db.execute(sql: """
                    INSERT INTO files (path, size, mtime_ns, sha256, md5, state, upload_id, part_size, key, etag, content_type, error, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,
                      md5 = excluded.md5, state = excluded.state, upload_id = excluded.upload_id, part_size = excluded.part_size,
                      key = excluded.key, etag = excluded.etag, content_type = excluded.content_type, error = excluded.error,
                      updated_at = excluded.updated_at
                    """, arguments: [f.path, f.size, f.mtimeNs, f.sha256, f.md5, f.state.rawValue, f.uploadId, f.partSize,
                                     f.key, f.etag, f.contentType, f.error, f.updatedAt])
            }
        }
    }

    /// Records one completed part of `path`'s upload `uploadId`. Ignored (returns
    /// false) when the row no longer has that upload id, so a part finishing after
    /// its upload was replaced cannot be attached to the new one.
    @discardableResult
    public func addPart(_ path: String, uploadId: String, _ part: CheckpointPart) throws -> Bool {
        try wrap("record part \(part.partNumber) of \(PathText.escape(path)) in the checkpoint", write: true) {
            try db.write { db in
                let current = try String.fetchOne(db, sql: "SELECT upload_id FROM files WHERE path = ?", arguments: [path])
                guard current == uploadId else { return false }
                try db.execute(sql: "INSERT OR REPLACE INTO parts (path, part_number, etag, size) VALUES (?, ?, ?, ?)",
                               arguments: [path, part.partNumber, part.etag, part.size])
                try db.execute(sql: "UPDATE files SET updated_at = ? WHERE path = ?", arguments: [Date(), path])
                return true
            }
        }
    }

    /// Forgets recorded parts that the server no longer has (keeps `keep`).
    public func retainParts(_ path: String, _ keep: Set<Int>) throws {
        try wrap("update the parts of \(PathText.escape(path))", write: true) {
            try db.write { db in
                let all = try Int.fetchAll(db, sql: "SELECT part_number FROM parts WHERE path = ?", arguments: [path])
                for n in all where !keep.contains(n) {
                    try db.execute(sql: "DELETE FROM parts WHERE path = ? AND part_number = ?", arguments: [path, n])
                }
            }
        }
    }

    // MARK: plumbing

    static func file(_ row: Row) -> CheckpointFile {
        CheckpointFile(path: row["path"], size: row["size"], mtimeNs: row["mtime_ns"], sha256: row["sha256"], md5: row["md5"],
                       state: CheckpointFile.State(rawValue: row["state"]) ?? .pending, uploadId: row["upload_id"],
                       partSize: row["part_size"], key: row["key"], etag: row["etag"], contentType: row["content_type"],
                       error: row["error"], updatedAt: row["updated_at"])
    }

    /// Reads: any failure is an `.io` error. Writes (`write: true`): the
    /// failure is kept as a `StateWriteFailure` cause, which stops a migration.
    private func wrap<T>(_ what: String, write: Bool = false, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as CairnError { throw e } catch {
            guard write else { throw CairnError(.io, "checkpoint database \(path): cannot \(what): \(error)") }
            let failure = StateWriteFailure(error)
            throw CairnError(.io, "checkpoint database \(path): cannot \(what): \(failure)", cause: failure)
        }
    }
}
