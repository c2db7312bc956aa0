import Config
import Core
import Cron
import Jobs
import Foundation

/// What the scheduler needs to know about one job.
public struct JobPolicy: Sendable, Equatable {
    public var name: String
    /// nil: on demand only.
    public var schedule: CronExpression?
    public var timeZone: TimeZone
    public var retries: Int
    public var retryBackoff: Duration
    public var overlap: OverlapPolicy
    /// A run missed while the daemon was down starts once at start-up if it is
    /// at most this old (zero: never).
    public var catchUp: Duration
    /// Each scheduled start is delayed by a random amount in [0, randomDelay].
    public var randomDelay: Duration
    /// Disabled jobs are not scheduled; they can still be run on demand.
    public var enabled: Bool

    public init(name: String, schedule: CronExpression?, timeZone: TimeZone = TimeZone(identifier: "UTC")!,
                retries: Int = 0, retryBackoff: Duration = .seconds(60),
                overlap: OverlapPolicy = .skip, catchUp: Duration = .zero, randomDelay: Duration = .zero,
                enabled: Bool = true) {
        self.name = name; self.schedule = schedule; self.timeZone = timeZone
        self.retries = retries; self.retryBackoff = retryBackoff; self.overlap = overlap
        self.catchUp = catchUp; self.randomDelay = randomDelay; self.enabled = enabled
    }

    /// The policy of a configured job (its schedule was validated by the config loader).
    public init(_ job: JobConfig) throws {
        self.init(name: job.name, schedule: try job.schedule.map { try CronExpression($0) }, timeZone: job.timeZone,
                  retries: job.retries, retryBackoff: job.retryBackoff, overlap: job.overlap,
                  catchUp: job.catchUp, randomDelay: job.randomDelay, enabled: job.enabled)
    }
}

/// Why a run exists.
public enum Trigger: String, Sendable, Codable {
    case schedule
    /// A scheduled run missed while the daemon was down, started at start-up.
    case catchUp = "catch-up"
    /// `cairn run` through the control socket.
    case manual
}

/// One run the planner decided on. A retry keeps the run's id and counts up `attempt`.
public struct PlannedRun: Sendable, Equatable, Hashable {
    public var id: Int
    public var job: String
    public var trigger: Trigger
    /// The nominal cron instant (no jitter) for scheduled and catch-up runs.
    public var scheduledAt: Date?
    /// 1 for the first attempt.
    public var attempt: Int
}

/// What the daemon must do now.
public enum PlannerAction: Sendable, Equatable {
    /// Start the run now. (Its `timeout` is applied by the one run path,
    /// `RunExecutor`, which ends it as `.timedOut`.)
    case start(PlannedRun)
    /// Retry a failed run at `at` (already scheduled by the planner; for logs and history).
    case retryScheduled(PlannedRun, at: Date)
    /// A run that will not happen (overlap, missed), to record in the history.
    case skip(job: String, scheduledAt: Date?, trigger: Trigger, reason: String)
    /// A scheduled instant found too late to run (a suspended host, a clock
    /// step): recorded as skipped, and alerted as a missed run.
    case missed(job: String, scheduledAt: Date, reason: String)
}

/// How a run ended, as the planner sees it.
public enum RunEnd: Sendable, Equatable {
    case succeeded
    case failed
    /// Cancelled by its timeout (counts as a failure, so it is retried).
    case timedOut
    /// Cancelled by shutdown: never retried.
    case cancelled
    /// Could not start: the job is held elsewhere (a `cairn run` in another
    /// process, or another cluster node). Treated like an overlap.
    case busy(String)
}

/// The answer to an on-demand run request.
public enum ManualDecision: Sendable, Equatable {
    /// Started or waiting for a free slot (global concurrency): the run's id.
    case accepted(PlannedRun)
    /// The job is running; this run starts when it ends (overlap = queue).
    case queued(PlannedRun)
    case refused(String)
}

/// The scheduler's decisions as a pure value: no clock, no I/O, no sleeping.
/// The daemon feeds it the time and events and carries out its actions; tests
/// drive it with any instants they like.
///
/// Rules:
/// - each enabled job with a schedule has a next cron instant; its due time is
///   that instant plus a random delay in [0, random_delay];
/// - a job never overlaps itself: when it is due while its previous run is
///   still running (or waiting for a retry), `overlap = "skip"` records a skipped
///   run, `"queue"` keeps one run that starts when the job is free (further
///   instants meanwhile are skipped);
/// - at most `maxConcurrent` runs at once across all jobs; due runs wait in
///   FIFO order for a slot;
/// - a run that fails or times out is retried `retries` times, after
///   `retry_backoff × 2^(attempt−1)`;
/// - when the clock is found past several instants of a job at once (a
///   suspended host, a clock step), the latest one runs once, if it is at most
///   `max(catch_up, missedGrace)` old; otherwise it is recorded as skipped.
public struct Planner: Sendable {
    public private(set) var policies: [String: JobPolicy]
    public private(set) var maxConcurrent: Int
    /// How late a due run may start and still count as on time (timer latency, a busy host).
    public var missedGrace: Duration = .seconds(300)

    struct Fire: Sendable, Equatable { var instant: Date; var due: Date }
    /// Next scheduled instant per job.
    private var fires: [String: Fire] = [:]
    /// Running runs by id.
    private var running: [Int: (run: PlannedRun, Void)] = [:]
    /// Failed runs waiting to be retried, by job.
    private var retries: [String: (run: PlannedRun, at: Date)] = [:]
    /// Runs waiting for a global slot, in order.
    private var ready: [PlannedRun] = []
    /// One run per job waiting for the job to be free (overlap = queue).
    private var queued: [String: PlannedRun] = [:]
    private var nextID = 1
    private var rng: SplitMix64
    /// Per job, the latest scheduled instant that passed while the daemon was
    /// down and that catch-up does not run (for the missed-run alert).
    public private(set) var missedWhileDown: [(job: String, instant: Date)] = []

    /// - Parameters:
    ///   - lastScheduled: per job, the latest scheduled instant already run (from the history), for catch-up.
    public init(policies: [JobPolicy], maxConcurrent: Int, now: Date, lastScheduled: [String: Date] = [:], seed: UInt64? = nil) {
        self.policies = Dictionary(policies.map { ($0.name, $0) }, uniquingKeysWith: { _, b in b })
        self.maxConcurrent = max(1, maxConcurrent)
        self.rng = SplitMix64(seed: seed ?? UInt64.random(in: .min ... .max))
        for p in policies.sorted(by: { $0.name < $1.name }) {
            if let last = lastScheduled[p.name], let missed = latestMissed(p, after: last, now: now) {
                enqueue(newRun(p.name, .catchUp, missed))
            } else if let last = lastScheduled[p.name], p.enabled, let sched = p.schedule {
                // Instants passed while the daemon was down, and not caught up: the latest is reported missed.
                var cursor = last, latest: Date?
                while let n = sched.next(after: cursor, in: p.timeZone), n <= now { latest = n; cursor = n }
                if let latest { missedWhileDown.append((p.name, latest)) }
            }
            fires[p.name] = nextFire(p, after: now)
        }
    }

    // MARK: Queries

    /// The earliest time something is due (a scheduled run, a retry); nil if nothing ever is.
    public var nextWake: Date? {
        var candidates = fires.values.map(\.due)
        candidates += retries.values.map(\.at)
        return candidates.min()
    }

    /// The next scheduled instant (nominal, without jitter) and due time of every scheduled job.
    public var upcoming: [(job: String, instant: Date, due: Date)] {
        fires.map { ($0.key, $0.value.instant, $0.value.due) }.sorted { ($0.due, $0.job) < ($1.due, $1.job) }
    }

    public var runningRuns: [PlannedRun] { running.values.map(\.run).sorted { $0.id < $1.id } }
    public var waitingRuns: [PlannedRun] { ready }
    public var queuedRuns: [PlannedRun] { queued.values.sorted { $0.id < $1.id } }
    public var pendingRetries: [(run: PlannedRun, at: Date)] { retries.values.sorted { $0.run.id < $1.run.id } }

    /// True if the job has a run running, waiting for a slot, or waiting to be retried.
    public func isBusy(_ job: String) -> Bool {
        running.values.contains { $0.run.job == job } || ready.contains { $0.job == job } || retries[job] != nil
    }

    // MARK: Events

    /// Moves the planner to `now`: retries and scheduled runs that are due, then starts what fits.
    public mutating func advance(to now: Date) -> [PlannerAction] {
        var actions: [PlannerAction] = []
        for job in retries.keys.sorted() where retries[job]!.at <= now {
            ready.append(retries.removeValue(forKey: job)!.run)
        }
        for job in fires.keys.sorted() {
            guard let fire = fires[job], fire.due <= now, let p = policies[job] else { continue }
            // Several instants passed at once: only the latest counts.
            var instant = fire.instant
            if let sched = p.schedule {
                while let n = sched.next(after: instant, in: p.timeZone), n <= now { instant = n }
            }
            fires[job] = nextFire(p, after: instant)
            let late = now.timeIntervalSince(instant)
            let allowed = max(p.catchUp, missedGrace)
            if late > seconds(allowed) + seconds(p.randomDelay) {
                actions.append(.missed(job: job, scheduledAt: instant,
                                     reason: "missed by \(Int(late)) s (the host was suspended or the clock jumped); catch_up allows \(ConfigUnits.formatDuration(allowed))"))
                continue
            }
            actions += offer(newRun(job, .schedule, instant), policy: p)
        }
        actions += startReady(now: now)
        return actions
    }

    /// An on-demand run of `job`, subject to the overlap policy.
    public mutating func requestManual(_ job: String, now: Date) -> (ManualDecision, [PlannerAction]) {
        guard let p = policies[job] else { return (.refused("no job named '\(job)'"), []) }
        if isBusy(job) {
            if p.overlap == .queue {
                // One queued run at most: a request while one waits is served by that run.
                if let waiting = queued[job] { return (.queued(waiting), []) }
                let run = newRun(job, .manual, nil)
                queued[job] = run
                return (.queued(run), [])
            }
            let why = "\(job) is already running (overlap = \"skip\")"
            return (.refused(why), [])
        }
        let run = newRun(job, .manual, nil)
        ready.append(run)
        return (.accepted(run), startReady(now: now))
    }

    /// A run ended. Failed and timed-out runs are retried while attempts remain.
    public mutating func finished(runID: Int, _ end: RunEnd, now: Date) -> [PlannerAction] {
        guard let r = running.removeValue(forKey: runID) else { return [] }
        var actions: [PlannerAction] = []
        var run = r.run
        let p = policies[run.job]
        switch end {
        case .failed, .timedOut:
            if let p, run.attempt <= p.retries {
                let delay = seconds(RunRetry.delay(backoff: p.retryBackoff, afterAttempt: run.attempt))
                run.attempt += 1
                let at = now.addingTimeInterval(delay)
                retries[run.job] = (run, at)
                actions.append(.retryScheduled(run, at: at))
            }
        case .busy(let why):
            // Held elsewhere: an overlap, decided by the policy.
            if let p, p.overlap == .queue, queued[run.job] == nil {
                // Try again shortly; the holder may be done by then.
                retries[run.job] = (run, now.addingTimeInterval(15))
            } else {
                actions.append(.skip(job: run.job, scheduledAt: run.scheduledAt, trigger: run.trigger, reason: why))
            }
        case .succeeded, .cancelled:
            break
        }
        if !isBusy(run.job), let q = queued.removeValue(forKey: run.job) {
            ready.append(q)
        }
        return actions + advance(to: now)
    }

    /// New configuration (SIGHUP). Running runs go on; jobs whose schedule
    /// changed get a fresh next instant; removed jobs are forgotten.
    public mutating func reconfigure(policies new: [JobPolicy], maxConcurrent: Int, now: Date) -> [PlannerAction] {
        let old = policies
        policies = Dictionary(new.map { ($0.name, $0) }, uniquingKeysWith: { _, b in b })
        self.maxConcurrent = max(1, maxConcurrent)
        for name in old.keys where policies[name] == nil {
            fires[name] = nil; retries[name] = nil; queued[name] = nil
            ready.removeAll { $0.job == name }
        }
        for p in new {
            let prev = old[p.name]
            if prev?.schedule != p.schedule || prev?.timeZone != p.timeZone || prev?.enabled != p.enabled
                || prev?.randomDelay != p.randomDelay || fires[p.name] == nil {
                fires[p.name] = nextFire(p, after: now)
            }
        }
        return advance(to: now)
    }

    /// The wall clock was set. Forward: `advance` runs what became due (the
    /// latest missed instant once). Backward by up to 3 hours: nothing changes,
    /// so instants that already ran are not run again (like Debian cron).
    /// Further back: every next instant is recomputed from the new time.
    public mutating func clockChanged(now: Date, previous: Date) -> [PlannerAction] {
        if now < previous && previous.timeIntervalSince(now) > 3 * 3600 {
            for (name, p) in policies { fires[name] = nextFire(p, after: now) }
        }
        return advance(to: now)
    }

    /// Shutdown: nothing new starts; returns the runs still running.
    public mutating func stop() -> [PlannedRun] {
        fires = [:]; retries = [:]; queued = [:]; ready = []
        return runningRuns
    }

    // MARK: Internals

    private mutating func newRun(_ job: String, _ trigger: Trigger, _ scheduledAt: Date?) -> PlannedRun {
        defer { nextID += 1 }
        return PlannedRun(id: nextID, job: job, trigger: trigger, scheduledAt: scheduledAt, attempt: 1)
    }

    private mutating func enqueue(_ run: PlannedRun) { ready.append(run) }

    /// A scheduled run arrives: runs, queues, or is skipped by the overlap policy.
    private mutating func offer(_ run: PlannedRun, policy p: JobPolicy) -> [PlannerAction] {
        guard isBusy(run.job) else { ready.append(run); return [] }
        if p.overlap == .queue && queued[run.job] == nil {
            queued[run.job] = run
            return []
        }
        let why = queued[run.job] != nil ? "a run of \(run.job) is already queued" : "the previous run of \(run.job) is still running (overlap = \"skip\")"
        return [.skip(job: run.job, scheduledAt: run.scheduledAt, trigger: run.trigger, reason: why)]
    }

    private mutating func startReady(now: Date) -> [PlannerAction] {
        var actions: [PlannerAction] = []
        var i = 0
        while running.count < maxConcurrent && i < ready.count {
            let run = ready[i]
            // A job never runs twice at once, even if it is in the ready list twice.
            if running.values.contains(where: { $0.run.job == run.job }) { i += 1; continue }
            ready.remove(at: i)
            running[run.id] = (run, ())
            actions.append(.start(run))
        }
        return actions
    }

    private mutating func nextFire(_ p: JobPolicy, after: Date) -> Fire? {
        guard p.enabled, let sched = p.schedule, let instant = sched.next(after: after, in: p.timeZone) else { return nil }
        let jitter = seconds(p.randomDelay)
        let delay = jitter > 0 ? Double(rng.next() % UInt64(jitter * 1000 + 1)) / 1000 : 0
        return Fire(instant: instant, due: instant.addingTimeInterval(delay))
    }

    /// The latest instant in (last, now] within the catch-up window, if any.
    private func latestMissed(_ p: JobPolicy, after last: Date, now: Date) -> Date? {
        guard p.enabled, p.catchUp > .zero, let sched = p.schedule else { return nil }
        let windowStart = now.addingTimeInterval(-seconds(p.catchUp))
        var cursor = max(last, windowStart.addingTimeInterval(-1))
        var found: Date?
        while let n = sched.next(after: cursor, in: p.timeZone), n <= now {
            if n > last && n >= windowStart { found = n }
            cursor = n
        }
        return found
    }
}

func seconds(_ d: Duration) -> Double {
    d.inSeconds
}

/// A small seedable generator (SplitMix64), so tests can pin the jitter.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
