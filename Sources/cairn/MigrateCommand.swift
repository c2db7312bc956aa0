import ArgumentParser
import Config
import Core
import Foundation
import Jobs
import ObjectStore
import State

/// `cairn migrate JOB`: copies a migrate job's source tree to object storage,
/// resumably; `--verify [--deep]` checks the objects; `--dry-run` shows what
/// would be uploaded.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Copy a migrate job's source directory to object storage (resumable), or verify the copy.",
        discussion: """
            Re-running continues where the last run stopped: files done and unchanged are skipped, \
            unfinished multipart uploads resume at their next part. Exit status: 0 when every file \
            is stored; 4 (or the shared error code of the failures) when any file failed, or when the \
            checkpoint or the mapping file cannot be written (the run stops and prints its report); 9 when \
            --verify finds a missing or different object. See docs/MIGRATION.md.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Migrate job name (a file in the jobs directory, without .toml).") var job: String
    @Flag(help: "Check every recorded file against its object (HEAD: size and checksum) instead of uploading.") var verify = false
    @Flag(help: "With --verify: download every object and compare its SHA-256.") var deep = false
    @Flag(help: "Show what would be uploaded (counts and bytes) from the source, the checkpoint and a listing of the destination; send nothing.") var dryRun = false
    @Option(help: "Bandwidth limit across all transfers, e.g. 10M (MiB/s), 512k (KiB/s), 20MiB/s, 1000000 (bytes/s), off.") var bwlimit: String?
    @Option(help: "Write the mapping file (JSON lines: path, key, size, sha256, content_type, url) here.") var mapping: String?
    @Option(help: "Transfers at once (default: the job's concurrency, 8).") var concurrency: Int?
    @Option(help: ArgumentHelp("Leave out paths matching PATTERN, on top of the job's exclude list (repeatable). *.tmp matches at any depth, /tmp/* only at the top, cache/ directories only, ** crosses directories.", valueName: "PATTERN"))
    var exclude: [String] = []

    func validate() throws {
        if deep && !verify { throw ValidationError("--deep only applies with --verify") }
        if verify && dryRun { throw ValidationError("--verify and --dry-run cannot be combined") }
        if let c = concurrency, !(1...256).contains(c) { throw ValidationError("--concurrency must be from 1 to 256") }
        if let b = bwlimit {
            do { _ = try BandwidthLimiter.parse(b) } catch let e as CairnError { throw ValidationError(e.message) }
        }
        for p in exclude {
            do { _ = try PathPattern(p) } catch let e as CairnError { throw ValidationError("--exclude: \(e.message)") }
        }
        if verify && !exclude.isEmpty { throw ValidationError("--exclude does not apply with --verify (it checks every recorded file)") }
    }

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let config = try options.load()
            let job = try options.job(job, in: config)
            guard case .migrate(let spec) = job.spec else {
                throw CairnError(.usage, "job \(job.name) is a \(job.kind.rawValue) job, not a migrate job (use cairn run \(job.name))")
            }
            let storage = try Resources.storage(named: job.storage, in: config)
            let store = try Resources.store(storage)
            var migration = MigrateJob(name: job.name, spec: spec, store: store, stateDir: config.stateDir,
                                       objectLock: Resources.objectLock(storage))
            if let b = bwlimit { migration.bandwidthLimit = try BandwidthLimiter.parse(b) }
            if let m = mapping {
                migration.mappingFile = m.hasPrefix("/") ? m : FileManager.default.currentDirectoryPath + "/" + m
            }
            if let c = concurrency { migration.concurrency = c }
            migration.extraExclude = exclude
            let m = migration

            if dryRun {
                let plan = try await withSignalCancellation { try await m.plan() }
                print(plan.render(job: job.name, source: spec.source, destination: store.displayName + m.keyPrefix))
                return
            }

            if verify {
                // One run of a job at a time on this host (shared with the daemon and cairn run).
                let lock = try JobLock(stateDir: config.stateDir, job: job.name)
                defer { withExtendedLifetime(lock) {} }
                let reporter = ProgressReporter(job: job.name)
                reporter.start(m.progress)
                let report = try await withSignalCancellation { try await m.verify(deep: deep) }
                reporter.stop()
                print(report.render(job: job.name))
                if !report.isClean {
                    throw CairnError(report.missing.isEmpty && report.different.isEmpty ? .storage : .integrity,
                                     "verify of migration \(job.name): \(report.missing.count) missing, \(report.different.count) different, \(report.errors.count) error(s) of \(report.checked) object(s)")
                }
                return
            }

            // The run itself goes the one run path (lock, history, timeout, observers), with this command's overrides.
            var overridden = spec
            overridden.bandwidthLimit = m.bandwidthLimit
            overridden.mappingFile = m.mappingFile
            overridden.concurrency = m.concurrency
            overridden.exclude = spec.exclude + exclude
            var run = job
            run.spec = .migrate(overridden)
            try await LocalJobRun(config: config).run(run)
        }
    }
}
