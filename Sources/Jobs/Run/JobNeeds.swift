import Config
import Core
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
        }
    }
}

/// Everything a job needs that can be checked without running it: its
/// storage opens, its keys load (with the right permissions), its backup
/// job exists. The daemon runs it before it starts and on reload;
/// `cairn config check --preflight` prints it.
public enum JobPreflight {
    /// Checks every job; throws the first problem.
    public static func check(_ config: CairnConfig, env: [String: String] = ProcessInfo.processInfo.environment) throws {
        var keys: JobNeeds.Keys = .none
        for job in config.sortedJobs {
            try check(job, in: config, env: env)
            switch job.kind.needs.keys {
            case .active: keys = .active
            case .readable where keys == .none: keys = .readable
            default: break
            }
        }
        try checkKeys(keys, config, env: env)
    }

    /// Checks one job (its keys included).
    public static func check(_ job: JobConfig, in config: CairnConfig, env: [String: String] = ProcessInfo.processInfo.environment) throws {
        let needs = job.kind.needs
        if needs.store {
            _ = try Resources.store(try Resources.storage(named: job.storage, in: config), env: env)
        }
        if needs.backupJob {
            _ = try backupJob(of: job, in: config)
        }
        try checkKeys(needs.keys, config, env: env)
    }

    static func checkKeys(_ keys: JobNeeds.Keys, _ config: CairnConfig, env: [String: String]) throws {
        switch keys {
        case .none: break
        case .readable: _ = try Resources.keyring(config.keys, env: env, requireActive: false)
        case .active: _ = try Resources.keyring(config.keys, env: env, requireActive: true)
        }
    }

    /// The backup job a verify or retention job works on.
    public static func backupJob(of job: JobConfig, in config: CairnConfig) throws -> (JobConfig, BackupSpec) {
        let name: String
        switch job.spec {
        case .verify(let s): name = s.backupJob
        case .retention(let s): name = s.backupJob
        case .backup(let s): return (job, s)
        case .migrate: throw CairnError(.config, "job \(job.name) is a migrate job: it has no backup job")
        }
        guard let other = config.jobs[name], case .backup(let spec) = other.spec else {
            throw CairnError(.config, "job \(job.name): backup_job '\(name)' is not a backup job in \(config.jobsDir)")
        }
        return (other, spec)
    }
}
