import Config
import Core
import Foundation
import Logging
import State

/// The Prometheus text file (`metrics_file` in cairn.toml) for
/// node_exporter's textfile collector: rewritten after every run, by the
/// daemon and by `cairn run`, atomically (a temporary file in the same
/// directory, fsynced, renamed), so the collector never reads half a file.
public enum MetricsFile {
    /// The exposition text (format 0.0.4) of `figures`.
    public static func render(_ figures: [JobFigures], now: Date = Date()) -> String {
        var out = ""
        func family(_ name: String, _ help: String, _ rows: [(JobFigures, Double?)]) {
            let present = rows.compactMap { f, v in v.map { (f, $0) } }
            guard !present.isEmpty else { return }
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for (f, v) in present { out += "\(name){job=\"\(escape(f.job))\",kind=\"\(f.kind)\"} \(number(v))\n" }
        }
        family("cairn_job_last_success_timestamp_seconds", "Unix time of the job's last successful run's end.",
               figures.map { ($0, $0.lastSuccessAt?.timeIntervalSince1970) })
        family("cairn_job_last_run_timestamp_seconds", "Unix time of the job's last run's start.",
               figures.map { ($0, $0.lastRunAt?.timeIntervalSince1970) })
        family("cairn_job_last_run_duration_seconds", "Duration of the job's last run.",
               figures.map { ($0, $0.lastDurationSeconds) })
        family("cairn_job_last_run_success", "1 when the job's last run succeeded, 0 when it failed or was cancelled.",
               figures.map { ($0, $0.lastResult.map { $0 == "ok" ? 1 : 0 }) })
        family("cairn_job_last_run_bytes", "Bytes the job's last run moved (dumped for a backup, uploaded for a migration).",
               figures.map { ($0, $0.lastBytes.map(Double.init)) })
        family("cairn_backup_newest_age_seconds", "Age of the job's newest successful backup.",
               figures.map { ($0, $0.newestBackupAgeSeconds) })
        family("cairn_backup_newest_verified_age_seconds", "Age of the newest backup that a restore verification proved.",
               figures.map { ($0, $0.newestVerifiedBackupAgeSeconds) })
        family("cairn_verify_last_restore_seconds", "How long the last verification's restore took (measured recovery time).",
               figures.map { ($0, $0.lastRestoreSeconds) })
        family("cairn_probe_latency_seconds", "Latency of the probe's last request.",
               figures.map { ($0, $0.probeLatencySeconds) })
        return out
    }

    /// Writes the file atomically (mode 0644: the collector runs as another user; it holds no secret).
    public static func write(_ text: String, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = dir + "/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CairnError(.io, "metrics file: cannot create \(tmp): \(errnoString())", cause: ErrnoError(errno)) }
        do {
            fchmod(fd, 0o644)
            try writeAll(fd, Data(text.utf8), path: tmp)
            guard fsync(fd) == 0 else { throw CairnError(.io, "metrics file: cannot sync \(tmp): \(errnoString())", cause: ErrnoError(errno)) }
            close(fd)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw CairnError(.io, "metrics file: cannot rename \(tmp) to \(path): \(errnoString(e))", cause: ErrnoError(e))
        }
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.3f", v)
    }
}

/// Rewrites the metrics file after every run (an observer of the one run path).
public final class MetricsObserver: RunObserver, @unchecked Sendable {
    let config: CairnConfig
    let state: StateStore
    let path: String
    private let lock = NSLock()

    public init(config: CairnConfig, state: StateStore, path: String) {
        self.config = config; self.state = state; self.path = path
    }

    public func runStarted(job: String, kind: String, request: RunRequest, runID: Int64?) async {}

    public func runEnded(_ report: RunReport) async {
        await rewrite()
    }

    /// Rewrites the file now (also at daemon start-up).
    public func rewrite() async {
        do {
            try await runBlocking { [self] in
                lock.lock()
                defer { lock.unlock() }
                let figures = try JobFigures.collect(config, state: state)
                try MetricsFile.write(MetricsFile.render(figures), to: path)
            }
        } catch {
            Logger.cairn("metrics").warning("cannot write the metrics file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
