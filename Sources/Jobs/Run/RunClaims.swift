import Core
import Foundation

/// Exactly-once across hosts (`[cluster]`): the executor claims a run
/// before it starts and reports its end. Implemented over PostgreSQL
/// advisory locks by the Scheduler module's `ClusterCoordinator`.
public protocol RunClaims: Sendable {
    /// Claims the run (for a scheduled instant, may wait while another node runs that same instant).
    func claim(job: String, request: RunRequest) async -> RunClaim
    /// Releases a claim with the run's result ("ok", "failed", "cancelled").
    func finish(_ token: RunClaimToken, result: String, error: String?) async
}

/// An opaque claim held while a run runs.
public struct RunClaimToken: @unchecked Sendable {
    public let value: Any
    public init(_ value: Any) { self.value = value }
}

public enum RunClaim: Sendable {
    case claimed(RunClaimToken)
    /// This instant ran on another node: recorded as skipped, not an error.
    case alreadyRan(String)
    /// The job runs elsewhere now.
    case busy(String)
    /// Cancelled while waiting for the claim.
    case cancelled
    /// The lock database failed.
    case failed(CairnError)
}
