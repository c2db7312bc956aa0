import Core
import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// Runs a database's schema migrations under an exclusive `flock` on the
/// database file, so that two processes opening a new database at once (the
/// daemon starting while `cairn status` runs, a test reading a checkpoint
/// while `cairn migrate` creates it) do not both apply the same migration:
/// GRDB's migrator reads which migrations are applied before it writes, and
/// the second process failed with "table files already exists" or
/// "duplicate column name". flock locks are independent of SQLite's POSIX
/// locks; the descriptor is closed only after the migrations, when SQLite
/// holds no lock on the file in this process.
enum SchemaLock {
    static func migrate(_ migrator: DatabaseMigrator, _ db: DatabaseQueue, path: String) throws {
        try withLock(path: path) { try migrator.migrate(db) }
    }

    /// Runs `body` (set-up that must not run in two connections at once:
    /// migrations, changing the journal mode) under the lock.
    static func withLock<T>(path: String, _ body: () throws -> T) throws -> T {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw CairnError(.io, "cannot open \(path) to lock its schema: \(errnoString(e))", cause: ErrnoError(e))
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            let e = errno
            if e == EINTR { continue }
            throw CairnError(.io, "cannot lock \(path) for its schema migrations: \(errnoString(e))", cause: ErrnoError(e))
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
