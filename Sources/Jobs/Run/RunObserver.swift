import Core
import Foundation
import Logging

/// Told about every run, whichever way it was started (daemon, `cairn run`,
/// `cairn verify`, `cairn backups prune`, `cairn migrate`): logging, and
/// next alerts and metrics. Observers must not throw nor hold the run up:
/// slow work (a delivery) is queued, not done inline.
public protocol RunObserver: Sendable {
    func runStarted(job: String, kind: String, request: RunRequest, runID: Int64?) async
    func runEnded(_ report: RunReport) async
}

/// Logs each run's start and end, one line each, with job and run ids.
public struct RunLogObserver: RunObserver {
    let logger: Logger
    /// Log level of the start and success lines (the daemon: notice; a CLI run prints its own summary: info).
    let level: Logger.Level
    /// Log level of failures (the daemon: error, so `journalctl -p err` finds them; a CLI run's
    /// failure is its own one-line error on stderr: info, not said twice).
    let failureLevel: Logger.Level

    public init(logger: Logger = .cairn("run"), level: Logger.Level = .notice, failureLevel: Logger.Level = .error) {
        self.logger = logger; self.level = level; self.failureLevel = failureLevel
    }

    public func runStarted(job: String, kind: String, request: RunRequest, runID: Int64?) async {
        logger.log(level: level, "run started", metadata: [
            "job": "\(job)", "kind": "\(kind)", "run": "\(runID.map(String.init) ?? "-")", "trigger": "\(request.trigger)",
            "attempt": "\(request.attempt)", "scheduled_at": "\(request.scheduledAt.map(RunLogObserver.iso) ?? "-")",
        ])
    }

    public func runEnded(_ r: RunReport) async {
        var meta: Logger.Metadata = ["job": "\(r.job)", "run": "\(r.runID.map(String.init) ?? "-")", "result": "\(r.result.rawValue)",
                                     "attempt": "\(r.request.attempt)", "duration": "\(String(format: "%.1f", r.duration))s"]
        if let e = r.error { meta["error"] = "\(e.message)"; meta["code"] = "\(e.code.rawValue)" }
        if let s = r.outcome?.summary { meta["summary"] = "\(s)" }
        if let b = r.outcome?.backupID { meta["backup"] = "\(b)" }
        if let h = r.historyError { meta["history_error"] = "\(h.message)" }
        switch r.ending {
        case .succeeded where r.historyError == nil: logger.log(level: level, "run finished", metadata: meta)
        case .succeeded: logger.log(level: failureLevel, "run finished but not recorded", metadata: meta)
        case .skipped, .busy: logger.info("run skipped", metadata: meta)
        case .cancelled: logger.log(level: min(failureLevel, .warning), "run cancelled", metadata: meta)
        case .failed, .timedOut: logger.log(level: failureLevel, "run failed", metadata: meta)
        }
    }

    static func iso(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }
}
