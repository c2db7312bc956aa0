import Foundation
import Testing
import Cron

/// Time-zone edge cases beyond the fixture; expected values are cronsim's.
@Suite struct DSTSemanticsTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let expression: String
        let zone: String
        let start: String
        let expected: [String]
        let why: String
        var testDescription: String { "\(expression) in \(zone): \(why)" }
    }

    static let cases: [Case] = [
        Case(expression: "10 0 * * *", zone: "Asia/Kathmandu", start: "1985-12-31T12:00:00+05:30",
             expected: ["1986-01-01T00:15:00+05:45", "1986-01-02T00:10:00+05:45", "1986-01-03T00:10:00+05:45"],
             why: "fixed time in the 15-minute gap of 1986 (+05:30 to +05:45) runs at the end of the gap"),
        Case(expression: "*/5 * * * *", zone: "Asia/Kathmandu", start: "1985-12-31T23:58:00+05:30",
             expected: ["1986-01-01T00:15:00+05:45", "1986-01-01T00:20:00+05:45", "1986-01-01T00:25:00+05:45"],
             why: "real-time job skips 00:00-00:14"),
        Case(expression: "*/30 0 * * *", zone: "America/Sao_Paulo", start: "2018-11-03T12:00:00-03:00",
             expected: ["2018-11-05T00:00:00-02:00", "2018-11-05T00:30:00-02:00", "2018-11-06T00:00:00-02:00"],
             why: "real-time job whose only times fall in a midnight gap skips that day"),
        Case(expression: "0,30 2 * * *", zone: "America/New_York", start: "2025-03-09T00:00:00-05:00",
             expected: ["2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00", "2025-03-10T02:30:00-04:00"],
             why: "two fixed times in one gap run once, at the end of the gap"),
        Case(expression: "45 1 * * *", zone: "Australia/Lord_Howe", start: "2025-04-05T12:00:00+11:00",
             expected: ["2025-04-06T01:45:00+11:00", "2025-04-07T01:45:00+10:30", "2025-04-08T01:45:00+10:30"],
             why: "30-minute fall-back: first occurrence only"),
        Case(expression: "*/15 * * * *", zone: "Australia/Lord_Howe", start: "2025-04-06T01:50:00+11:00",
             expected: ["2025-04-06T01:30:00+10:30", "2025-04-06T01:45:00+10:30", "2025-04-06T02:00:00+10:30"],
             why: "30-minute fall-back: real-time job runs in the repeated half hour"),
        Case(expression: "30 2 * * *", zone: "Australia/Sydney", start: "2025-10-04T12:00:00+10:00",
             expected: ["2025-10-05T03:00:00+11:00", "2025-10-06T02:30:00+11:00", "2025-10-07T02:30:00+11:00"],
             why: "southern-hemisphere spring-forward in October"),
        Case(expression: "30 2 * * *", zone: "Australia/Sydney", start: "2025-04-05T12:00:00+11:00",
             expected: ["2025-04-06T02:30:00+11:00", "2025-04-07T02:30:00+10:00", "2025-04-08T02:30:00+10:00"],
             why: "southern-hemisphere fall-back in April"),
        Case(expression: "0 */2 * * *", zone: "America/New_York", start: "2025-11-02T00:30:00-04:00",
             expected: ["2025-11-02T02:00:00-05:00", "2025-11-02T04:00:00-05:00", "2025-11-02T06:00:00-05:00"],
             why: "hour field starting with * follows real time"),
        Case(expression: "0 1-3 * * *", zone: "America/New_York", start: "2025-11-02T00:30:00-04:00",
             expected: ["2025-11-02T01:00:00-04:00", "2025-11-02T02:00:00-05:00", "2025-11-02T03:00:00-05:00"],
             why: "fixed hours: 01:00 runs once on the fall-back day"),
        Case(expression: "0 30 2 * * *", zone: "America/New_York", start: "2025-03-08T12:00:00-05:00",
             expected: ["2025-03-10T02:30:00-04:00", "2025-03-11T02:30:00-04:00"],
             why: "six-field expressions always follow real time: 02:30 in the gap is skipped"),
    ]

    static func instant(_ s: String) -> Date {
        guard let d = ISO8601DateFormatter().date(from: s) else { preconditionFailure("bad timestamp \(s)") }
        return d
    }

    @Test(arguments: cases)
    func nextInstantsFollowDebianCron(_ c: Case) throws {
        let e = try CronExpression(c.expression)
        let zone = try #require(TimeZone(identifier: c.zone))
        let got = e.nextInstants(after: Self.instant(c.start), in: zone, count: c.expected.count)
        #expect(got == c.expected.map(Self.instant))
    }

    /// cronsim returns 01:30 EDT here, an instant before the start; "strictly after" wins.
    @Test func startInSecondOccurrenceNeverReturnsAnEarlierInstant() throws {
        let e = try CronExpression("30 1 * * *")
        let ny = TimeZone(identifier: "America/New_York")!
        let start = Self.instant("2025-11-02T01:10:00-05:00")
        #expect(e.next(after: start, in: ny) == Self.instant("2025-11-03T01:30:00-05:00"))
        #expect(e.matches(Self.instant("2025-11-02T01:30:00-04:00"), in: ny))
        #expect(!e.matches(Self.instant("2025-11-02T01:30:00-05:00"), in: ny))
    }

    @Test func matchesFollowsTheGapRule() throws {
        let e = try CronExpression("30 2 * * *")
        let ny = TimeZone(identifier: "America/New_York")!
        #expect(e.matches(Self.instant("2025-03-09T03:00:00-04:00"), in: ny))
        #expect(e.matches(Self.instant("2025-03-09T03:00:00-04:00").addingTimeInterval(0.5), in: ny))
        #expect(!e.matches(Self.instant("2025-03-10T03:00:00-04:00"), in: ny))
        #expect(e.matches(Self.instant("2025-03-10T02:30:00-04:00"), in: ny))
        let hourly = try CronExpression("0 * * * *")
        #expect(hourly.matches(Self.instant("2025-11-02T01:00:00-05:00"), in: ny))
        #expect(hourly.matches(Self.instant("2025-03-09T03:00:00-04:00"), in: ny))
    }

    @Test func sameInstantsWhateverTheStartWithinAnInterval() throws {
        // next(after:) from any second between two fire instants gives the later one.
        let e = try CronExpression("0 2 * * *")
        let ny = TimeZone(identifier: "America/New_York")!
        let a = Self.instant("2025-03-09T03:00:00-04:00"), b = Self.instant("2025-03-10T02:00:00-04:00")
        for s in stride(from: a.timeIntervalSince1970, to: b.timeIntervalSince1970, by: 997) {
            #expect(e.next(after: Date(timeIntervalSince1970: s), in: ny) == b)
        }
    }
}
