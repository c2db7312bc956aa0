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
    static let configuration = CommandConfiguration(commandName: "backups", abstract: "List backups.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List complete backups (those with a manifest).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Backup job (default: every backup job).") var job: String?
        @Option(help: "Read this storage URL instead of the config (with --prefix).") var storage: String?
        @Option(help: "Key prefix of the backups in --storage.") var prefix: String = ""
        @Option(name: .customLong("key-file"), help: "Key file (ID=FILE or FILE) to check manifest MACs with, instead of the config's keys; repeatable.") var keyFiles: [String] = []
        @Flag(help: "JSON output (the manifests, each with its \"authentication\").") var json = false

        func run() async throws {
            try global.bootstrap()
            try await reportingErrors {
                let places = try locations(options: options, job: job, storage: storage, prefix: prefix)
                let keyring = try listingKeyring(keyFiles: keyFiles, options: options, storage: storage)
                var all: [CatalogEntry] = []
                for (store, prefix) in places {
                    let scan = try await BackupCatalog(store: store, prefix: prefix, keyring: keyring).scan()
                    warnAbout(scan)
                    all += scan.entries
                }
                if json {
                    let e = JSONEncoder()
                    e.outputFormatting = [.prettyPrinted, .sortedKeys]
                    e.dateEncodingStrategy = .iso8601
                    print(String(decoding: try e.encode(all.map(ListedBackup.init)), as: UTF8.self))
                    return
                }
                print("ID                          JOB                  STARTED (UTC)         DUMPED     STORED   RATIO  DURATION  AUTH")
                let f = ISO8601DateFormatter()
                for entry in all {
                    let m = entry.manifest
                    let started = String(f.string(from: m.startedAt).prefix(19))
                    print("\(m.id.padding(toLength: 27, withPad: " ", startingAt: 0)) \(m.job.padding(toLength: 20, withPad: " ", startingAt: 0)) \(started)  \(ByteFormat.human(m.dump.plaintextSize).leftPad(9)) \(ByteFormat.human(m.dump.ciphertextSize).leftPad(9))  \(String(format: "%5.2f", m.compressionRatio))  \(String(format: "%7.1fs", m.duration))  \(entry.authentication.label)")
                }
                print("\(all.count) backup(s)")
            }
        }
    }
}

/// The keys to check manifest MACs with: --key-file, else the config's keys
/// (when reading through the config). Nil, with a warning, when the config's
/// keys cannot be read: the listing still works, its MACs are "not checked".
func listingKeyring(keyFiles: [String], options: ConfigOptions, storage: String?) throws -> Keyring? {
    if !keyFiles.isEmpty { return try Resources.keyring(files: keyFiles) }
    guard storage == nil else { return nil }
    do {
        return try Resources.keyring(try options.load().keys, requireActive: false)
    } catch let e as CairnError {
        FileHandle.standardError.write(Data("cairn: warning: manifests not authenticated: \(e.description)\n".utf8))
        return nil
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

