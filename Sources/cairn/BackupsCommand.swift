import ArgumentParser
import Config
import Core
import Crypto
import Foundation
import Jobs
import Logging
import ObjectStore
import Postgres
import Scheduler
import State

struct BackupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backups", abstract: "List and inspect backups.",
                                                    subcommands: [List.self, Show.self, PruneCommand.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List complete backups (those with a manifest), grouped by job.",
            discussion: """
            With --storage URL and no --prefix (disaster recovery, no config needed), every prefix of the
            storage that holds manifests is found and listed as its job's backups. Nothing found exits 8.
            Examples:
              cairn backups list
              cairn backups list --storage 's3://bucket/cairn?endpoint=https://ACCOUNT.r2.cloudflarestorage.com'
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Backup job (default: every backup job; with --storage, the job found there).") var job: String?
        @Option(help: "Read this storage URL instead of the config.") var storage: String?
        @Option(help: "Key prefix of the backups in --storage (default: find every job's prefix).") var prefix: String?
        @Flag(help: "JSON output: an array of the manifests (each names its job, with its \"authentication\" and \"verified\": verified, failed or never), by job then time.") var json = false

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                var groups: [(BackupLocation, [CatalogEntry])] = []
                let places = try await backupLocations(options: options, job: job, storage: storage, prefix: prefix)
                let keyring = listingKeyring(options: options, storage: storage)
                for l in places {
                    let scan = try await BackupCatalog(store: l.store, prefix: l.prefix, keyring: keyring).scan()
                    warnAbout(scan)
                    groups.append((l, scan.entries))
                }
                let total = groups.reduce(0) { $0 + $1.1.count }
                guard total > 0 else {
                    throw CairnError(.notFound, "no backups found in \(places.map(\.whereText).joined(separator: ", "))")
                }
                if json {
                    let e = JSONEncoder()
                    e.outputFormatting = [.prettyPrinted, .sortedKeys]
                    e.dateEncodingStrategy = .iso8601
                    print(String(decoding: try e.encode(groups.flatMap(\.1).map(ListedBackup.init)), as: UTF8.self))
                    return
                }
                let f = ISO8601DateFormatter()
                for (i, (l, all)) in groups.enumerated() {
                    if i > 0 { print("") }
                    print("job \(l.job ?? all.last?.manifest.job ?? "?") (\(l.whereText))")
                    if all.isEmpty { print("  no backups yet"); continue }
                    print("  ID                          STARTED (UTC)         DUMPED     STORED   RATIO  DURATION  AUTH             VERIFIED")
                    for entry in all {
                        let m = entry.manifest
                        let started = String(f.string(from: m.startedAt).prefix(19))
                        print("  \(m.id.padding(toLength: 27, withPad: " ", startingAt: 0)) \(started)  \(ByteFormat.human(m.dump.plaintextSize).leftPad(9)) \(ByteFormat.human(m.dump.ciphertextSize).leftPad(9))  \(String(format: "%5.2f", m.compressionRatio))  \(String(format: "%7.1fs", m.duration))  \(entry.authentication.label.padding(toLength: 15, withPad: " ", startingAt: 0))  \(entry.verificationState)")
                    }
                }
                print("\n\(total) backup(s) of \(Set(groups.flatMap { $0.1.map(\.manifest.job) }).count) job(s) in \(groups.filter { !$0.1.isEmpty }.count) location(s)")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Print one backup's manifest: times, sizes, key, versions, row counts.",
            discussion: """
            BACKUP is a backup id (or a unique prefix of one) or `latest` (with --job when there are several jobs).
            Examples:
              cairn backups show 20261127T023000Z-1a2b3c4d
              cairn backups show latest --storage s3://bucket/cairn --prefix marketplace-db --json
            """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Backup id, id prefix, or `latest`.") var backup: String
        @Option(help: "Backup job whose backups to search (default: every backup job).") var job: String?
        @Option(help: "Read this storage URL instead of the config.") var storage: String?
        @Option(help: "Key prefix of the backups in --storage (default: find every job's prefix).") var prefix: String?
        @Flag(help: "Print the manifest JSON as stored.") var json = false
        @Flag(help: "With --json: print the backup's verification record (<id>.verify.json) as stored instead; exits 8 when it has none.") var verification = false

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                let places = try await backupLocations(options: options, job: job, storage: storage, prefix: prefix)
                let keyring = listingKeyring(options: options, storage: storage)
                var found: [(BackupLocation, CatalogEntry)] = []
                for l in places {
                    let scan = try await BackupCatalog(store: l.store, prefix: l.prefix, keyring: keyring).scan()
                    warnAbout(scan.problems)
                    if backup == "latest" {
                        if let e = scan.entries.last { found.append((l, e)) }
                    } else {
                        found += scan.entries.filter { $0.manifest.id == backup || $0.manifest.id.hasPrefix(backup) }.map { (l, $0) }
                    }
                }
                guard !found.isEmpty else {
                    throw CairnError(.notFound, "no backup '\(backup)' in \(places.map(\.whereText).joined(separator: ", "))")
                }
                if backup == "latest" && Set(found.map(\.1.manifest.job)).count == 1 {
                    // One job under several prefixes (a copied bucket, a moved prefix): its newest backup.
                    found = [found.max { ($0.1.manifest.startedAt, $0.1.manifest.id) < ($1.1.manifest.startedAt, $1.1.manifest.id) }!]
                }
                guard found.count == 1 else {
                    let what = found.map { "\($0.1.manifest.id) (job \($0.1.manifest.job))" }.joined(separator: ", ")
                    throw CairnError(.usage, backup == "latest" ? "several jobs have backups: \(what); pass --job"
                                                                : "backup id '\(backup)' is ambiguous: \(what)")
                }
                let (l, entry) = found[0]
                warnAbout([entry])
                if json && verification {
                    let key = BackupLayout.verifyKey(prefix: l.prefix, id: entry.manifest.id)
                    guard entry.verification != nil else { throw CairnError(.notFound, "backup \(entry.manifest.id) has never been verified (no \(key))") }
                    FileHandle.standardOutput.write(try await l.store.getData(key: key, limit: 16 << 20))
                } else if json {
                    // The object as stored (with its MAC), byte for byte.
                    FileHandle.standardOutput.write(try await l.store.getData(key: entry.key, limit: 16 << 20))
                } else {
                    print(ManifestText(manifest: entry.manifest, location: l.whereText).lines.joined(separator: "\n"))
                    print("  " + "manifest".padding(toLength: 13, withPad: " ", startingAt: 0) + "\(entry.key), \(entry.authentication.label)")
                    if let record = entry.verification {
                        print("  " + "verified".padding(toLength: 13, withPad: " ", startingAt: 0) + "\(record.state) (\(BackupLayout.verifyKey(prefix: l.prefix, id: entry.manifest.id)))")
                        print(VerifyRecordText(record: record).lines.map { "  " + $0 }.joined(separator: "\n"))
                    } else {
                        print("  " + "verified".padding(toLength: 13, withPad: " ", startingAt: 0) + "never")
                    }
                }
            }
        }
    }
}

/// Where one job's backups are listed from.
struct BackupLocation {
    var store: any ObjectStore
    var prefix: String
    /// The job, when known before reading the manifests (config, discovery).
    var job: String?

    /// "s3://bucket/root/PREFIX" for messages and headings.
    var whereText: String { BackupLocation.describe(store: store, prefix: prefix) }

    static func describe(store: any ObjectStore, prefix: String) -> String {
        var base = store.displayName
        while base.hasSuffix("/") && !base.hasSuffix("://") { base.removeLast() }
        return prefix.isEmpty ? base : base + "/" + prefix

    }
}

/// Where backups live: a storage URL given on the command line (disaster
/// recovery on a host without config), with `--prefix` or else every prefix
/// holding manifests (`CatalogDiscovery`), or the config's backup jobs.
func backupLocations(options: ConfigOptions, job: String?, storage: String?, prefix: String?) async throws -> [BackupLocation] {
    if let storage {
        let store = try StorageLocation.open(storage)
        if let prefix {
            return [BackupLocation(store: store, prefix: prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/")), job: job)]
        }
        let groups = try await CatalogDiscovery.discover(store: store)
        guard !groups.isEmpty else {
            throw CairnError(.notFound, "no backups found in \(BackupLocation.describe(store: store, prefix: "")) (no *.manifest.json under any prefix)")
        }
        let chosen = job.map { j in groups.filter { $0.job == j || $0.prefix == j } } ?? groups
        guard !chosen.isEmpty else {
            let known = groups.map { "\($0.job) (prefix \($0.prefix.isEmpty ? "/" : $0.prefix))" }.joined(separator: ", ")
            throw CairnError(.notFound, "no backups of job '\(job!)' in \(BackupLocation.describe(store: store, prefix: "")) (found: \(known))")
        }
        return chosen.map { BackupLocation(store: store, prefix: $0.prefix, job: $0.job) }
    }
    let config = try options.load()
    let jobs = try job.map { [try options.job($0, in: config)] } ?? config.sortedJobs.filter { $0.kind == .backup }
    guard !jobs.isEmpty else { throw CairnError(.notFound, "no backup jobs in \(config.jobsDir)") }
    return try jobs.map { j in
        guard let spec = j.backup else { throw CairnError(.usage, "job \(j.name) is not a backup job") }
        return BackupLocation(store: try Resources.store(try Resources.storage(named: j.storage, in: config)), prefix: spec.prefix, job: j.name)
    }
}

/// The same as (store, prefix) pairs.
func locations(options: ConfigOptions, job: String?, storage: String?, prefix: String?) async throws -> [(any ObjectStore, String)] {
    try await backupLocations(options: options, job: job, storage: storage, prefix: prefix).map { ($0.store, $0.prefix) }
}

/// The keys to check manifest MACs with: --key-file, else the config's keys
/// (when reading through the config). Nil, with a warning, when the config's
/// keys cannot be read: the listing still works, its MACs are "not checked".
func listingKeyring(options: ConfigOptions, storage: String?) -> Keyring? {
    do {
        if !options.keyFiles.isEmpty { return try Resources.keyring(files: options.keyFiles) }
        guard storage == nil else { return nil }
        return try Resources.keyring(try options.load().keys, requireActive: false)
    } catch let e as CairnError {
        FileHandle.standardError.write(Data("cairn: warning: manifests not authenticated: \(e.description)\n".utf8))
        return nil
    } catch {
        FileHandle.standardError.write(Data("cairn: warning: manifests not authenticated: \(error)\n".utf8))
        return nil
    }
}
