import ArgumentParser
import Config
import Core
import Foundation
import Jobs
import ObjectStore
import Cron
import Crypto

/// `--config`, shared by every command that reads cairn.toml.
struct ConfigOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "Path to cairn.toml (default: $CAIRN_CONFIG or /etc/cairn/cairn.toml).")
    var config: String?

    @Option(name: .customLong("key-file"),
            help: "Key file as ID=FILE (or FILE, whose name without extension is the id); repeatable. Replaces the [keys] of cairn.toml (for a run, the config's active id if given, else the first file).")
    var keyFiles: [String] = []

    var path: String { config ?? ConfigLoader.defaultPath() }

    /// cairn.toml, with `[keys]` replaced by the `--key-file`s when any are given.
    func load() throws -> CairnConfig {
        var config = try ConfigLoader.load(path: path)
        if !keyFiles.isEmpty { config.keys = try Resources.keys(files: keyFiles, active: config.keys.active) }
        return config
    }

    /// The keys to read backups with: the `--key-file`s (no config needed),
    /// else the config's keyring.
    func readingKeyring() throws -> Keyring {
        if !keyFiles.isEmpty { return try Resources.keyring(files: keyFiles) }
        return try Resources.keyring(try load().keys, requireActive: false)
    }

    func job(_ name: String, in config: CairnConfig) throws -> JobConfig {
        guard let j = config.jobs[name] else {
            let known = config.sortedJobs.map(\.name).joined(separator: ", ")
            throw CairnError(.notFound, "no job '\(name)' in \(config.jobsDir)" + (known.isEmpty ? "" : " (jobs: \(known))"))
        }
        return j
    }
}

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "key", abstract: "Manage encryption keys.",
                                                    subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new random 256-bit key (hex) to a file with mode 0600.",
            discussion: "Add it to [keys.files] in cairn.toml and make it active for new backups. Keep a copy somewhere other than the backup storage: without the key, backups cannot be read.")
        @Option(help: "Key file to create (refuses to overwrite).") var out: String

        func run() throws {
            do {
                let key = try SecureRandom.bytes(32)
                let fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw CairnError(.io, "cannot create \(out): \(errnoString())") }
                defer { close(fd) }
                guard fchmod(fd, 0o600) == 0 else { throw CairnError(.io, "cannot chmod \(out): \(errnoString())") }
                try writeAll(fd, Data((key.hexString + "\n").utf8), path: out)
                guard fsync(fd) == 0 else { throw CairnError(.io, "cannot sync \(out): \(errnoString())") }
                print("wrote a new 256-bit key to \(out) (mode 0600)")
            } catch let e as CairnError {
                FileHandle.standardError.write(Data("cairn: error: \(e.description)\n".utf8))
                throw ExitCode(e.code.exitStatus)
            }
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Validate configuration.",
                                                    subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report every error in cairn.toml and the job units, with file, line and what is expected.",
            discussion: """
            With a valid configuration, lists each job with what its kind needs (storage, keys, PostgreSQL, \
            a backup job). --preflight also checks those the way cairn serve does before it starts: each \
            storage opens (credentials readable), each key file loads with mode 0600, each backup_job exists.
            """)
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Also open every job's storage and load its keys, as cairn serve does before it starts.") var preflight = false

        func run() throws {
            let issues = ConfigLoader(scheduleValidator: CronSupport.validator).check(path: options.path)
            for i in issues { print(i.description) }
            guard issues.isEmpty else {
                FileHandle.standardError.write(Data("cairn: \(issues.count) problem(s) in the configuration\n".utf8))
                throw ExitCode(ErrorCode.config.exitStatus)
            }
            let cfg = try? ConfigLoader.load(path: options.path)
            print("\(options.path): OK (\(cfg?.jobs.count ?? 0) job(s))")
            guard let cfg else { return }
            var firstProblem: CairnError?
            for job in cfg.sortedJobs {
                var line = "  \(job.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(job.kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) needs \(job.kind.needs)"
                if preflight {
                    do {
                        try JobPreflight.check(job, in: cfg)
                        line += ": ok"
                    } catch {
                        let e = CairnError.wrap(error, .config, "job \(job.name)")
                        line += ": \(e.message)"
                        firstProblem = firstProblem ?? CairnError(e.code, "job \(job.name): \(e.message)", cause: e.cause)
                    }
                }
                print(line)
            }
            AlertChannelsCheck.report(cfg, preflight: preflight, firstProblem: &firstProblem)
            if let firstProblem {
                FileHandle.standardError.write(Data("cairn: preflight: \(firstProblem.message)\n".utf8))
                throw ExitCode(firstProblem.code.exitStatus)
            }
        }
    }
}

/// `cairn config check` validates every job's `schedule` with the Cron parser.
enum CronSupport {
    static let validator: (@Sendable (String) -> String?)? = { text in
        do { _ = try CronExpression(text); return nil } catch let e as CronError { return e.message } catch { return "\(error)" }
    }
}
