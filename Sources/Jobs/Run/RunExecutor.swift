import Config
import Core
import Foundation
import Logging
import State

/// The one way a job runs, whoever asks (the daemon's scheduler, `cairn
/// run`, `cairn verify`, `cairn backups prune`, `cairn migrate`):
///
/// 1. take the job's lock on this host (`JobLock`, released on every path);
/// 2. with `[cluster]`, claim the run (`RunClaims`) so no other node runs it;
/// 3. record the start in the history (SQLite, off the cooperative pool);
/// 4. tell the observers; run the job (`JobRunner`) under the unit's `timeout`;
/// 5. map how it ended (`RunEnding`), release the claim, record the end,
///    tell the observers.
///
/// `execute` never throws: everything is in the `RunReport`. Retries are
/// the caller's policy: the daemon's planner schedules them (visible in
/// `cairn status`, cancelled by a stop); a CLI uses `executeWithRetries`,
/// which waits the same backoff (`RunRetry`) in-process.
public struct RunExecutor: Sendable {
    public var config: CairnConfig
    public var env: [String: String]
    public var state: StateStore
    public var claims: (any RunClaims)?
    public var observers: [any RunObserver]
    /// What a cancellation from outside means here ("cairn serve is stopping", "interrupted by a signal").
    public var cancelReason: String
    public var now: @Sendable () -> Date = { Date() }

    public init(config: CairnConfig, env: [String: String] = ProcessInfo.processInfo.environment, state: StateStore,
                claims: (any RunClaims)? = nil, observers: [any RunObserver] = [], cancelReason: String) {
        self.config = config; self.env = env; self.state = state; self.claims = claims
        self.observers = observers; self.cancelReason = cancelReason
    }

    /// Runs one attempt of `job` to its end. `started` receives the job's
    /// progress as soon as there is one; `report` the job's multi-line
    /// report (a migration's file list), for a CLI to print.
    public func execute(_ job: JobConfig, _ request: RunRequest = RunRequest(),
                        started: @escaping @Sendable (any JobProgress) -> Void = { _ in },
                        report: @escaping @Sendable (String) -> Void = { _ in }) async -> RunReport {
        let startedAt = now()
        let clock = ContinuousClock(), began = clock.now
        var r = RunReport(job: job.name, kind: job.kind.rawValue, request: request, runID: nil, ending: .failed,
                          outcome: nil, error: nil, historyError: nil, startedAt: startedAt, duration: 0)
        func done() async -> RunReport {
            r.duration = Self.seconds(clock.now - began)
            for o in observers { await o.runEnded(r) }
            return r
        }
        // 1. The job's lock on this host.
        let lock: JobLock
        do {
            lock = try JobLock(stateDir: config.stateDir, job: job.name)
        } catch {
            let e = CairnError.wrap(error, .io, "job \(job.name)")
            r.ending = e.code == .busy ? .busy : .failed
            r.error = e
            return await done()
        }
        defer { withExtendedLifetime(lock) {} }
        let state = self.state
        // Holding the lock: a row of this job still "running" was left by a process that is gone.
        _ = try? await runBlocking { try state.markInterrupted(job: job.name, at: startedAt) }

        // 2. The cluster claim.
        var token: RunClaimToken?
        if let claims {
            switch await claims.claim(job: job.name, request: request) {
            case .claimed(let t):
                token = t
            case .alreadyRan(let why):
                r.ending = .skipped
                r.error = CairnError(.busy, why)
                do {
                    try await runBlocking { try state.recordSkipped(job: job.name, trigger: request.trigger, scheduledAt: request.scheduledAt, reason: why) }
                } catch {
                    r.historyError = CairnError.wrap(error, .io, "state database")
                }
                return await done()
            case .busy(let why):
                r.ending = .busy
                r.error = CairnError(.busy, why)
                return await done()
            case .cancelled:
                r.ending = .cancelled
                r.error = CairnError(.cancelled, "cancelled while waiting for the cluster lock")
                return await done()
            case .failed(let e):
                r.ending = .failed
                r.error = e
                do {
                    r.runID = try await runBlocking {
                        let id = try state.start(job: job.name, trigger: request.trigger, scheduledAt: request.scheduledAt, attempt: request.attempt, at: startedAt)
                        try state.finish(id: id, result: .failed, error: e.message)
                        return id
                    }
                } catch {
                    r.historyError = CairnError.wrap(error, .io, "state database")
                }
                return await done()
            }
        }

        // 3. The start in the history: a run that cannot be recorded does not start.
        do {
            r.runID = try await runBlocking {
                try state.start(job: job.name, trigger: request.trigger, scheduledAt: request.scheduledAt, attempt: request.attempt, at: startedAt)
            }
        } catch {
            let e = CairnError.wrap(error, .io, "state database")
            r.ending = .failed
            r.error = e
            if let token { await claims?.finish(token, result: "failed", error: e.message) }
            return await done()
        }
        for o in observers { await o.runStarted(job: job.name, kind: job.kind.rawValue, request: request, runID: r.runID) }

        // 4. The job, under its timeout.
        let runner = JobRunner(config: config, env: env, state: state)
        let (result, timedOut) = await Self.withTimeout(job.timeout) {
            try await runner.run(job, started: started, report: report)
        }

        // 5. How it ended.
        switch result {
        case .success(let outcome):
            r.ending = .succeeded
            r.outcome = outcome
        case .failure(let error):
            let cancelled = error is CancellationError || (error as? CairnError)?.code == .cancelled || Task.isCancelled
            if timedOut {
                r.ending = .timedOut
                r.error = CairnError(.timeout, "timed out after \(job.timeout.map(ConfigUnits.formatDuration) ?? "its timeout") (the unit's timeout); the job was stopped")
            } else if cancelled {
                r.ending = .cancelled
                r.error = CairnError(.cancelled, "cancelled: \(cancelReason)")
            } else {
                r.ending = .failed
                r.error = CairnError.wrap(error, .internal, "job \(job.name)")
            }
        }
        if let token {
            await claims?.finish(token, result: r.result == .ok ? "ok" : r.result.rawValue, error: r.error?.message)
        }
        if let id = r.runID {
            let (result, error, outcome) = (r.result, r.error?.message, r.outcome)
            do {
                try await runBlocking {
                    try state.finish(id: id, result: result, error: error, bytes: outcome?.bytes, backupID: outcome?.backupID,
                                     latency: outcome?.latency)
                }
            } catch {
                r.historyError = CairnError.wrap(error, .io, "state database")
            }
        }
        return await done()
    }

    /// Runs attempts until one succeeds, the unit's `retries` are used up,
    /// or the task is cancelled, waiting `retry_backoff × 2^(attempt−1)`
    /// between them (`RunRetry`). `retrying` hears of each wait before it starts.
    public func executeWithRetries(_ job: JobConfig, _ request: RunRequest = RunRequest(),
                                   started: @escaping @Sendable (any JobProgress) -> Void = { _ in },
                                   report: @escaping @Sendable (String) -> Void = { _ in },
                                   retrying: @Sendable (RunReport, Duration) -> Void = { _, _ in }) async -> RunReport {
        var request = request
        while true {
            let r = await execute(job, request, started: started, report: report)
            guard r.ending == .failed || r.ending == .timedOut, r.runID != nil, r.historyError == nil,
                  request.attempt <= job.retries, !Task.isCancelled else { return r }
            let delay = RunRetry.delay(backoff: job.retryBackoff, afterAttempt: request.attempt)
            retrying(r, delay)
            do { try await Sleep.for(delay) } catch { return r }
            request.attempt += 1
        }
    }

    /// Runs `body`, cancelling it when `timeout` passes; waits for it to end
    /// (its clean-up) either way. Returns its result and whether the timeout
    /// cancelled it.
    static func withTimeout(_ timeout: Duration?, _ body: @escaping @Sendable () async throws -> JobOutcome) async -> (Result<JobOutcome, any Error>, Bool) {
        guard let timeout else {
            do { return (.success(try await body()), false) } catch { return (.failure(error), false) }
        }
        return await withTaskGroup(of: TimeoutRace.self) { group in
            group.addTask {
                do { return .done(.success(try await body())) } catch { return .done(.failure(error)) }
            }
            group.addTask {
                do { try await Sleep.for(timeout); return .timer } catch { return .timerCancelled }
            }
            var timedOut = false
            while let event = await group.next() {
                switch event {
                case .done(let result):
                    group.cancelAll()
                    return (result, timedOut)
                case .timer:
                    timedOut = true
                    group.cancelAll()
                case .timerCancelled:
                    continue
                }
            }
            return (.failure(CancellationError()), timedOut)
        }
    }

    static func seconds(_ d: Duration) -> TimeInterval {
        d.inSeconds
    }
}

enum TimeoutRace: Sendable { case done(Result<JobOutcome, any Error>), timer, timerCancelled }

/// The backoff between attempts of a failed run, shared by the daemon's
/// planner and `executeWithRetries`: `retry_backoff × 2^(attempt−1)`.
public enum RunRetry {
    public static func delay(backoff: Duration, afterAttempt attempt: Int) -> Duration {
        backoff * Int(pow(2, Double(max(0, attempt - 1))))
    }
}
