import Config
import Core
import Foundation

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
        case .migrate, .probe: throw CairnError(.config, "job \(job.name) is a \(job.kind.rawValue) job: it has no backup job")
        }
        guard let other = config.jobs[name], case .backup(let spec) = other.spec else {
            throw CairnError(.config, "job \(job.name): backup_job '\(name)' is not a backup job in \(config.jobsDir)")
        }
        return (other, spec)
    }
}
