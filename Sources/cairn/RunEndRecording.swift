import Core
import Foundation
import State

/// Records how a run ended (`error` nil: it succeeded), after its outcome
/// has been printed. When the end cannot be recorded, the state error is
/// what the command throws (its status, e.g. 4 for `.io`), its message
/// saying how the run ended, so the outcome is never lost nor reported as a
/// success; otherwise the run's own error, if any, is thrown.
func recordRunEnd(_ state: StateStore, runID: Int64, job: String, error: (any Error)?,
                  bytes: Int64? = nil, backupID: String? = nil) throws {
    let cancelled = error is CancellationError || (error as? CairnError)?.code == .cancelled
    let result: RunRecord.Result = error == nil ? .ok : cancelled ? .cancelled : .failed
    do {
        try state.finish(id: runID, result: result, error: error.map(historyText), bytes: bytes, backupID: backupID)
    } catch let e as CairnError {
        let ended = error.map { "\(cancelled ? "was cancelled" : "failed") (\(historyText($0)))" }
            ?? "succeeded\(backupID.map { " (backup \($0))" } ?? "")"
        throw CairnError(e.code, "run of \(job) \(ended), but its end is not in the history: \(e.message)", cause: e.cause)
    }
    if let error { throw error }
}
