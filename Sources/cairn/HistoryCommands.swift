import ArgumentParser
import Config
import Core
import Cron
import Foundation
import Jobs
import Scheduler
import State

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "A job's recent runs, newest first, with errors.")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Job name.") var job: String
    @Option(help: "How many runs.") var limit: Int = 20
    @Flag(help: "JSON output.") var json = false

    func run() async throws {
        try await reportingErrors {
            let config = try options.load()
            _ = try options.job(job, in: config)
            let runs = try StateStore(stateDir: config.stateDir).history(job: job, limit: limit)
            if json { print(try jsonString(runs)); return }
            print("STARTED (UTC)         TRIGGER   TRY  RESULT     DURATION  BYTES       BACKUP                    ERROR (or a probe's latency)")
            for r in runs {
                let dur = r.duration.map { String(format: "%7.1fs", $0) } ?? "      -"
                let bytes = r.bytes.map { ByteFormat.human($0) } ?? "-"
                print("\(utc(r.startedAt))  \(r.trigger.padding(toLength: 8, withPad: " ", startingAt: 0))  \(String(r.attempt).padding(toLength: 3, withPad: " ", startingAt: 0))  \(r.result.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  \(dur)  \(bytes.padding(toLength: 10, withPad: " ", startingAt: 0))  \(Self.pad(r.backupID ?? "-", 24))  \(r.error ?? r.latency.map { String(format: "latency %.0f ms", $0 * 1000) } ?? "")")
            }
            if runs.isEmpty { print("no runs of \(job) recorded in \(config.stateDir)") }
        }
    }

    /// Pads to `n` characters without cutting a longer text.
    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s.padding(toLength: n, withPad: " ", startingAt: 0) }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per job: last result, when, duration, last success, newest backup's age, next run.",
        discussion: """
        Exit status (like `systemctl is-failed`): 0 when no job's last run failed; 1 when at least one \
        job's last run failed (or timed out), so `cairn status` fits a monitoring check as it is. \
        --json carries the same figures as the metrics file (docs/OPERATIONS.md).
        """)
    @OptionGroup var options: ConfigOptions
    @Flag(help: "JSON output.") var json = false

    struct JobStatus: Codable {
        var job: String
        var kind: String
        var schedule: String?
        var lastRun: RunRecord?
        var nextRun: Date?
        /// From the running daemon: running, waiting, retrying, idle; nil without a daemon.
        var state: String?
        var progress: String?
        /// The figures the metrics file carries (last success, newest backup age, verification, probe latency).
        var figures: JobFigures
    }

    func run() async throws {
        var anyFailed = false
        try await reportingErrors {
            let config = try options.load()
            let state = try await runBlocking { try StateStore(stateDir: config.stateDir) }
            // SQLite reads on a blocking-pool thread, never on the cooperative pool.
            let (latest, collected) = try await runBlocking { (try state.latestRuns(), try JobFigures.collect(config, state: state)) }
            let figures = Dictionary(uniqueKeysWithValues: collected.map { ($0.job, $0) })
            // The running daemon knows what runs now and the exact next start (with jitter).
            var live: [String: ControlMessage.JobStatus] = [:]
            let socket = config.daemon.socketPath(stateDir: config.stateDir)
            if let conn = try? ControlClient.connectIfRunning(path: socket) {
                defer { conn.close() }
                if await conn.send(ControlMessage(op: "status")), let reply = try? await conn.receive() {
                    live = Dictionary((reply.jobs ?? []).map { ($0.job, $0) }, uniquingKeysWith: { a, _ in a })
                }
            }
            let statuses = config.sortedJobs.map { j -> JobStatus in
                let next = j.enabled ? j.schedule.flatMap { try? CronExpression($0) }?.next(after: Date(), in: j.timeZone) : nil
                return JobStatus(job: j.name, kind: j.kind.rawValue, schedule: j.schedule, lastRun: latest[j.name],
                                 nextRun: live[j.name]?.next ?? next, state: live[j.name]?.state, progress: live[j.name]?.progress,
                                 figures: figures[j.name] ?? JobFigures(job: j.name, kind: j.kind.rawValue))
            }
            anyFailed = statuses.contains { $0.lastRun?.result == .failed }
            if json { print(try jsonString(statuses)); return }
            print("JOB                    KIND       NOW       LAST RESULT  LAST RUN (UTC)        DURATION  LAST SUCCESS (UTC)    BACKUP AGE  NEXT RUN (UTC)")
            for s in statuses {
                let last = s.lastRun
                let success = s.figures.lastSuccessAt.map(utc) ?? "never".padding(toLength: 19, withPad: " ", startingAt: 0)
                let age = (s.figures.newestBackupAgeSeconds.map(Self.age) ?? "-").padding(toLength: 10, withPad: " ", startingAt: 0)
                print("\(s.job.padding(toLength: 22, withPad: " ", startingAt: 0)) \(s.kind.padding(toLength: 10, withPad: " ", startingAt: 0)) \((s.state ?? "-").padding(toLength: 9, withPad: " ", startingAt: 0)) \((last?.result.rawValue ?? "never").padding(toLength: 12, withPad: " ", startingAt: 0)) \(last.map { utc($0.startedAt) } ?? "-".padding(toLength: 19, withPad: " ", startingAt: 0))  \(last?.duration.map { String(format: "%7.1fs", $0) } ?? "       -")  \(success)  \(age)  \(s.nextRun.map(utc) ?? "-")")
                if let p = s.progress { print("    \(p)") }
            }
            if live.isEmpty { print("(no cairn serve answers on \(socket))") }
        }
        if anyFailed { throw ExitCode(1) }
    }

    /// "3h 20m", "2d 4h", "45s".
    static func age(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86400 { return "\(s / 3600)h \(s % 3600 / 60)m" }
        return "\(s / 86400)d \(s % 86400 / 3600)h"
    }
}

func utc(_ d: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return String(f.string(from: d).prefix(19))
}

func jsonString<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    e.dateEncodingStrategy = .iso8601
    return String(decoding: try e.encode(value), as: UTF8.self)
}
