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

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into a database, or to a plain .dump file.",
        discussion: """
        BACKUP is a backup id (or a unique prefix of one) or `latest`.

        Owners and privileges are restored as they were; a database that is not empty is refused unless --clean. \
        The backup's roles (its globals, with include_globals) are applied first when the target server lacks roles \
        the backup names: existing roles are left alone, passwords only with --globals-with-passwords.

        Examples:
          cairn restore latest --job marketplace-db --to postgres:///marketplace_restored --create
          cairn restore latest --job marketplace-db --to postgres:///marketplace --clean
          cairn restore 20261127T023000Z-1a2b3c4d --to-file /tmp/marketplace.dump
          cairn restore latest --storage s3://bucket/cairn --prefix marketplace-db --key-file 2026-11=/root/2026-11.key --to-file x.dump
          cairn restore latest --storage s3://bucket/cairn --job marketplace-db --key-file /root/2026-11.key --to postgres:///m --create
        With --storage and no --prefix, every prefix of the storage holding backups is found (see `cairn backups list`).
        """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Backup id, id prefix, or `latest`.") var backup: String
    @Option(help: "Backup job whose backups to search (default: every backup job).") var job: String?
    @Option(help: "Target database (libpq URL or keywords; password from PGPASSFILE/PGPASSWORD).") var to: String?
    @Option(name: .customLong("to-file"), help: "Write the custom-format dump here instead (for pg_restore by hand).") var toFile: String?
    @Flag(help: "Create the target database first.") var create = false
    @Flag(help: "Drop the backup's objects in the target before restoring them (pg_restore --clean --if-exists); needed for a database that is not empty.") var clean = false
    @Flag(name: .customLong("no-owner"), help: "Objects belong to the restoring role (pg_restore --no-owner).") var noOwner = false
    @Flag(name: .customLong("no-privileges"), help: "Restore no GRANT/REVOKE (pg_restore --no-privileges).") var noPrivileges = false
    @Flag(inversion: .prefixedNo, help: "Apply the backup's roles and memberships before pg_restore (default: when the target lacks roles the backup names).") var globals: Bool?
    @Flag(name: .customLong("globals-with-passwords"), help: "Restore the roles' passwords too (default: roles are created without).") var globalsWithPasswords = false
    @Flag(help: "Replace an existing --to-file.") var force = false
    @Option(help: "Parallel pg_restore jobs (downloads to a 0600 file in TMPDIR first, refused unless the dump fits there; removed afterwards).") var jobs: Int = 1
    @Option(help: "Storage URL to read instead of the config (disaster recovery).") var storage: String?
    @Option(help: "Key prefix of the backups in --storage (default: find every job's prefix; --job picks one).") var prefix: String?
    @Flag(name: .customLong("trust-unauthenticated"), help: "Restore a backup whose manifest has no valid MAC (edited, written by Cairn before manifests had one, or its key is missing).") var trustUnauthenticated = false

    func validate() throws {
        if (to == nil) == (toFile == nil) { throw ValidationError("give exactly one of --to DATABASE or --to-file PATH") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if create && to == nil { throw ValidationError("--create needs --to") }
        if storage != nil && options.keyFiles.isEmpty { throw ValidationError("--storage needs --key-file") }
        if toFile != nil && (clean || noOwner || noPrivileges || globals != nil || globalsWithPasswords) {
            throw ValidationError("--clean, --no-owner, --no-privileges and --globals need --to (pg_restore takes them for a file)")
        }
        if force && toFile == nil { throw ValidationError("--force needs --to-file") }
        if globals == false && globalsWithPasswords { throw ValidationError("--globals-with-passwords contradicts --no-globals") }
    }

    func run() async throws {
        try global.bootstrap()
        try await reportingErrors {
            let keyring = try options.readingKeyring()
            var found: [(CatalogEntry, any ObjectStore)] = []
            var skipped: [CatalogProblem] = []
            for (store, prefix) in try await locations(options: options, job: job, storage: storage, prefix: prefix) {
                let catalog = BackupCatalog(store: store, prefix: prefix, keyring: keyring)
                let scan = try await catalog.scan()
                warnAbout(scan.problems)
                skipped += scan.problems
                // Only "not in this job" moves on: a storage, credential or manifest error is the answer.
                do {
                    found.append((try catalog.find(backup, in: scan), store))
                } catch let e as CairnError where e.code == .notFound {
                    continue
                }
            }
            guard !found.isEmpty else { throw CairnError(.notFound, "no backup '\(backup)' found") }
            if Set(found.map(\.0.manifest.job)).count > 1 {
                let jobs = found.map { "\($0.0.manifest.job) (\($0.0.manifest.id))" }.joined(separator: ", ")
                throw CairnError(.usage, "backup '\(backup)' found in several jobs: \(jobs); pass --job")
            }
            // One job (possibly under several prefixes: a copied bucket, a moved prefix): its newest match.
            let (entry, store) = found.max { ($0.0.manifest.startedAt, $0.0.manifest.id) < ($1.0.manifest.startedAt, $1.0.manifest.id) }!
            try entry.requireTrusted(trustUnauthenticated: trustUnauthenticated)
            warnAbout([entry], latestOf: backup == "latest" ? skipped : [], trusted: trustUnauthenticated)
            let manifest = entry.manifest
            let target: RestoreJob.Target = toFile.map { .file($0) } ?? .database(to!, create: create, jobs: jobs)
            print("restoring backup \(manifest.id) of \(manifest.database) (job \(manifest.job), \(ByteFormat.human(manifest.dump.plaintextSize)))")
            let progress = RestoreProgress(total: manifest.dump.ciphertextSize)
            var restoreJob = RestoreJob(manifest: manifest, store: store, keyring: keyring)
            restoreJob.progress = { progress.read($0) }
            restoreJob.options = RestoreJob.Options(
                noOwner: noOwner, noPrivileges: noPrivileges, clean: clean,
                globals: globals.map { $0 ? .apply : .skip } ?? .auto, globalsWithPasswords: globalsWithPasswords,
                overwriteFile: force, note: { print($0) })
            let restore = restoreJob
            let reporter = ProgressReporter(job: "restore \(manifest.id)")
            reporter.start(progress)
            defer { reporter.stop() }
            let started = ContinuousClock.now
            let r = try await withSignalCancellation { try await restore.run(to: target) }
            reporter.stop()
            let secs = ProgressLine.seconds(since: started)
            let timing = "in \(String(format: "%.1f", secs)) s (\(ProgressLine.rate(bytes: r.bytes, seconds: secs)))"
            if let path = toFile {
                print("wrote \(ByteFormat.human(r.bytes)) to \(path) \(timing); restore with: pg_restore -d DATABASE \(path)")
                return
            }
            let tables = r.rowCounts?.count ?? 0
            if r.mismatches.isEmpty {
                print("restored \(ByteFormat.human(r.bytes)) \(timing); row counts of all \(manifest.rowCounts.count) tables match the manifest (\(tables) tables restored)")
            } else {
                for (t, m) in r.mismatches.sorted(by: { $0.key < $1.key }) {
                    print("  mismatch \(t): manifest \(m.expected), restored \(m.actual.map(String.init) ?? "missing")")
                }
                throw CairnError(.integrity, "restore finished but \(r.mismatches.count) table(s) differ from the manifest's row counts")
            }
        }
    }
}

