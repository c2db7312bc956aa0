import Config
import Foundation
import Jobs
import Testing

/// The retention planner with a fixed clock: Saturday 2026-12-05 12:00 UTC.
/// Backups are named by their start day (and hour when it matters); each
/// test asserts the exact kept set and the rule that decided every backup.
@Suite struct RetentionPlannerTests {
    static let now = date("2026-12-05T12:00:00Z")
    static let utc = TimeZone(identifier: "UTC")!

    static func date(_ s: String) -> Date { ISO8601DateFormatter().date(from: s)! }

    /// One backup a day at 02:30 UTC, `days` days back from the clock's day (0 = today), named "yyyy-MM-dd".
    static func daily(_ days: some Sequence<Int>, at hour: String = "02:30", verified: Set<Int> = []) -> [RetentionCandidate] {
        days.map { n in
            let d = date("2026-12-05T\(hour):00Z").addingTimeInterval(-Double(n) * 86_400)
            return RetentionCandidate(id: day(d), startedAt: d, verified: verified.contains(n))
        }
    }

    static func day(_ d: Date) -> String { String(ISO8601DateFormatter().string(from: d).prefix(10)) }
    static func name(_ n: Int) -> String { day(date("2026-12-05T02:30:00Z").addingTimeInterval(-Double(n) * 86_400)) }

    static func plan(_ backups: [RetentionCandidate], keepDays: Int = 30, keepLast: Int = 7, daily: Int? = nil, weekly: Int? = nil,
                     monthly: Int? = nil, now: Date = now, tz: TimeZone = utc) -> RetentionPlan {
        RetentionPlanner(rules: RetentionSpec(backupJob: "db", keepDays: keepDays, keepLast: keepLast, keepDaily: daily, keepWeekly: weekly, keepMonthly: monthly),
                         now: now, timeZone: tz).plan(backups.shuffled())
    }

    /// id → reason of every backup, for exact comparison.
    static func reasons(_ p: RetentionPlan) -> [String: RetentionReason] {
        Dictionary(uniqueKeysWithValues: p.decisions.map { ($0.candidate.id, $0.reason) })
    }

    /// The plan holds exactly these backups (days back), kept by these rules, and deletes exactly `deleted` (expired).
    static func expect(_ p: RetentionPlan, _ expected: [([Int], RetentionReason)], deleted: [Int], keepDays: Int = 30,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        var want: [String: RetentionReason] = [:]
        for (days, r) in expected { for n in days { want[name(n)] = r } }
        for n in deleted { want[name(n)] = .expired(keepDays: keepDays) }
        #expect(reasons(p) == want, sourceLocation: sourceLocation)
        #expect(Set(p.kept.map(\.candidate.id)) == Set(expected.flatMap { $0.0.map(name) }), sourceLocation: sourceLocation)
    }

    @Test func dailyBackupsOverSixtyDaysKeepThirtyDays() {
        let p = Self.plan(Self.daily(0..<60))
        #expect(p.refusal == nil)
        // Today's backup is 9.5 h old, so day 29 (29 d 9.5 h) is within 30 days and day 30 is not.
        Self.expect(p, [(Array(0..<7), .keepLast(7)), (Array(7..<30), .keepDays(30))], deleted: Array(30..<60))
        #expect(p.kept.count == 30 && p.deleted.count == 30)
        #expect(p.decisions.map(\.candidate.id) == (0..<60).map(Self.name), "newest first")
        #expect(p.deleted.first?.reason.description == "older than 30 days, no rule keeps it")
    }

    @Test func gapsAreKeptByTheirAgeNotByTheirPosition() {
        let p = Self.plan(Self.daily([0, 1, 2, 10, 20, 35, 40, 50]), keepLast: 4)
        #expect(p.refusal == nil)
        Self.expect(p, [([0, 1, 2, 10], .keepLast(4)), ([20], .keepDays(30))], deleted: [35, 40, 50])
    }

    @Test func aWeekOfFailedBackupsDeletesOnlyWhatTheWindowAllows() {
        // Days 0–6 failed: the newest backup is 7 d 9.5 h old, still within keep_days.
        let p = Self.plan(Self.daily(7..<60))
        #expect(p.refusal == nil)
        Self.expect(p, [(Array(7..<14), .keepLast(7)), (Array(14..<30), .keepDays(30))], deleted: Array(30..<60))
    }

    @Test func keepLastIsAFloorBeyondTheWindow() {
        // Eight days failed with keep_days = 10: only days 8 and 9 are within the window, yet seven remain.
        let p = Self.plan(Self.daily(8..<40), keepDays: 10, keepLast: 7)
        #expect(p.refusal == nil)
        Self.expect(p, [(Array(8..<15), .keepLast(7))], deleted: Array(15..<40), keepDays: 10)
        #expect(p.kept.count == 7)
    }

    @Test func onlyBackupsOlderThanTheWindowIsRefusedAndNothingIsDeleted() {
        let p = Self.plan(Self.daily(31..<60))
        #expect(p.refusal == .newestTooOld(id: Self.name(31), startedAt: Self.date("2026-11-04T02:30:00Z"), keepDays: 30))
        #expect(p.deleted.isEmpty)
        #expect(p.kept.count == 29)
        #expect(p.decisions.allSatisfy { $0.reason == .refused })
        #expect(p.refusal?.description == "the newest backup (2026-11-04, started 2026-11-04T02:30:00Z) is older than keep_days = 30: backups are failing; deleting nothing")
    }

    @Test func noBackupsIsAnEmptyPlan() {
        let p = Self.plan([])
        #expect(p.decisions.isEmpty && p.refusal == nil)
    }

    @Test func grandfatherFatherSon() {
        // keep_days = 1 and keep_last = 1 keep only today; the calendar rules keep the rest.
        // 2026-12-05 is a Saturday of ISO week 49 (Nov 30 – Dec 6).
        let p = Self.plan(Self.daily(0..<60), keepDays: 1, keepLast: 1, daily: 7, weekly: 4, monthly: 3)
        #expect(p.refusal == nil)
        let r = Self.reasons(p)
        let kept: [String: RetentionReason] = [
            "2026-12-05": .keepLast(1),
            "2026-12-04": .keepDaily(7, period: "2026-12-04"), "2026-12-03": .keepDaily(7, period: "2026-12-03"),
            "2026-12-02": .keepDaily(7, period: "2026-12-02"), "2026-12-01": .keepDaily(7, period: "2026-12-01"),
            "2026-11-30": .keepDaily(7, period: "2026-11-30"), "2026-11-29": .keepDaily(7, period: "2026-11-29"),
            // Weeks 49 and 48 are already kept by Dec 5 and Nov 29 (Sunday, end of week 48).
            "2026-11-22": .keepWeekly(4, period: "2026-W47"), "2026-11-15": .keepWeekly(4, period: "2026-W46"),
            // December and November are already kept; October's newest is the 31st.
            "2026-10-31": .keepMonthly(3, period: "2026-10"),
        ]
        #expect(r.filter { $0.value.keeps } == kept)
        #expect(p.deleted.count == 50)
        #expect(p.deleted.allSatisfy { $0.reason == .expired(keepDays: 1) })
        #expect(kept["2026-11-22"]!.description == "newest of week 2026-W47 (keep_weekly = 4)")
    }

    @Test func theNewestOfEachDayIsKept() {
        // Two backups a day: keep_daily keeps the later one of each day.
        let p = Self.plan(Self.daily(0..<10) + Self.daily(0..<10, at: "08:00").map { var c = $0; c.id += "/08"; return c },
                          keepDays: 1, keepLast: 1, daily: 3)
        let kept = Dictionary(uniqueKeysWithValues: p.kept.map { ($0.candidate.id, $0.reason) })
        #expect(kept == ["2026-12-05/08": .keepLast(1), "2026-12-05": .keepDays(1),
                         "2026-12-04/08": .keepDaily(3, period: "2026-12-04"), "2026-12-03/08": .keepDaily(3, period: "2026-12-03")])
    }

    @Test func daysAreTheJobsTimeZones() {
        // 2026-12-03T23:30Z is already Dec 4 in Auckland (UTC+13): the day buckets differ.
        let b = [RetentionCandidate(id: "late", startedAt: Self.date("2026-12-03T23:30:00Z")),
                 RetentionCandidate(id: "morning", startedAt: Self.date("2026-12-03T10:00:00Z")),
                 RetentionCandidate(id: "before", startedAt: Self.date("2026-12-02T10:00:00Z"))]
        let utc = Self.reasons(Self.plan(b, keepDays: 2, keepLast: 1, daily: 2))
        #expect(utc == ["late": .keepLast(1), "before": .keepDaily(2, period: "2026-12-02"), "morning": .expired(keepDays: 2)])
        let akl = Self.reasons(Self.plan(b, keepDays: 2, keepLast: 1, daily: 2, tz: TimeZone(identifier: "Pacific/Auckland")!))
        #expect(akl == ["late": .keepLast(1), "morning": .keepDaily(2, period: "2026-12-03"), "before": .expired(keepDays: 2)])
    }

    @Test func isoWeeksCrossTheYear() {
        // 2027-01-01 (Friday) belongs to ISO week 2026-W53; 2026-12-27 (Sunday) to 2026-W52.
        let b = [RetentionCandidate(id: "jan1", startedAt: Self.date("2027-01-01T02:00:00Z")),
                 RetentionCandidate(id: "dec28", startedAt: Self.date("2026-12-28T02:00:00Z")),
                 RetentionCandidate(id: "dec27", startedAt: Self.date("2026-12-27T02:00:00Z"))]
        let r = Self.reasons(Self.plan(b, keepDays: 1, keepLast: 1, weekly: 2, now: Self.date("2027-01-01T12:00:00Z")))
        #expect(r == ["jan1": .keepLast(1), "dec28": .expired(keepDays: 1), "dec27": .keepWeekly(2, period: "2026-W52")])
    }

    @Test func aClockSkewedBackwardsNeverDeletesTheNewest() {
        // The backups were made by hosts whose clocks are right, up to Dec 8; this host thinks it is Dec 5.
        let backups = (0..<60).map { n -> RetentionCandidate in
            let d = Self.date("2026-12-08T02:30:00Z").addingTimeInterval(-Double(n) * 86_400)
            return RetentionCandidate(id: Self.day(d), startedAt: d)
        }
        let p = Self.plan(backups)
        #expect(p.refusal == nil)
        let r = Self.reasons(p)
        for d in ["2026-12-08", "2026-12-07", "2026-12-06"] { #expect(r[d] == .startedInTheFuture) }
        for d in ["2026-12-05", "2026-12-04", "2026-12-03", "2026-12-02"] { #expect(r[d] == .keepLast(7)) }
        // Ages are measured from this host's clock: Nov 6 (29 d 9.5 h) is kept, Nov 5 is not.
        #expect(r["2026-11-06"] == .keepDays(30))
        #expect(r["2026-11-05"] == .expired(keepDays: 30))
        #expect(p.kept.count == 33 && p.deleted.count == 27)
        #expect(p.kept.map(\.candidate.id).prefix(7) == ["2026-12-08", "2026-12-07", "2026-12-06", "2026-12-05", "2026-12-04", "2026-12-03", "2026-12-02"])

        // Skewed back before every backup: everything is in the future, nothing deleted.
        let early = Self.plan(backups, now: Self.date("2026-01-01T00:00:00Z"))
        #expect(early.refusal == nil && early.deleted.isEmpty)
        #expect(early.decisions.prefix(7).allSatisfy { $0.reason == .startedInTheFuture })

        // Skewed forward past the window: every backup looks old, so the plan is refused.
        let late = Self.plan(backups, now: Self.date("2027-06-01T00:00:00Z"))
        #expect(late.deleted.isEmpty)
        #expect(late.refusal == .newestTooOld(id: "2026-12-08", startedAt: Self.date("2026-12-08T02:30:00Z"), keepDays: 30))
    }

    @Test func theNewestVerifiedBackupIsNeverDeleted() {
        // Only days 45 and 50 were verified: 45 is the newest verified and stays; 50 goes.
        let p = Self.plan(Self.daily(0..<60, verified: [45, 50]))
        Self.expect(p, [(Array(0..<7), .keepLast(7)), (Array(7..<30), .keepDays(30)), ([45], .newestVerified)], deleted: Array(30..<45) + Array(46..<60))
        #expect(p.kept.count == 31)
        // A verified backup inside the window is kept by the window (the first rule that applies).
        let q = Self.plan(Self.daily(0..<60, verified: [3]))
        #expect(Self.reasons(q)[Self.name(3)] == .keepLast(7))
        #expect(q.kept.count == 30)
    }
}
