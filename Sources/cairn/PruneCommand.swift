import ArgumentParser
import Config
import Core
import Foundation
import Jobs

/// `cairn backups prune JOB [--dry-run]`: applies a retention unit now.
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Delete the backups a job's retention rules no longer keep (or show the plan).",
        discussion: """
        JOB is a retention unit, or a backup job: then the rules of the retention unit whose backup_job
        it is, or, with none, keep_days = [defaults] retention_days (30) and keep_last = 7.
        --dry-run prints the plan (each backup, its start time in the job's time zone, keep or delete, and
        the rule that decided) and deletes nothing; it takes no lock. Without it the run takes the job's lock
        and is recorded in the history like `cairn run` (the unit's own dry_run is overridden).
        When the newest backup is older than keep_days nothing is deleted and the command fails (exit 8).
        Examples:
          cairn backups prune marketplace-db --dry-run
          cairn backups prune marketplace-retention
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Argument(help: "A retention unit, or a backup job.") var job: String
    @Flag(help: "Print the plan; delete nothing.") var dryRun = false

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let config = try options.load()
            var unit = try Self.retentionUnit(for: try options.job(job, in: config), in: config)
            guard var spec = unit.retention else { throw CairnError(.internal, "job \(unit.name) is not a retention job") }
            spec.dryRun = dryRun
            unit.spec = .retention(spec)
            if dryRun {
                let report = try await RetentionRun.job(unit, spec: spec, config: config).run()
                print(report.table())
                try RetentionRun.check(report)
                return
            }
            try await LocalJobRun(config: config).run(unit)
        }
    }

    /// The retention unit to apply for `job`: itself, the retention unit
    /// referencing the backup job, or one made from the defaults (named `JOB-prune`).
    static func retentionUnit(for job: JobConfig, in config: CairnConfig) throws -> JobConfig {
        switch job.kind {
        case .retention:
            return job
        case .backup:
            let units = config.sortedJobs.filter { $0.retention?.backupJob == job.name }
            if units.count > 1 {
                throw CairnError(.usage, "backup job \(job.name) has several retention units (\(units.map(\.name).joined(separator: ", "))); name one")
            }
            if let unit = units.first { return unit }
            var made = job
            made.name = job.name + "-prune"
            made.jobDescription = "retention of \(job.name) with the default rules"
            made.schedule = nil
            made.timeout = nil
            made.retries = 0
            made.spec = .retention(RetentionSpec(backupJob: job.name, keepDays: config.defaults.retentionDays, keepLast: 7))
            return made
        default:
            throw CairnError(.usage, "job \(job.name) is a \(job.kind.rawValue) job; prune takes a retention unit or a backup job")
        }
    }
}
