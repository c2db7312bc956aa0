import Core
import Foundation

/// Jittered exponential backoff with a bounded budget ("full jitter", as the
/// AWS SDKs do): attempt n waits a random time in [0, min(maxDelay, base·2ⁿ)].
public struct RetryPolicy: Sendable, Equatable {
    /// Total attempts including the first.
    public var maxAttempts: Int
    public var baseDelay: TimeInterval
    public var maxDelay: TimeInterval
    /// No new attempt starts after this much time since the first one.
    public var maxElapsed: TimeInterval

    public init(maxAttempts: Int = 6, baseDelay: TimeInterval = 0.25, maxDelay: TimeInterval = 20, maxElapsed: TimeInterval = 300) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxElapsed = maxElapsed
    }

    public static let none = RetryPolicy(maxAttempts: 1)

    /// The delay before retry number `attempt` (1-based), given a random value in [0, 1).
    public func delay(beforeRetry attempt: Int, random: Double) -> TimeInterval {
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return cap * random
    }
}

/// What to do with a failed attempt.
public enum RetryDecision: Sendable { case retry, fail }

/// Runs `body` until it succeeds, `classify` says `.fail`, or the budget is spent.
/// `onRetry` is told about each retry (for logging). Cancellation stops at once.
public func withRetries<T: Sendable>(
    _ policy: RetryPolicy,
    classify: @Sendable (any Error) -> RetryDecision,
    onRetry: @Sendable (_ attempt: Int, _ error: any Error, _ delay: TimeInterval) -> Void = { _, _, _ in },
    _ body: @Sendable (_ attempt: Int) async throws -> T
) async throws -> T {
    let start = ContinuousClock.now
    var attempt = 1
    while true {
        do {
            return try await body(attempt)
        } catch {
            if error is CancellationError || Task.isCancelled { throw error }
            if let e = error as? CairnError, e.code == .cancelled { throw error }
            let elapsed = start.duration(to: .now)
            let elapsedSeconds = elapsed.inSeconds
            guard classify(error) == .retry, attempt < policy.maxAttempts, elapsedSeconds < policy.maxElapsed else {
                if attempt > 1, var e = error as? CairnError {
                    if classify(error) == .retry { e.message += " (gave up after \(attempt) attempts)" }
                    throw e
                }
                throw error
            }
            let d = policy.delay(beforeRetry: attempt, random: Double.random(in: 0..<1))
            onRetry(attempt, error, d)
            try await Sleep.for(.milliseconds(Int(d * 1000)))
            attempt += 1
        }
    }
}
