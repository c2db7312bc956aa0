import Foundation

/// Facts the state machine is told about.
public enum AlertFact: Sendable, Equatable {
    /// A run ended. `failed` covers failed and timed out (cancelled runs and
    /// skipped instants are no facts about the job's health).
    case runEnded(job: String, kind: String, failed: Bool, error: String?, at: Date, runID: Int64?, refusal: Bool)
    /// A scheduled instant that did not start.
    case missed(job: String, scheduledAt: Date, at: Date)
}

/// Per-job alert rules.
public struct AlertRules: Sendable, Equatable {
    /// Repeat a failing job's alert at most this often (nil: never).
    public var remindEvery: TimeInterval?
    /// Backup jobs: alert when the last success is older than this.
    public var staleAfter: [String: TimeInterval]
    /// Probes: flip to failing only after this many consecutive failures (default 1).
    public var failAfter: [String: Int]

    public init(remindEvery: TimeInterval? = 24 * 3600, staleAfter: [String: TimeInterval] = [:], failAfter: [String: Int] = [:]) {
        self.remindEvery = remindEvery; self.staleAfter = staleAfter; self.failAfter = failAfter
    }
}

/// The alert decisions as a pure value: facts and a clock in, events out.
/// One alert per flip ok → failing, one recovery notice per flip back,
/// reminders at most every `remindEvery` while failing, one missed-run
/// alert per instant, one stale alert per stale backup. A job failing every
/// minute for a day sends one alert and a reminder per `remindEvery`, never
/// a storm. The caller persists `jobs` (SQLite) and queues the events.
public struct AlertStateMachine: Sendable, Equatable {
    public var rules: AlertRules
    public var jobs: [String: AlertJobState]

    public init(rules: AlertRules, jobs: [String: AlertJobState] = [:]) {
        self.rules = rules; self.jobs = jobs
    }

    /// Applies a fact; returns what to send.
    public mutating func handle(_ fact: AlertFact) -> [AlertEvent] {
        switch fact {
        case .runEnded(let job, let kind, let failed, let error, let at, let runID, let refusal):
            var s = jobs[job] ?? AlertJobState()
            var out: [AlertEvent] = []
            if failed {
                let line = error ?? "failed"
                if s.failures == 0 { s.firstFailure = at }
                s.failures += 1
                s.lastError = line
                if s.status != .failing && s.failures >= max(1, rules.failAfter[job] ?? 1) {
                    s.status = .failing
                    s.failingSince = s.firstFailure ?? at
                    s.lastNotified = at
                    let k: AlertEvent.Kind = refusal ? .retentionRefused : kind == "verify" ? .verifyFailed : .failed
                    let what = s.failures > 1 ? "\(kind) failed \(s.failures) times in a row: \(line)" : "\(kind) failed: \(line)"
                    out.append(AlertEvent(kind: k, job: job, what: what, since: s.failingSince,
                                          lastSuccess: s.lastSuccess, at: at, runID: runID, jobKind: kind))
                } else if let every = rules.remindEvery, let last = s.lastNotified, at.timeIntervalSince(last) >= every {
                    s.lastNotified = at
                    out.append(reminder(job, s, at: at, runID: runID))
                }
            } else {
                if s.status == .failing {
                    out.append(AlertEvent(kind: .recovered, job: job,
                                          what: "\(kind) succeeded again after \(s.failures) failed run(s)",
                                          since: s.failingSince, lastSuccess: at, at: at, runID: runID, jobKind: kind))
                }
                s.status = .ok
                s.failingSince = nil
                s.failures = 0
                s.firstFailure = nil
                s.lastError = nil
                s.lastNotified = nil
                s.lastSuccess = at
            }
            jobs[job] = s
            return out
        case .missed(let job, let scheduledAt, let at):
            var s = jobs[job] ?? AlertJobState()
            if let done = s.missedNotifiedFor, done >= scheduledAt { return [] }
            s.missedNotifiedFor = scheduledAt
            jobs[job] = s
            return [AlertEvent(kind: .missed, job: job, what: "the run scheduled for \(Self.utc(scheduledAt)) UTC did not start",
                               since: scheduledAt, lastSuccess: s.lastSuccess, at: at)]
        }
    }

    /// Time-driven events at `now`: reminders of failing jobs, stale backups.
    public mutating func tick(now: Date) -> [AlertEvent] {
        var out: [AlertEvent] = []
        for job in jobs.keys.sorted() {
            var s = jobs[job]!
            if s.status == .failing, let every = rules.remindEvery, let last = s.lastNotified, now.timeIntervalSince(last) >= every {
                s.lastNotified = now
                out.append(reminder(job, s, at: now, runID: nil))
            }
            jobs[job] = s
        }
        for job in rules.staleAfter.keys.sorted() {
            guard let limit = rules.staleAfter[job] else { continue }
            var s = jobs[job] ?? AlertJobState()
            // Never succeeded: stale from the first time the machine saw the job (its state's creation is not known: use none).
            guard let last = s.lastSuccess else { continue }
            if now.timeIntervalSince(last) >= limit && s.staleNotifiedFor != last {
                s.staleNotifiedFor = last
                out.append(AlertEvent(kind: .stale, job: job,
                                      what: "the newest successful backup is \(Self.age(now.timeIntervalSince(last))) old (stale_after \(Self.age(limit)))",
                                      since: last, lastSuccess: last, at: now))
            }
            jobs[job] = s
        }
        return out
    }

    /// When `tick` next has something to decide (a reminder or a backup going stale); nil: never.
    public var nextDue: Date? {
        var due: [Date] = []
        if let every = rules.remindEvery {
            due += jobs.values.compactMap { $0.status == .failing ? $0.lastNotified?.addingTimeInterval(every) : nil }
        }
        for (job, limit) in rules.staleAfter {
            guard let s = jobs[job], let last = s.lastSuccess, s.staleNotifiedFor != last else { continue }
            due.append(last.addingTimeInterval(limit))
        }
        return due.min()
    }

    private func reminder(_ job: String, _ s: AlertJobState, at: Date, runID: Int64?) -> AlertEvent {
        AlertEvent(kind: .reminder, job: job,
                   what: "still failing: \(s.failures) failed run(s) since \(Self.utc(s.failingSince ?? at)) UTC; last: \(s.lastError ?? "failed")",
                   since: s.failingSince, lastSuccess: s.lastSuccess, at: at, runID: runID)
    }

    static func utc(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.string(from: d)
    }

    /// "3h", "2d 4h", "45m".
    static func age(_ seconds: TimeInterval) -> String {
        let m = Int(seconds / 60)
        if m < 60 { return "\(m)m" }
        let h = m / 60
        if h < 48 { return "\(h)h" + (m % 60 == 0 || h >= 10 ? "" : " \(m % 60)m") }
        return "\(h / 24)d" + (h % 24 == 0 ? "" : " \(h % 24)h")
    }
}
