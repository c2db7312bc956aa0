import Core
import Foundation
import Jobs
import Logging

/// The executor's cluster claims (`RunClaims`) over the lock database.
///
/// A manual run claims the job (refused while another node runs it). A
/// scheduled instant that another node is running right now is waited for:
/// when that node finishes it, the instant is recorded as skipped here; when
/// that node dies, its lock goes with its session and this node takes the
/// instant over.
public struct ClusterRunClaims: RunClaims {
    let cluster: ClusterCoordinator

    public init(_ cluster: ClusterCoordinator) { self.cluster = cluster }

    public func finish(_ token: RunClaimToken, result: String, error: String?) async {
        guard let claim = token.value as? ClusterClaim else { return }
        await cluster.finish(claim, result: result, error: error)
    }

    public func claim(job: String, request: RunRequest) async -> RunClaim {
        do {
            guard let at = request.scheduledAt else {
                switch try await cluster.claimManual(job: job) {
                case .claimed(let c): return .claimed(RunClaimToken(c))
                case .runningElsewhere(let node), .alreadyRan(let node as String?):
                    return .busy("job \(job) is running on cluster node \(node ?? "?")")
                }
            }
            var sawNoRow = 0
            var toldWaiting = false
            while true {
                try Task.checkCancellation()
                switch try await cluster.claim(job: job, scheduledAt: at) {
                case .claimed(let c):
                    return .claimed(RunClaimToken(c))
                case .alreadyRan(let node):
                    return .alreadyRan("this instant ran on cluster node \(node)")
                case .runningElsewhere(let node):
                    let rows = try await cluster.recentRuns(job: job, limit: 10)
                    let sameInstant = rows.contains { abs($0.scheduledAt.timeIntervalSince(at)) < 0.001 && $0.finishedAt == nil }
                    if sameInstant && !toldWaiting {
                        toldWaiting = true
                        Logger.cairn("scheduler").info("waiting for this instant's run on another cluster node", metadata: [
                            "job": "\(job)", "scheduled_at": "\(iso(at))", "node": "\(node ?? "?")"])
                    }
                    if !sameInstant {
                        // The holder may not have written its row yet; look again before calling it an overlap.
                        sawNoRow += 1
                        if sawNoRow > 3 {
                            return .busy("job \(job) is still running on cluster node \(node ?? "?") (an earlier run)")
                        }
                    }
                    try await Sleep.for(.milliseconds(sameInstant ? 1000 : 300))
                }
            }
        } catch is CancellationError {
            return .cancelled
        } catch {
            return .failed(CairnError.wrap(error, .database, "cluster lock database"))
        }
    }
}
