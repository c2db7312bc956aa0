import Core
import GRDB

/// Why Cairn's own state (a checkpoint database, a mapping file) could not
/// be written: kept as the `cause` of the `CairnError`, so callers decide on
/// the data (a disk that is full, read-only or failing), never on a message.
/// A job whose state cannot be written stops starting work.
public struct StateWriteFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The SQLite result code (primary, e.g. 13 = SQLITE_FULL, 8 = SQLITE_READONLY, 10 = SQLITE_IOERR), for a database.
    public var sqliteCode: Int32?
    /// The errno of the failed system call, for a plain file.
    public var errno: Int32?
    public var detail: String

    public init(sqliteCode: Int32? = nil, errno: Int32? = nil, detail: String) {
        self.sqliteCode = sqliteCode; self.errno = errno; self.detail = detail
    }

    /// From a GRDB error (or anything else thrown by a write).
    public init(_ error: any Error) {
        if let d = error as? DatabaseError {
            self.init(sqliteCode: d.resultCode.primaryResultCode.rawValue, detail: d.message ?? "\(d.resultCode)")
        } else if let s = error as? SyscallError {
            self.init(errno: s.code, detail: s.description)
        } else {
            self.init(detail: "\(error)")
        }
    }

    public var description: String {
        if let c = sqliteCode { return "\(detail) (SQLite error \(c))" }
        return detail
    }
}

extension CairnError {
    /// The state failure behind this error, if it is one.
    public var stateWriteFailure: StateWriteFailure? { cause as? StateWriteFailure }
}
