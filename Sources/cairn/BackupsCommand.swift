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

