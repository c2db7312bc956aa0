import Foundation
import Testing
@testable import Alerts

@Suite struct SMSBodies {
    static let t0 = Date(timeIntervalSince1970: 1_796_457_600) // 2026-12-05T08:00:00Z

    @Test func aShortFailureKeepsEveryPart() {
        let m = AlertMessage(event: .failed, job: "db", host: "backup-1", what: "pg_dump exited with status 1",
                             since: Self.t0, lastSuccess: Self.t0.addingTimeInterval(-86_400), time: Self.t0)
        let s = AlertRenderer.sms(m)
        #expect(s == "FAILED db@backup-1: pg_dump exited with status 1. Since 05 Dec 08:00Z. Last ok 04 Dec 08:00Z. cairn history db")
        #expect(GSM7.septets(s)! <= 160)
    }

    @Test func longErrorsAreCutToOneSegmentKeepingTheCommand() {
        let what = String(repeating: "connection to server at \"10.0.0.5\", port 5432 failed: Connection refused ", count: 5)
        let m = AlertMessage(event: .failed, job: "marketplace-nightly", host: "backup-1.accra.example.com", what: what,
                             since: Self.t0, lastSuccess: Self.t0, time: Self.t0)
        let s = AlertRenderer.sms(m)
        #expect(GSM7.septets(s)! <= 160)
        #expect(s.hasPrefix("FAILED marketplace-nightly@backup-1.accra.example.com: connection to server"))
        #expect(s.hasSuffix("cairn history marketplace-nightly"))
        #expect(s.contains("..."))
    }

    @Test func hugeJobNamesAndNonGSMCharactersStillFit() {
        let job = String(repeating: "j", count: 300)
        let m = AlertMessage(event: .reminder, job: job, host: "h€st{}", what: "échec: 日本語 — “quoted” [x]\nsecond line",
                             since: Self.t0, time: Self.t0)
        let s = AlertRenderer.sms(m)
        let n = try! #require(GSM7.septets(s))
        #expect(n <= 160)
        #expect(!s.contains("\n"))
    }

    @Test func everyEventFitsWithLongInputs() {
        for e in AlertMessage.Event.allCases {
            for len in [0, 10, 100, 159, 160, 161, 500] {
                let m = AlertMessage(event: e, job: String(repeating: "a", count: len / 3 + 1), host: String(repeating: "h", count: len / 4 + 1),
                                     what: String(repeating: "x[", count: len), since: Self.t0, lastSuccess: Self.t0, time: Self.t0)
                let s = AlertRenderer.sms(m)
                #expect((GSM7.septets(s) ?? 999) <= 160, "\(e) \(len): \(s)")
            }
        }
    }

    @Test func extensionCharactersCountTwice() {
        #expect(GSM7.septets("abc") == 3)
        #expect(GSM7.septets("{}") == 4)
        #expect(GSM7.septets("日") == nil)
        #expect(GSM7.truncate(String(repeating: "[", count: 100), to: 10) == "[[[...")
    }
}

@Suite struct SubjectsAndBodies {
    @Test func theSubjectIsOneLine() {
        let m = AlertMessage(event: .failed, job: "db", host: "h", what: "line one\r\nline two", time: Date(timeIntervalSince1970: 0))
        #expect(AlertRenderer.subject(m) == "[cairn] FAILED db on h: line one line two")
    }

    @Test func theBodyNamesJobHostSinceLastSuccessAndTheCommand() {
        let t = Date(timeIntervalSince1970: 1_796_457_600)
        let m = AlertMessage(event: .failed, job: "db", host: "backup-1", what: "pg_dump failed", since: t,
                             lastSuccess: t.addingTimeInterval(-3600), logTail: "ERROR: x\n", runID: 42, time: t)
        let text = AlertRenderer.text(m)
        #expect(text.contains("FAILED: job db on backup-1"))
        #expect(text.contains("Failing since: Sat, 05 Dec 2026 08:00 UTC"))
        #expect(text.contains("Last success:  Sat, 05 Dec 2026 07:00 UTC"))
        #expect(text.contains("Run:           42"))
        #expect(text.contains("See more:      cairn history db"))
        #expect(text.hasSuffix("Last lines of the log:\nERROR: x\n"))
    }
}
