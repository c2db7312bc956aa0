import Config
import Core
import Foundation
import Logging
import ObjectStore
import State

/// What a running job reports while it works, read by whoever shows progress
/// (the CLI's progress line, the daemon's log, `cairn run --wait`).
public protocol JobProgress: AnyObject, Sendable {
    /// One line for a human, such as "dumped 1.2 GiB (40 MiB/s), uploaded 300 MiB in 3 part(s)".
    var line: String { get }
    /// The same as key–value pairs for a log line.
    var fields: [String: String] { get }
    /// Done in 0…1 when there is a total to compare with (decides when a log line is due).
    var fraction: Double? { get }
}

extension JobProgress {
    public var fraction: Double? { nil }
}

/// How a job run ended, when it succeeded.
public struct JobOutcome: Sendable, Equatable, Codable {
    /// Bytes the job moved (dumped plaintext for a backup, uploaded for a migration).
    public var bytes: Int64?
    /// The backup id, for a backup job.
    public var backupID: String?
    /// One line for the operator.
    public var summary: String
    /// A probe's request latency, in seconds.
    public var latency: Double?
    public init(bytes: Int64? = nil, backupID: String? = nil, summary: String, latency: Double? = nil) {
        self.bytes = bytes; self.backupID = backupID; self.summary = summary; self.latency = latency
    }
}

/// Runs one job of any kind to its end in the calling task: the one
/// exhaustive switch over the kinds. Cancelling the task cancels the job,
/// which cleans up (child processes killed and reaped, multipart uploads
/// aborted) before `run` throws.
///
/// Only `RunExecutor` calls it: it holds the job's lock (`JobLock`, and the
/// cluster claim with `[cluster]`), so no other run of the job is in
/// progress anywhere, and it records the run and applies the timeout.
public struct JobRunner: Sendable {
    public let config: CairnConfig
    public let env: [String: String]
    /// The process's state database (the executor's), for kinds that record more than the run (verify).
    public let state: StateStore?

    public init(config: CairnConfig, env: [String: String] = ProcessInfo.processInfo.environment, state: StateStore? = nil) {
        self.config = config
        self.env = env
        self.state = state
    }

    /// Runs `job`; `started` receives the job's progress as soon as there is
    /// one, `report` a multi-line report for the operator (a migration's).
    public func run(_ job: JobConfig, started: @Sendable (any JobProgress) -> Void = { _ in },
                    report reportText: @Sendable (String) -> Void = { _ in }) async throws -> JobOutcome {
        switch job.spec {
        case .backup(let spec):
            let storage = try Resources.storage(named: job.storage, in: config)
            let store = try Resources.store(storage, env: env)
            let keyring = try Resources.keyring(config.keys, env: env, requireActive: true)
            let progress = BackupProgress()
            started(progress)
            await Self.cleanUpInterruptedRuns(store: store, prefix: spec.prefix, job: job.name)
            var backup = BackupJob(name: job.name, spec: spec, store: store, keyring: keyring, progress: progress)
            backup.objectLock = Resources.objectLock(storage)
            let manifest = try await backup.run()
            let summary = "backup \(manifest.id) of \(manifest.database): \(ByteFormat.human(manifest.dump.plaintextSize)) dumped, \(ByteFormat.human(manifest.dump.ciphertextSize)) stored (ratio \(String(format: "%.2f", manifest.compressionRatio))), \(manifest.dump.partCount) part(s), \(manifest.rowCounts.count) tables, \(String(format: "%.1f", manifest.duration)) s (\(ProgressLine.rate(bytes: manifest.dump.plaintextSize, seconds: manifest.duration)))"
            return JobOutcome(bytes: manifest.dump.plaintextSize, backupID: manifest.id, summary: summary)
        case .migrate(let spec):
            let storage = try Resources.storage(named: job.storage, in: config)
            let store = try Resources.store(storage, env: env)
            let migration = MigrateJob(name: job.name, spec: spec, store: store, stateDir: config.stateDir,
                                       objectLock: Resources.objectLock(storage))
            started(migration.progress)
            let report = try await migration.run()
            reportText(report.render())
            if let reason = report.stopReason {
                throw CairnError(report.stopCode ?? .io, "migration \(job.name) stopped: \(reason); \(report.summary)")
            }
            if !report.failed.isEmpty {
                let first = report.failed[0]
                throw CairnError(report.failureCode, "migration \(job.name): \(report.failed.count) file(s) failed (first: \(first.path): \(first.reason)); \(report.summary)")
            }
            return JobOutcome(bytes: report.uploadedBytes, summary: report.summary)
        case .probe(let spec):
            return try await ProbeJob(name: job.name, spec: spec).run()
        case .retention(let spec):
            return try await RetentionRun.run(job: job, spec: spec, config: config, env: env, started: started)
        case .verify(let spec):
            return try await VerifyRun.run(job: job, spec: spec, config: config, env: env, state: state, started: started)
        }
    }
}

/// Byte counts for humans: "512 B", "1.5 MiB".
public enum ByteFormat {
    public static func human(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }
}
