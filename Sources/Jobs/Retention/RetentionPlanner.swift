import Config
import Foundation

/// One backup as retention sees it: its id, the start time its manifest
/// records (never the object name or LastModified), and whether a
/// verification of it passed.
public struct RetentionCandidate: Sendable, Equatable {
    public var id: String
    public var startedAt: Date
    public var verified: Bool
    public init(id: String, startedAt: Date, verified: Bool = false) {
        self.id = id; self.startedAt = startedAt; self.verified = verified
    }
}

/// The rule that decided a backup's fate; its text is the table's RULE column.
public enum RetentionReason: Sendable, Equatable, CustomStringConvertible {
    /// Started after `now`: the clock is behind the host that made it. Kept.
    case startedInTheFuture
    /// One of the newest `keep_last`.
    case keepLast(Int)
    /// Started within `keep_days` of now.
    case keepDays(Int)
    /// The newest backup of its day / ISO week / month, one of the last N that have backups.
    case keepDaily(Int, period: String)
    case keepWeekly(Int, period: String)
    case keepMonthly(Int, period: String)
    /// The newest backup whose verification passed: never deleted.
    case newestVerified
    /// The plan was refused (see `RetentionRefusal`): nothing is deleted.
    case refused
    /// Older than `keep_days` and no rule keeps it.
    case expired(keepDays: Int)

    public var keeps: Bool { if case .expired = self { return false }; return true }

    public var description: String {
        switch self {
        case .startedInTheFuture: return "started after now (clock behind?): kept"
        case .keepLast(let n): return "one of the newest \(n) (keep_last)"
        case .keepDays(let n): return "within \(n) days (keep_days)"
        case .keepDaily(let n, let p): return "newest of day \(p) (keep_daily = \(n))"
        case .keepWeekly(let n, let p): return "newest of week \(p) (keep_weekly = \(n))"
        case .keepMonthly(let n, let p): return "newest of month \(p) (keep_monthly = \(n))"
        case .newestVerified: return "newest verified backup"
        case .refused: return "kept: plan refused"
        case .expired(let n): return "older than \(n) days, no rule keeps it"
        }
    }
}

/// Why a plan deletes nothing and the run fails. The run's error keeps it
/// as its cause, so alerts tell a refusal from other failures as data.
public enum RetentionRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The newest backup is older than `keep_days`: backups are failing, and
    /// applying the window would delete the last good ones.
    case newestTooOld(id: String, startedAt: Date, keepDays: Int)

    public var description: String {
        switch self {
        case .newestTooOld(let id, let at, let days):
            let f = ISO8601DateFormatter()
            return "the newest backup (\(id), started \(f.string(from: at))) is older than keep_days = \(days): backups are failing; deleting nothing"
        }
    }
}

/// One backup's line of a plan.
public struct RetentionDecision: Sendable, Equatable {
    public var candidate: RetentionCandidate
    public var reason: RetentionReason
    public var keep: Bool { reason.keeps }
}

/// What retention would do: every backup, newest first, with the rule that decided.
public struct RetentionPlan: Sendable, Equatable {
    public var decisions: [RetentionDecision]
    /// Non-nil: nothing may be deleted and the run fails with this reason.
    public var refusal: RetentionRefusal?
    public var kept: [RetentionDecision] { decisions.filter(\.keep) }
    public var deleted: [RetentionDecision] { decisions.filter { !$0.keep } }
}

/// Decides which backups to keep. A pure value: the backups, the rules, the
/// clock and the time zone are its inputs (tested with a fixed clock in
/// Tests/JobsTests/RetentionPlannerTests.swift).
///
/// A backup is kept when any rule keeps it; the reason shown is the first
/// that applies in this order: started in the future, keep_last, keep_days,
/// keep_daily, keep_weekly, keep_monthly, newest verified. Safety:
/// - never fewer than `keep_last` backups remain;
/// - the newest verified backup is never deleted;
/// - when the newest backup is older than `keep_days`, nothing is deleted
///   and the plan is refused (backups are failing);
/// - a backup that started after `now` (this host's clock is behind) is
///   kept, and counts as newest, so a clock skewed backwards never makes the
///   newest backups look expired: it can only make old ones look younger.
public struct RetentionPlanner: Sendable {
    public var rules: RetentionSpec
    public var now: Date
    public var timeZone: TimeZone

    public init(rules: RetentionSpec, now: Date, timeZone: TimeZone) {
        self.rules = rules; self.now = now; self.timeZone = timeZone
    }

    public func plan(_ backups: [RetentionCandidate]) -> RetentionPlan {
        // Newest first; ties broken by id (ids sort by time) so plans are stable.
        let sorted = backups.sorted { ($0.startedAt, $0.id) > ($1.startedAt, $1.id) }
        let window = TimeInterval(rules.keepDays) * 86_400
        if let newest = sorted.first, now.timeIntervalSince(newest.startedAt) > window {
            return RetentionPlan(decisions: sorted.map { RetentionDecision(candidate: $0, reason: .refused) },
                                 refusal: .newestTooOld(id: newest.id, startedAt: newest.startedAt, keepDays: rules.keepDays))
        }
        var reasons = [RetentionReason?](repeating: nil, count: sorted.count)
        func keep(_ i: Int, _ r: RetentionReason) { if reasons[i] == nil { reasons[i] = r } }

        for (i, b) in sorted.enumerated() where b.startedAt > now { keep(i, .startedInTheFuture) }
        for i in sorted.indices.prefix(rules.keepLast) { keep(i, .keepLast(rules.keepLast)) }
        for (i, b) in sorted.enumerated() where now.timeIntervalSince(b.startedAt) <= window { keep(i, .keepDays(rules.keepDays)) }
        if let n = rules.keepDaily { bucket(sorted, n, period: dayText) { keep($0, .keepDaily(n, period: $1)) } }
        if let n = rules.keepWeekly { bucket(sorted, n, period: isoWeekText) { keep($0, .keepWeekly(n, period: $1)) } }
        if let n = rules.keepMonthly { bucket(sorted, n, period: monthText) { keep($0, .keepMonthly(n, period: $1)) } }
        if let i = sorted.firstIndex(where: \.verified) { keep(i, .newestVerified) }

        let decisions = sorted.indices.map { RetentionDecision(candidate: sorted[$0], reason: reasons[$0] ?? .expired(keepDays: rules.keepDays)) }
        return RetentionPlan(decisions: decisions, refusal: nil)
    }

    /// restic `forget --keep-daily N` and friends: walking newest to oldest,
    /// the first backup of each new period is kept, until N periods have one.
    private func bucket(_ sorted: [RetentionCandidate], _ n: Int, period: (Date) -> String, keep: (Int, String) -> Void) {
        var last: String? = nil, count = 0
        for (i, b) in sorted.enumerated() {
            guard count < n else { return }
            let p = period(b.startedAt)
            if p != last {
                keep(i, p)
                last = p
                count += 1
            }
        }
    }

    private var calendar: Calendar {
        var c = Calendar(identifier: .iso8601)
        c.timeZone = timeZone
        return c
    }

    private func dayText(_ d: Date) -> String {
        let c = calendar.dateComponents([.year, .month, .day], from: d)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }

    private func isoWeekText(_ d: Date) -> String {
        let c = calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: d)
        return String(format: "%04d-W%02d", c.yearForWeekOfYear!, c.weekOfYear!)
    }

    private func monthText(_ d: Date) -> String {
        let c = calendar.dateComponents([.year, .month], from: d)
        return String(format: "%04d-%02d", c.year!, c.month!)
    }
}
