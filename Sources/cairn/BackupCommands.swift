import ArgumentParser
import Config
import Core
import Foundation
import Jobs
import Logging
import ObjectStore
import Postgres
import Scheduler
import State

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job now: through the running daemon, or in this process when none runs.",
        discussion: """
        With `cairn serve` running, the daemon runs the job (recorded, subject to the job's
        overlap rule) and `cairn run` returns at once; `--wait` follows the run's progress and
        exits with its result. With no daemon, the job runs in this process under the same
        per-job lock the daemon uses, so a manual run and a scheduled run never overlap.
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Job name (a file in the jobs directory, without .toml).") var job: String
    @Flag(help: "With a daemon running: wait for the run to end and exit with its result.") var wait = false
    @Flag(help: "Run in this process even when a daemon is running (still under the job's lock).") var local = false

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let config = try options.load()
            let job = try options.job(job, in: config)
            if !local, let conn = try ControlClient.connectIfRunning(path: config.daemon.socketPath(stateDir: config.stateDir)) {
                try await runThroughDaemon(conn)
                return
            }
            // One run of a job at a time on this host (shared with the daemon), recorded in the history.
            let lock = try JobLock(stateDir: config.stateDir, job: job.name)
            // With [cluster], also the job's lock in the lock database: no node runs it meanwhile.
            var cluster: (ClusterCoordinator, ClusterClaim)?
            if let c = config.cluster {
                let coordinator = ClusterCoordinator(config: c)
                try await coordinator.prepare()
                switch try await coordinator.claimManual(job: job.name) {
                case .claimed(let claim): cluster = (coordinator, claim)
                case .runningElsewhere(let node), .alreadyRan(let node as String?):
                    throw CairnError(.busy, "job \(job.name) is running on cluster node \(node ?? "?")")
                }
            }
            let state = try StateStore(stateDir: config.stateDir)
            let runID = try state.start(job: job.name, trigger: "manual")
            do {
                let (bytes, backupID) = try await runJob(job, config: config)
                try state.finish(id: runID, result: .ok, bytes: bytes, backupID: backupID)
                if let (c, claim) = cluster { await c.finish(claim, result: "ok", error: nil) }
            } catch {
                let cancelled = error is CancellationError || (error as? CairnError)?.code == .cancelled
                try? state.finish(id: runID, result: cancelled ? .cancelled : .failed, error: historyText(error))
                if let (c, claim) = cluster { await c.finish(claim, result: cancelled ? "cancelled" : "failed", error: historyText(error)) }
                throw error
            }
            withExtendedLifetime(lock) {}
        }
    }

    /// Asks the daemon to run the job; with --wait follows it to its end.
    func runThroughDaemon(_ conn: ControlConnection) async throws {
        defer { conn.close() }
        guard await conn.send(ControlMessage(op: "run", job: job, wait: wait)) else {
            throw CairnError(.io, "lost the connection to cairn serve")
        }
        guard let reply = try await conn.receive() else { throw CairnError(.io, "cairn serve closed the connection without answering") }
        switch reply.type {
        case "accepted":
            print("cairn serve started run \(reply.run ?? 0) of \(job)" + (wait ? "" : " (follow it with `cairn status`, or use --wait)"))
        case "queued":
            print("\(job) is running; cairn serve queued run \(reply.run ?? 0) to start when it ends")
        default:
            throw CairnError(ErrorCode(rawValue: reply.code ?? "") ?? .busy, reply.error ?? "cairn serve refused the run")
        }
        guard wait else { return }
        let tty = isatty(2) == 1
        var progressShown = false
        while let m = try await conn.receive() {
            switch m.type {
            case "started":
                if (m.attempt ?? 1) > 1 { FileHandle.standardError.write(Data("attempt \(m.attempt!) of \(job) started\n".utf8)) }
            case "progress":
                if tty {
                    FileHandle.standardError.write(Data("\r  \(m.line ?? "")   ".utf8))
                    progressShown = true
                }
            case "retry":
                if progressShown { FileHandle.standardError.write(Data("\n".utf8)); progressShown = false }
                FileHandle.standardError.write(Data("run failed; attempt \(m.attempt ?? 0) at \(m.at.map(utc) ?? "?") UTC\n".utf8))
            case "finished":
                if progressShown { FileHandle.standardError.write(Data("\n".utf8)) }
                if m.result == "ok" {
                    print(m.summary ?? "\(job): ok")
                    return
                }
                throw CairnError(ErrorCode(rawValue: m.code ?? "") ?? .internal, "run \(m.run ?? 0) of \(job) \(m.result ?? "failed"): \(m.error ?? "no error text")")
            default:
                continue
            }
        }
        throw CairnError(.io, "lost the connection to cairn serve before run of \(job) ended (it goes on in the daemon; see `cairn history \(job)`)")
    }

    /// Runs the job in this process, with a progress line on a TTY.
    func runJob(_ job: JobConfig, config: CairnConfig) async throws -> (Int64?, String?) {
        let reporter = ProgressReporter(job: job.name)
        defer { reporter.stop() }
        let outcome = try await withSignalCancellation {
            try await JobRunner(config: config).run(job) { reporter.start($0) }
        }
        reporter.stop()
        print(outcome.summary)
        return (outcome.bytes, outcome.backupID)
    }
}

struct BackupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backups", abstract: "List backups.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List complete backups (those with a manifest).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Backup job (default: every backup job).") var job: String?
        @Option(help: "Read this storage URL instead of the config (with --prefix).") var storage: String?
        @Option(help: "Key prefix of the backups in --storage.") var prefix: String = ""
        @Flag(help: "JSON output (the manifests).") var json = false

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                var all: [BackupManifest] = []
                for (store, prefix) in try locations(options: options, job: job, storage: storage, prefix: prefix) {
                    all += try await BackupCatalog(store: store, prefix: prefix).list()
                }
                if json {
                    let e = JSONEncoder()
                    e.outputFormatting = [.prettyPrinted, .sortedKeys]
                    e.dateEncodingStrategy = .iso8601
                    print(String(decoding: try e.encode(all), as: UTF8.self))
                    return
                }
                print("ID                          JOB                  STARTED (UTC)         DUMPED     STORED   RATIO  DURATION")
                let f = ISO8601DateFormatter()
                for m in all {
                    let started = String(f.string(from: m.startedAt).prefix(19))
                    print("\(m.id.padding(toLength: 27, withPad: " ", startingAt: 0)) \(m.job.padding(toLength: 20, withPad: " ", startingAt: 0)) \(started)  \(ByteFormat.human(m.dump.plaintextSize).leftPad(9)) \(ByteFormat.human(m.dump.ciphertextSize).leftPad(9))  \(String(format: "%5.2f", m.compressionRatio))  \(String(format: "%7.1fs", m.duration))")
                }
                print("\(all.count) backup(s)")
            }
        }
    }
}

/// Where backups live: a storage URL + prefix given on the command line
/// (disaster recovery on a host without config), or the config's backup jobs.
func locations(options: ConfigOptions, job: String?, storage: String?, prefix: String) throws -> [(any ObjectStore, String)] {
    if let storage {
        return [(try StorageLocation.open(storage), prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/")))]
    }
    let config = try options.load()
    let jobs = try job.map { [try options.job($0, in: config)] } ?? config.sortedJobs.filter { $0.kind == .backup }
    return try jobs.map { j in
        guard let spec = j.backup else { throw CairnError(.usage, "job \(j.name) is not a backup job") }
        return (try Resources.store(try Resources.storage(named: j.storage, in: config)), spec.prefix)
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into a database, or to a plain .dump file.",
        discussion: """
        BACKUP is a backup id (or a unique prefix of one) or `latest`.
        Examples:
          cairn restore latest --job marketplace-db --to postgres:///marketplace_restored --create
          cairn restore 20261127T023000Z-1a2b3c4d --to-file /tmp/marketplace.dump
          cairn restore latest --storage s3://bucket/cairn --prefix marketplace-db --key-file 2026-11=/root/2026-11.key --to-file x.dump
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Backup id, id prefix, or `latest`.") var backup: String
    @Option(help: "Backup job whose backups to search (default: every backup job).") var job: String?
    @Option(help: "Target database (libpq URL or keywords; password from PGPASSFILE/PGPASSWORD).") var to: String?
    @Option(name: .customLong("to-file"), help: "Write the custom-format dump here instead (for pg_restore by hand).") var toFile: String?
    @Flag(help: "Create the target database first.") var create = false
    @Option(help: "Parallel pg_restore jobs (downloads to a temporary file first).") var jobs: Int = 1
    @Option(help: "Storage URL to read instead of the config (disaster recovery).") var storage: String?
    @Option(help: "Key prefix of the backups in --storage.") var prefix: String = ""
    @Option(name: .customLong("key-file"), help: "Key file (ID=FILE or FILE) when not using the config; repeatable.") var keyFiles: [String] = []

    func validate() throws {
        if (to == nil) == (toFile == nil) { throw ValidationError("give exactly one of --to DATABASE or --to-file PATH") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if create && to == nil { throw ValidationError("--create needs --to") }
        if storage != nil && keyFiles.isEmpty { throw ValidationError("--storage needs --key-file") }
    }

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let keyring = storage != nil ? try Resources.keyring(files: keyFiles)
                : try Resources.keyring(try options.load().keys, requireActive: false)
            var found: [(BackupManifest, any ObjectStore)] = []
            for (store, prefix) in try locations(options: options, job: job, storage: storage, prefix: prefix) {
                if let m = try? await BackupCatalog(store: store, prefix: prefix).find(backup) { found.append((m, store)) }
            }
            guard !found.isEmpty else { throw CairnError(.notFound, "no backup '\(backup)' found") }
            let (manifest, store) = backup == "latest" ? found.max { $0.0.startedAt < $1.0.startedAt }! : found[0]
            if backup != "latest" && found.count > 1 {
                throw CairnError(.usage, "backup '\(backup)' exists in several jobs; pass --job")
            }
            let target: RestoreJob.Target = toFile.map { .file($0) } ?? .database(to!, create: create, jobs: jobs)
            print("restoring backup \(manifest.id) of \(manifest.database) (job \(manifest.job), \(ByteFormat.human(manifest.dump.plaintextSize)))")
            let restore = RestoreJob(manifest: manifest, store: store, keyring: keyring)
            let r = try await withSignalCancellation { try await restore.run(to: target) }
            if let path = toFile {
                print("wrote \(ByteFormat.human(r.bytes)) to \(path); restore with: pg_restore -d DATABASE \(path)")
                return
            }
            let tables = r.rowCounts?.count ?? 0
            if r.mismatches.isEmpty {
                print("restored \(ByteFormat.human(r.bytes)); row counts of all \(manifest.rowCounts.count) tables match the manifest (\(tables) tables restored)")
            } else {
                for (t, m) in r.mismatches.sorted(by: { $0.key < $1.key }) {
                    print("  mismatch \(t): manifest \(m.expected), restored \(m.actual.map(String.init) ?? "missing")")
                }
                throw CairnError(.integrity, "restore finished but \(r.mismatches.count) table(s) differ from the manifest's row counts")
            }
        }
    }
}

