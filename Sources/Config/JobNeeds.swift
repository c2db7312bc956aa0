import Foundation

/// What a job of some kind needs before it can run. Derived from the kind
/// by one exhaustive switch (`JobKind.needs`): a new kind does not compile
/// until it says what it needs, and the daemon's preflight, `cairn config
/// check` and `JobRunner` follow from it.
public struct JobNeeds: Sendable, Equatable, CustomStringConvertible {
    public enum Keys: Sendable, Equatable {
        case none
        /// Every configured key, to read (decrypt, authenticate) backups.
        case readable
        /// The active key too, to write new backups.
        case active
    }
    /// The job's storage (every kind today).
    public var store: Bool
    public var keys: Keys
    /// A PostgreSQL server: the source database (backup) or the scratch server (verify).
    public var database: Bool
    /// Another job's backups (verify, retention): its `backup_job`.
    public var backupJob: Bool

    public var description: String {
        var parts: [String] = []
        if store { parts.append("storage") }
        switch keys {
        case .none: break
        case .readable: parts.append("keys (read)")
        case .active: parts.append("the active key")
        }
        if database { parts.append("PostgreSQL") }
        if backupJob { parts.append("a backup job") }
        return parts.joined(separator: ", ")
    }
}

extension JobKind {
    /// What a job of this kind needs.
    public var needs: JobNeeds {
        switch self {
        case .backup: return JobNeeds(store: true, keys: .active, database: true, backupJob: false)
        case .verify: return JobNeeds(store: true, keys: .readable, database: true, backupJob: true)
        case .retention: return JobNeeds(store: true, keys: .readable, database: false, backupJob: true)
        case .migrate: return JobNeeds(store: true, keys: .none, database: false, backupJob: false)
        case .probe: return JobNeeds(store: false, keys: .none, database: false, backupJob: false)
        }
    }
}
