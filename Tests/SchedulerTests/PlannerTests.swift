import Config
import Cron
import Foundation
import Testing
@testable import Scheduler

/// The scheduler's decisions, driven by a test clock: no sleeping.
@Suite struct PlannerTests {
    let utc = TimeZone(identifier: "UTC")!

    func t(_ s: String) -> Date {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)!
    }

    func policy(_ name: String, _ cron: String?, tz: TimeZone? = nil, retries: Int = 0,
                backoff: Duration = .seconds(60), overlap: OverlapPolicy = .skip, catchUp: Duration = .zero,
                jitter: Duration = .zero, enabled: Bool = true) throws -> JobPolicy {
        JobPolicy(name: name, schedule: try cron.map { try CronExpression($0) }, timeZone: tz ?? utc,
                  retries: retries, retryBackoff: backoff, overlap: overlap, catchUp: catchUp, randomDelay: jitter,
                  enabled: enabled)
    }

    func starts(_ actions: [PlannerAction]) -> [PlannedRun] {
        actions.compactMap { if case .start(let r) = $0 { return r } else { return nil } }
    }

    func skips(_ actions: [PlannerAction]) -> [(String, Date?, String)] {
        actions.compactMap {
            if case .skip(let j, let at, _, let why) = $0 { return (j, at, why) }
            if case .missed(let j, let at, let why) = $0 { return (j, at, why) }
            return nil
        }
    }

    @Test func runsAtEachInstantAndSleepsUntilTheNext() throws {
        var p = Planner(policies: [try policy("db", "*/5 * * * *")], maxConcurrent: 2, now: t("2026-11-27T10:01:00Z"), seed: 1)
        #expect(p.nextWake == t("2026-11-27T10:05:00Z"))
        #expect(p.advance(to: t("2026-11-27T10:04:59Z")).isEmpty)
        let a = p.advance(to: t("2026-11-27T10:05:00Z"))
        let run = try #require(starts(a).first)
        #expect(starts(a).count == 1)
        #expect(run.job == "db" && run.trigger == .schedule && run.scheduledAt == t("2026-11-27T10:05:00Z") && run.attempt == 1)
        #expect(p.nextWake == t("2026-11-27T10:10:00Z"))
        #expect(p.finished(runID: run.id, .succeeded, now: t("2026-11-27T10:06:00Z")).isEmpty)
        #expect(p.isBusy("db") == false)
        #expect(starts(p.advance(to: t("2026-11-27T10:10:00Z"))).map(\.scheduledAt) == [t("2026-11-27T10:10:00Z")])
    }

    @Test func onDemandOnlyAndDisabledJobsAreNeverScheduled() throws {
        var p = Planner(policies: [try policy("manual", nil), try policy("off", "* * * * *", enabled: false)],
                        maxConcurrent: 2, now: t("2026-11-27T10:00:00Z"), seed: 1)
        #expect(p.nextWake == nil)
        #expect(p.advance(to: t("2026-11-28T10:00:00Z")).isEmpty)
        let (d, a) = p.requestManual("off", now: t("2026-11-28T10:00:00Z"))
        guard case .accepted(let run) = d else { Issue.record("expected accepted, got \(d)"); return }
        #expect(run.trigger == .manual && run.scheduledAt == nil)
        #expect(starts(a) == [run])
    }

    @Test func catchUpRunsTheLatestMissedInstantOnceWithinTheWindow() throws {
        let hourly = try policy("db", "0 * * * *", catchUp: .seconds(6 * 3600))
        // Last run 02:00; down until 05:30: 03:00, 04:00, 05:00 missed, one catch-up run for 05:00.
        var p = Planner(policies: [hourly], maxConcurrent: 2, now: t("2026-11-27T05:30:00Z"),
                        lastScheduled: ["db": t("2026-11-27T02:00:00Z")], seed: 1)
        let a = p.advance(to: t("2026-11-27T05:30:00Z"))
        #expect(starts(a).map(\.trigger) == [.catchUp])
        #expect(starts(a).map(\.scheduledAt) == [t("2026-11-27T05:00:00Z")])
        #expect(p.nextWake == t("2026-11-27T06:00:00Z"))

        // Outside the window: nothing.
        let short = try policy("db", "0 2 * * *", catchUp: .seconds(1800))
        var q = Planner(policies: [short], maxConcurrent: 2, now: t("2026-11-28T03:00:00Z"),
                        lastScheduled: ["db": t("2026-11-27T02:00:00Z")], seed: 1)
        #expect(starts(q.advance(to: t("2026-11-28T03:00:00Z"))).isEmpty)

        // Already ran the latest instant (a quick restart): nothing.
        var r = Planner(policies: [hourly], maxConcurrent: 2, now: t("2026-11-27T05:00:30Z"),
                        lastScheduled: ["db": t("2026-11-27T05:00:00Z")], seed: 1)
        #expect(starts(r.advance(to: t("2026-11-27T05:00:30Z"))).isEmpty)

        // No history (first start) or catch_up = 0: nothing.
        var s = Planner(policies: [hourly], maxConcurrent: 2, now: t("2026-11-27T05:30:00Z"), seed: 1)
        #expect(starts(s.advance(to: t("2026-11-27T05:30:00Z"))).isEmpty)
        var u = Planner(policies: [try policy("db", "0 * * * *")], maxConcurrent: 2, now: t("2026-11-27T05:30:00Z"),
                        lastScheduled: ["db": t("2026-11-27T02:00:00Z")], seed: 1)
        #expect(starts(u.advance(to: t("2026-11-27T05:30:00Z"))).isEmpty)
    }

    @Test func overlapSkipRecordsTheSkippedInstant() throws {
        var p = Planner(policies: [try policy("db", "* * * * *")], maxConcurrent: 2, now: t("2026-11-27T10:00:30Z"), seed: 1)
        let run = try #require(starts(p.advance(to: t("2026-11-27T10:01:00Z"))).first)
        let a = p.advance(to: t("2026-11-27T10:02:00Z"))
        #expect(starts(a).isEmpty)
        let s = skips(a)
        #expect(s.count == 1 && s.first?.1 == t("2026-11-27T10:02:00Z"))
        #expect(s.first?.2.contains("still running") == true)
        #expect(starts(p.finished(runID: run.id, .succeeded, now: t("2026-11-27T10:02:30Z"))).isEmpty)
        #expect(starts(p.advance(to: t("2026-11-27T10:03:00Z"))).count == 1)
    }

    @Test func overlapQueueRunsOneQueuedRunAfterTheCurrentOne() throws {
        var p = Planner(policies: [try policy("db", "* * * * *", overlap: .queue)], maxConcurrent: 2,
                        now: t("2026-11-27T10:00:30Z"), seed: 1)
        let first = try #require(starts(p.advance(to: t("2026-11-27T10:01:00Z"))).first)
        #expect(p.advance(to: t("2026-11-27T10:02:00Z")).isEmpty)            // queued
        #expect(p.queuedRuns.map(\.scheduledAt) == [t("2026-11-27T10:02:00Z")])
        let a = p.advance(to: t("2026-11-27T10:03:00Z"))                     // queue full: skipped
        #expect(skips(a).map(\.1) == [t("2026-11-27T10:03:00Z")])
        let b = p.finished(runID: first.id, .succeeded, now: t("2026-11-27T10:03:10Z"))
        #expect(starts(b).map(\.scheduledAt) == [t("2026-11-27T10:02:00Z")])
        // Never two at once.
        #expect(p.runningRuns.count == 1)
    }

    @Test func manualRunsFollowTheOverlapPolicy() throws {
        var p = Planner(policies: [try policy("skipper", "0 * * * *"), try policy("queuer", "0 * * * *", overlap: .queue)],
                        maxConcurrent: 4, now: t("2026-11-27T09:59:00Z"), seed: 1)
        let runs = starts(p.advance(to: t("2026-11-27T10:00:00Z")))
        #expect(runs.count == 2)
        let (d1, _) = p.requestManual("skipper", now: t("2026-11-27T10:00:05Z"))
        guard case .refused(let why) = d1 else { Issue.record("expected refused, got \(d1)"); return }
        #expect(why.contains("already running"))
        let (d2, a2) = p.requestManual("queuer", now: t("2026-11-27T10:00:05Z"))
        guard case .queued(let q) = d2 else { Issue.record("expected queued, got \(d2)"); return }
        #expect(a2.isEmpty)
        // A second request while one is queued is served by the queued run, not a third run.
        let (d3, _) = p.requestManual("queuer", now: t("2026-11-27T10:00:06Z"))
        #expect(d3 == .queued(q))
        #expect(p.queuedRuns == [q])
        let queuerRun = try #require(runs.first { $0.job == "queuer" })
        let after = p.finished(runID: queuerRun.id, .succeeded, now: t("2026-11-27T10:01:00Z"))
        #expect(starts(after) == [q])
        let (d4, _) = p.requestManual("nope", now: t("2026-11-27T10:01:00Z"))
        #expect(d4 == .refused("no job named 'nope'"))
    }

    /// A run the executor ended at its timeout counts as a failure: retried after the backoff.
    @Test func timedOutRunCountsAsAFailure() throws {
        var p = Planner(policies: [try policy("db", "0 * * * *", retries: 1, backoff: .seconds(30))],
                        maxConcurrent: 2, now: t("2026-11-27T09:59:00Z"), seed: 1)
        let run = try #require(starts(p.advance(to: t("2026-11-27T10:00:00Z"))).first)
        #expect(p.nextWake == t("2026-11-27T11:00:00Z"))                     // no wake-up of its own for a timeout
        let b = p.finished(runID: run.id, .timedOut, now: t("2026-11-27T10:10:02Z"))
        var retry = run
        retry.attempt = 2
        #expect(b == [.retryScheduled(retry, at: t("2026-11-27T10:10:32Z"))])
    }

    /// Instants that passed while the daemon was down: the latest is reported
    /// missed, unless catch-up runs it; jobs never run on schedule report nothing.
    @Test func instantsMissedWhileDownAreReported() throws {
        let p = Planner(policies: [try policy("db", "0 * * * *"), try policy("late", "0 * * * *", catchUp: .seconds(3600)),
                                   try policy("new", "0 * * * *"), try policy("off", "0 * * * *", enabled: false)],
                        maxConcurrent: 2, now: t("2026-11-27T10:30:00Z"),
                        lastScheduled: ["db": t("2026-11-27T07:00:00Z"), "late": t("2026-11-27T07:00:00Z"), "off": t("2026-11-27T07:00:00Z")],
                        seed: 1)
        #expect(p.missedWhileDown.map(\.job) == ["db"])
        #expect(p.missedWhileDown.first?.instant == t("2026-11-27T10:00:00Z"))
        let up = Planner(policies: [try policy("db", "0 * * * *")], maxConcurrent: 1, now: t("2026-11-27T10:30:00Z"),
                         lastScheduled: ["db": t("2026-11-27T10:00:00Z")], seed: 1)
        #expect(up.missedWhileDown.isEmpty)
    }

    @Test func retriesBackOffExponentiallyThenGiveUp() throws {
        var p = Planner(policies: [try policy("db", "0 3 * * *", retries: 2, backoff: .seconds(60))], maxConcurrent: 2,
                        now: t("2026-11-27T02:00:00Z"), seed: 1)
        let run = try #require(starts(p.advance(to: t("2026-11-27T03:00:00Z"))).first)
        let a = p.finished(runID: run.id, .failed, now: t("2026-11-27T03:00:10Z"))
        #expect(a.count == 1)
        guard case .retryScheduled(let r2, let at2) = a[0] else { Issue.record("expected retry"); return }
        #expect(r2.id == run.id && r2.attempt == 2 && at2 == t("2026-11-27T03:01:10Z"))
        #expect(p.isBusy("db"))
        #expect(p.advance(to: t("2026-11-27T03:01:09Z")).isEmpty)
        let s2 = starts(p.advance(to: t("2026-11-27T03:01:10Z")))
        #expect(s2.map(\.attempt) == [2])
        let b = p.finished(runID: run.id, .failed, now: t("2026-11-27T03:01:20Z"))
        guard case .retryScheduled(let r3, let at3) = b.first else { Issue.record("expected retry"); return }
        #expect(r3.attempt == 3 && at3 == t("2026-11-27T03:03:20Z"))           // 120 s
        #expect(starts(p.advance(to: at3)).map(\.attempt) == [3])
        #expect(p.finished(runID: run.id, .failed, now: t("2026-11-27T03:04:00Z")).isEmpty)   // gave up
        #expect(!p.isBusy("db"))
        // Shutdown cancellation is never retried.
        var q = Planner(policies: [try policy("db", "0 3 * * *", retries: 2)], maxConcurrent: 2, now: t("2026-11-27T02:00:00Z"), seed: 1)
        let r = try #require(starts(q.advance(to: t("2026-11-27T03:00:00Z"))).first)
        #expect(q.finished(runID: r.id, .cancelled, now: t("2026-11-27T03:00:05Z")).isEmpty)
    }

    @Test func jitterStaysWithinRandomDelay() throws {
        let p0 = try policy("db", "0 3 * * *", jitter: .seconds(90))
        var dues: Set<Date> = []
        for seed in 0..<300 as Range<UInt64> {
            var p = Planner(policies: [p0], maxConcurrent: 1, now: t("2026-11-27T00:00:00Z"), seed: seed)
            let up = try #require(p.upcoming.first)
            #expect(up.instant == t("2026-11-27T03:00:00Z"))
            #expect(up.due >= up.instant && up.due <= up.instant.addingTimeInterval(90))
            dues.insert(up.due)
            // Not due before the jittered time; due at it, with the nominal instant recorded.
            if up.due > up.instant { #expect(p.advance(to: up.due.addingTimeInterval(-0.001)).isEmpty) }
            #expect(starts(p.advance(to: up.due)).map(\.scheduledAt) == [up.instant])
        }
        #expect(dues.count > 100)   // actually random
    }

    @Test func globalConcurrencyLimitQueuesDueRunsInOrder() throws {
        let jobs = try ["a", "b", "c"].map { try policy($0, "0 * * * *") }
        var p = Planner(policies: jobs, maxConcurrent: 2, now: t("2026-11-27T09:30:00Z"), seed: 1)
        let a = starts(p.advance(to: t("2026-11-27T10:00:00Z")))
        #expect(a.map(\.job) == ["a", "b"])
        #expect(p.waitingRuns.map(\.job) == ["c"])
        let b = starts(p.finished(runID: a[1].id, .succeeded, now: t("2026-11-27T10:05:00Z")))
        #expect(b.map(\.job) == ["c"] && b.first?.scheduledAt == t("2026-11-27T10:00:00Z"))
    }

    @Test func dstSpringForwardAndFallBack() throws {
        let ny = TimeZone(identifier: "America/New_York")!
        // 02:30 does not exist on 2026-03-08: the run is at 03:00 EDT (07:00Z).
        var p = Planner(policies: [try policy("db", "30 2 * * *", tz: ny)], maxConcurrent: 1, now: t("2026-03-07T12:00:00Z"), seed: 1)
        #expect(p.upcoming.first?.instant == t("2026-03-08T07:00:00Z"))
        let r1 = try #require(starts(p.advance(to: t("2026-03-08T07:00:00Z"))).first)
        #expect(r1.scheduledAt == t("2026-03-08T07:00:00Z"))
        _ = p.finished(runID: r1.id, .succeeded, now: t("2026-03-08T07:10:00Z"))
        #expect(p.upcoming.first?.instant == t("2026-03-09T06:30:00Z"))      // 02:30 EDT
        // 01:30 happens twice on 2026-11-01: a fixed-time job runs once, at the first (EDT, 05:30Z).
        var q = Planner(policies: [try policy("db", "30 1 * * *", tz: ny)], maxConcurrent: 1, now: t("2026-10-31T12:00:00Z"), seed: 1)
        #expect(q.upcoming.first?.instant == t("2026-11-01T05:30:00Z"))
        let r2 = try #require(starts(q.advance(to: t("2026-11-01T05:30:00Z"))).first)
        _ = q.finished(runID: r2.id, .succeeded, now: t("2026-11-01T05:31:00Z"))
        #expect(q.upcoming.first?.instant == t("2026-11-02T06:30:00Z"))
        // An hourly job follows real time: both 01:00 occurrences run.
        var h = Planner(policies: [try policy("h", "0 * * * *", tz: ny)], maxConcurrent: 1, now: t("2026-11-01T04:30:00Z"), seed: 1)
        var instants: [Date] = []
        for hour in 5...7 {
            let at = t("2026-11-01T0\(hour):00:00Z")
            for r in starts(h.advance(to: at)) { instants.append(r.scheduledAt!); _ = h.finished(runID: r.id, .succeeded, now: at) }
        }
        #expect(instants == [t("2026-11-01T05:00:00Z"), t("2026-11-01T06:00:00Z"), t("2026-11-01T07:00:00Z")])
    }

    @Test func aClockJumpRunsTheLatestInstantOnceOrSkipsItWhenTooOld() throws {
        var p = Planner(policies: [try policy("db", "*/10 * * * *")], maxConcurrent: 1, now: t("2026-11-27T10:00:00Z"), seed: 1)
        // Clock stepped forward 35 minutes: 10:10, 10:20, 10:30 passed; only 10:30 runs (5 min late).
        let a = p.advance(to: t("2026-11-27T10:35:00Z"))
        #expect(starts(a).map(\.scheduledAt) == [t("2026-11-27T10:30:00Z")])
        #expect(p.upcoming.first?.instant == t("2026-11-27T10:40:00Z"))
        // Suspended for hours: the last instant is far too old → recorded as skipped, not run.
        var q = Planner(policies: [try policy("db", "0 3 * * *")], maxConcurrent: 1, now: t("2026-11-27T02:00:00Z"), seed: 1)
        let b = q.advance(to: t("2026-11-27T09:00:00Z"))
        #expect(starts(b).isEmpty)
        #expect(skips(b).first?.2.contains("missed by") == true)
        #expect(q.upcoming.first?.instant == t("2026-11-28T03:00:00Z"))
    }

    @Test func reloadKeepsRunningRunsAndReschedulesChangedJobs() throws {
        var p = Planner(policies: [try policy("a", "0 * * * *"), try policy("b", "0 * * * *")], maxConcurrent: 2,
                        now: t("2026-11-27T09:30:00Z"), seed: 1)
        let runs = starts(p.advance(to: t("2026-11-27T10:00:00Z")))
        #expect(runs.count == 2)
        let a = p.reconfigure(policies: [try policy("a", "*/15 * * * *")], maxConcurrent: 1, now: t("2026-11-27T10:01:00Z"))
        #expect(a.isEmpty)
        #expect(p.runningRuns.count == 2)                                      // b goes on
        #expect(p.upcoming.map(\.job) == ["a"])
        #expect(p.upcoming.first?.instant == t("2026-11-27T10:15:00Z"))
        #expect(p.finished(runID: runs[1].id, .succeeded, now: t("2026-11-27T10:02:00Z")).isEmpty)
    }

    @Test func stopDropsEverythingPending() throws {
        var p = Planner(policies: [try policy("a", "* * * * *", overlap: .queue)], maxConcurrent: 1, now: t("2026-11-27T09:59:30Z"), seed: 1)
        let r = try #require(starts(p.advance(to: t("2026-11-27T10:00:00Z"))).first)
        _ = p.advance(to: t("2026-11-27T10:01:00Z"))
        #expect(p.queuedRuns.count == 1)
        #expect(p.stop() == [r])
        #expect(p.nextWake == nil)
        #expect(p.finished(runID: r.id, .cancelled, now: t("2026-11-27T10:01:30Z")).isEmpty)
        #expect(p.nextWake == nil)
    }
}
