import Foundation
import Testing
@testable import Alerts

/// The alert decisions under a test clock: no sleeps, every instant given.
@Suite struct AlertStateMachineTests {
    let t0 = Date(timeIntervalSince1970: 1_780_000_000)
    func at(_ minutes: Double) -> Date { t0.addingTimeInterval(minutes * 60) }
    func ran(_ job: String = "db", kind: String = "backup", failed: Bool, _ m: Double, error: String? = "pg_dump: connection refused",
             refusal: Bool = false) -> AlertFact {
        .runEnded(job: job, kind: kind, failed: failed, error: failed ? error : nil, at: at(m), runID: Int64(m), refusal: refusal)
    }

    @Test func oneAlertPerFlipAndOneRecoveryNotice() {
        var m = AlertStateMachine(rules: AlertRules(remindEvery: 6 * 3600))
        #expect(m.handle(ran(failed: false, 0)).isEmpty)                 // ok from the start: nothing to say
        let first = m.handle(ran(failed: true, 60))
        #expect(first.map(\.kind) == [.failed])
        #expect(first.first?.what == "backup failed: pg_dump: connection refused")
        #expect(first.first?.since == at(60) && first.first?.lastSuccess == at(0))
        #expect(first.first?.command == "cairn history db")
        #expect(m.handle(ran(failed: true, 120)).isEmpty)               // still failing, before remind_every
        let back = m.handle(ran(failed: false, 180))
        #expect(back.map(\.kind) == [.recovered])
        #expect(back.first?.since == at(60) && back.first?.lastSuccess == at(180))
        #expect(back.first?.what == "backup succeeded again after 2 failed run(s)")
        #expect(m.handle(ran(failed: false, 240)).isEmpty)
        #expect(m.handle(ran(failed: true, 300)).map(\.kind) == [.failed])   // a new streak: a new alert
    }

    /// A job failing every minute for a day: one alert and a reminder every
    /// 6 hours (at +6 h, +12 h, +18 h), counted.
    @Test func noStormWhenAJobFailsEveryMinuteForADay() {
        var m = AlertStateMachine(rules: AlertRules(remindEvery: 6 * 3600))
        var events: [AlertEvent] = []
        for minute in 0..<(24 * 60) {
            events += m.handle(ran(failed: true, Double(minute)))
            events += m.tick(now: at(Double(minute) + 0.5))
        }
        #expect(events.map(\.kind) == [.failed, .reminder, .reminder, .reminder])
        #expect(events.dropFirst().map(\.at) == [at(360), at(720), at(1080)])
        #expect(events.last?.what.hasPrefix("still failing: 1081 failed run(s) since ") == true, "\(events.last?.what ?? "")")
    }

    /// A job that runs daily and failed: reminders come from the clock (`tick`, woken at `nextDue`), not from new runs.
    @Test func remindersAtTheConfiguredIntervalWithoutNewRuns() {
        var m = AlertStateMachine(rules: AlertRules(remindEvery: 3600))
        _ = m.handle(ran(failed: true, 0))
        #expect(m.nextDue == at(60))
        #expect(m.tick(now: at(59)).isEmpty)
        #expect(m.tick(now: at(60)).map(\.kind) == [.reminder])
        #expect(m.nextDue == at(120))
        #expect(m.tick(now: at(61)).isEmpty)
        #expect(m.tick(now: at(125)).map(\.kind) == [.reminder])
        var never = AlertStateMachine(rules: AlertRules(remindEvery: nil))
        _ = never.handle(ran(failed: true, 0))
        #expect(never.nextDue == nil && never.tick(now: at(100_000)).isEmpty)
    }

    /// The state survives a restart (encoded as the store keeps it): no repeated alert, the recovery still comes.
    @Test func stateSurvivesARestart() throws {
        var m = AlertStateMachine(rules: AlertRules(remindEvery: 6 * 3600))
        _ = m.handle(ran(failed: false, 0))
        #expect(m.handle(ran(failed: true, 10)).count == 1)
        let saved = try JSONEncoder().encode(m.jobs)
        var restarted = AlertStateMachine(rules: m.rules, jobs: try JSONDecoder().decode([String: AlertJobState].self, from: saved))
        #expect(restarted == m)
        #expect(restarted.handle(ran(failed: true, 20)).isEmpty)
        let back = restarted.handle(ran(failed: false, 30))
        #expect(back.map(\.kind) == [.recovered] && back.first?.since == at(10))
    }

    @Test func verifyFailuresAndRetentionRefusalsHaveTheirOwnKinds() {
        var m = AlertStateMachine(rules: AlertRules())
        #expect(m.handle(ran("check", kind: "verify", failed: true, 0, error: "table users: 10 rows in the manifest, 9 restored")).map(\.kind) == [.verifyFailed])
        #expect(m.handle(ran("prune", kind: "retention", failed: true, 0, error: "newest backup is 31 days old", refusal: true)).map(\.kind) == [.retentionRefused])
    }

    @Test func aMissedInstantIsReportedOnce() {
        var m = AlertStateMachine(rules: AlertRules())
        let missed = m.handle(.missed(job: "db", scheduledAt: at(0), at: at(90)))
        #expect(missed.map(\.kind) == [.missed] && missed.first?.since == at(0))
        #expect(missed.first?.what.contains("did not start") == true)
        #expect(m.handle(.missed(job: "db", scheduledAt: at(0), at: at(91))).isEmpty)     // again after a restart: not twice
        #expect(m.handle(.missed(job: "db", scheduledAt: at(-60), at: at(92))).isEmpty)   // an older instant
        #expect(m.handle(.missed(job: "db", scheduledAt: at(1440), at: at(1500))).count == 1)
    }

    /// The newest successful backup older than stale_after: one alert per stale backup; a new success clears it.
    @Test func aStaleBackupIsAlertedOncePerBackup() {
        var m = AlertStateMachine(rules: AlertRules(staleAfter: ["db": 26 * 3600]))
        _ = m.handle(ran(failed: false, 0))
        #expect(m.nextDue == at(26 * 60))
        #expect(m.tick(now: at(25 * 60)).isEmpty)
        let stale = m.tick(now: at(26 * 60))
        #expect(stale.map(\.kind) == [.stale])
        #expect(stale.first?.what == "the newest successful backup is 26h old (stale_after 26h)")
        #expect(m.tick(now: at(40 * 60)).isEmpty)
        #expect(m.nextDue == nil)
        _ = m.handle(ran(failed: false, 41 * 60))
        #expect(m.tick(now: at(41 * 60 + 1)).isEmpty)
        #expect(m.tick(now: at(67 * 60)).map(\.kind) == [.stale])
    }

    /// A probe alerts after `fail_after` consecutive failures, since the first of them; one success resets the count.
    @Test func aProbeAlertsAfterFailAfterConsecutiveFailures() {
        var m = AlertStateMachine(rules: AlertRules(failAfter: ["web": 3]))
        func probe(_ failed: Bool, _ minute: Double) -> AlertFact {
            .runEnded(job: "web", kind: "probe", failed: failed, error: failed ? "GET https://example/api/health: 503" : nil, at: at(minute), runID: nil, refusal: false)
        }
        #expect(m.handle(probe(true, 0)).isEmpty && m.handle(probe(true, 1)).isEmpty)
        #expect(m.handle(probe(false, 2)).isEmpty)                     // a blip: no alert, and no recovery notice either
        #expect(m.handle(probe(true, 3)).isEmpty && m.handle(probe(true, 4)).isEmpty)
        let down = m.handle(probe(true, 5))
        #expect(down.map(\.kind) == [.failed] && down.first?.since == at(3) && down.first?.jobKind == "probe")
        #expect(down.first?.what == "probe failed 3 times in a row: GET https://example/api/health: 503")
        #expect(m.handle(probe(false, 6)).map(\.kind) == [.recovered])
    }
}
