import Core
import Foundation
import State

/// How a run ended, for whoever asked for it (the daemon's planner, the
/// CLI's exit status, observers).
public enum RunEnding: Sendable, Equatable {
    case succeeded
    /// The job's own error.
    case failed
    /// The unit's `timeout` passed: the job was cancelled and cleaned up.
    case timedOut
    /// Cancelled from outside: a signal, the daemon stopping.
    case cancelled
    /// Did not start: the job runs elsewhere (its lock on this host, or its
    /// cluster lock on another node). Not in the history.
    case busy
    /// Did not start: this scheduled instant already ran on another cluster
    /// node. Recorded as skipped.
    case skipped
}

/// Everything known about a run when it ends.
public struct RunReport: Sendable {
    public var job: String
    public var kind: String
    public var request: RunRequest
    /// The history row (nil when the run was not recorded: busy, or the state failed).
    public var runID: Int64?
    public var ending: RunEnding
    /// The job's outcome, when it succeeded.
    public var outcome: JobOutcome?
    /// Why it did not succeed (for busy and skipped: why it did not start).
    public var error: CairnError?
    /// The run's start or end could not be recorded in the history.
    public var historyError: CairnError?
    public var startedAt: Date
    public var duration: TimeInterval

    /// The history's result for this ending.
    public var result: RunRecord.Result {
        switch ending {
        case .succeeded: return .ok
        case .failed, .timedOut: return .failed
        case .cancelled: return .cancelled
        case .busy, .skipped: return .skipped
        }
    }

    /// The error that decides a CLI's exit status: the run's own, else the
    /// history's (a run that is not in the history is not reported as a success).
    public var exitError: CairnError? {
        switch ending {
        case .succeeded, .skipped: return historyError
        case .failed, .timedOut, .cancelled, .busy:
            guard let error else { return historyError }
            guard let h = historyError else { return error }
            return CairnError(h.code, "\(error.message); and it is not in the history: \(h.message)", cause: h.cause)
        }
    }
}
