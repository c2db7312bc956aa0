import Foundation
import Testing
import Cron

@Suite struct ParseErrorTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let expression: String
        let field: String
        let text: String
        let message: String
        var testDescription: String { expression }
    }

    static let cases: [Case] = [
        Case(expression: "0 0 * *", field: "expression", text: "0 0 * *",
             message: #"expression: "0 0 * *" has 4 fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (second minute hour day-of-month month day-of-week)"#),
        Case(expression: "0 0 0 * * * *", field: "expression", text: "0 0 0 * * * *",
             message: #"expression: "0 0 0 * * * *" has 7 fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (second minute hour day-of-month month day-of-week)"#),
        Case(expression: "   ", field: "expression", text: "",
             message: #"expression: "" has 0 fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (second minute hour day-of-month month day-of-week)"#),
        Case(expression: "@reboot", field: "expression", text: "@reboot",
             message: #"expression: "@reboot" is not a supported macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"#),
        Case(expression: "0 0 * * 8", field: "day-of-week", text: "8",
             message: #"day-of-week: "8" is out of range (0-7 or SUN-SAT)"#),
        Case(expression: "60 * * * *", field: "minute", text: "60",
             message: #"minute: "60" is out of range (0-59)"#),
        Case(expression: "0 0-24 * * *", field: "hour", text: "24",
             message: #"hour: "24" is out of range (0-23)"#),
        Case(expression: "0 0 0 * *", field: "day-of-month", text: "0",
             message: #"day-of-month: "0" is out of range (1-31)"#),
        Case(expression: "0 0 * 13 *", field: "month", text: "13",
             message: #"month: "13" is out of range (1-12 or JAN-DEC)"#),
        Case(expression: "60 0 0 * * *", field: "second", text: "60",
             message: #"second: "60" is out of range (0-59)"#),
        Case(expression: "*/0 * * * *", field: "minute", text: "*/0",
             message: #"minute: "*/0" has a bad step (must be a whole number of at least 1)"#),
        Case(expression: "0 1-10/x * * *", field: "hour", text: "1-10/x",
             message: #"hour: "1-10/x" has a bad step (must be a whole number of at least 1)"#),
        Case(expression: "0 0 * FOO *", field: "month", text: "FOO",
             message: #"month: "FOO" is not a valid value (1-12 or JAN-DEC)"#),
        Case(expression: "0 0 * * Mon-Fry", field: "day-of-week", text: "Fry",
             message: #"day-of-week: "Fry" is not a valid value (0-7, SUN-SAT, nL or d#n)"#),
        Case(expression: "0 0 * JUL-MAY *", field: "month", text: "JUL-MAY",
             message: #"month: "JUL-MAY" is a backwards range (the start must not be after the end)"#),
        Case(expression: "0 L * * *", field: "hour", text: "L",
             message: #"hour: "L" is not allowed here (L and LW are for day-of-month, nL such as 5L for day-of-week)"#),
        Case(expression: "0 0 5L * *", field: "day-of-month", text: "5L",
             message: #"day-of-month: "5L" is not allowed here (nL such as 5L is for day-of-week; day-of-month takes L, LW or nW)"#),
        Case(expression: "0 0 * * L", field: "day-of-week", text: "L",
             message: #"day-of-week: "L" needs a weekday before L (e.g. 5L or FRIL for the last Friday)"#),
        Case(expression: "0 0 L/2 * *", field: "day-of-month", text: "L/2",
             message: #"day-of-month: "L/2" cannot be part of a range or step (L and LW stand alone)"#),
        Case(expression: "15W * * * *", field: "minute", text: "15W",
             message: #"minute: "15W" is not allowed here (nW is for day-of-month only)"#),
        Case(expression: "0 0 32W * *", field: "day-of-month", text: "32W",
             message: #"day-of-month: "32W" is out of range (1-31)"#),
        Case(expression: "0 0 * * MON#6", field: "day-of-week", text: "MON#6",
             message: #"day-of-week: "MON#6" has a bad occurrence (#1-#5)"#),
        Case(expression: "0 0 * * 1#0", field: "day-of-week", text: "1#0",
             message: #"day-of-week: "1#0" has a bad occurrence (#1-#5)"#),
        Case(expression: "0 0 * * #6", field: "day-of-week", text: "#6",
             message: ##"day-of-week: "#6" needs a weekday before # (e.g. MON#1 for the first Monday)"##),
        Case(expression: "0 0 * * 8#1", field: "day-of-week", text: "8#1",
             message: #"day-of-week: "8#1" is out of range (0-7 or SUN-SAT)"#),
        Case(expression: "0 0 1#2 * *", field: "day-of-month", text: "1#2",
             message: #"day-of-month: "1#2" is not allowed here (d#n such as MON#1 is for day-of-week only)"#),
        Case(expression: "1,,2 * * * *", field: "minute", text: "1,,2",
             message: #"minute: "1,,2" has an empty item in its list"#),
        Case(expression: "5- * * * *", field: "minute", text: "5-",
             message: #"minute: "5-" is not a valid range (a-b with 0-59)"#),
        Case(expression: "-5 * * * *", field: "minute", text: "-5",
             message: #"minute: "-5" is not a valid range (a-b with 0-59)"#),
        Case(expression: "0 0 ? * *", field: "day-of-month", text: "?",
             message: #"day-of-month: "?" is not a valid value (1-31, L, LW or nW)"#),
    ]

    @Test(arguments: cases)
    func rejectsWithFieldTextAndMessage(_ c: Case) {
        do {
            let parsed = try CronExpression(c.expression)
            Issue.record("parsed \(c.expression) as \(parsed)")
        } catch let error as CronError {
            #expect(error.field == c.field)
            #expect(error.text == c.text)
            #expect(error.message == c.message)
            #expect(error.description == c.message)
            #expect(!error.message.contains("\n"))
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }
}

@Suite struct ParseTests {
    let utc = TimeZone(identifier: "UTC")!
    let start = Date(timeIntervalSince1970: 1_735_689_600)  // 2025-01-01T00:00:00Z

    /// Two expressions describe the same schedule over the next `count` fire instants.
    func sameSchedule(_ a: String, _ b: String, count: Int = 400, zone: TimeZone? = nil) throws {
        let zone = zone ?? utc
        let x = try CronExpression(a).nextInstants(after: start, in: zone, count: count)
        let y = try CronExpression(b).nextInstants(after: start, in: zone, count: count)
        #expect(x.count == count, "\(a) fired \(x.count) times")
        #expect(x == y, "\(a) vs \(b)")
    }

    @Test func descriptionIsTheNormalisedText() throws {
        #expect(try CronExpression("  0   0 * *\tmon ").description == "0 0 * * mon")
        #expect(try CronExpression("@daily").description == "@daily")
        #expect(try CronExpression("0 0 * * 1") == CronExpression("0  0 * * 1"))
        #expect(try CronExpression("0 0 * * 1") != CronExpression("0 0 * * 2"))
    }

    @Test func macrosExpand() throws {
        try sameSchedule("@yearly", "0 0 1 1 *", count: 5)
        try sameSchedule("@annually", "0 0 1 1 *", count: 5)
        try sameSchedule("@monthly", "0 0 1 * *", count: 24)
        try sameSchedule("@weekly", "0 0 * * 0", count: 60)
        try sameSchedule("@daily", "0 0 * * *")
        try sameSchedule("@MIDNIGHT", "0 0 * * *")
        try sameSchedule("@hourly", "0 * * * *")
        // Macros keep the DST semantics of their expansion.
        let ny = TimeZone(identifier: "America/New_York")!
        try sameSchedule("@daily", "0 0 * * *", zone: ny)
        try sameSchedule("@hourly", "0 * * * *", zone: ny)
    }

    @Test func namesAreCaseInsensitiveAndEqualNumbers() throws {
        try sameSchedule("0 8 * jan,Jul mon-fri", "0 8 * 1,7 1-5")
        try sameSchedule("0 8 * * SUN", "0 8 * * 0")
        try sameSchedule("0 8 * * 7", "0 8 * * 0")
        try sameSchedule("0 8 * * SAT-SUN", "0 8 * * 6,0")
        try sameSchedule("0 8 * * 5-7", "0 8 * * 0,5,6")
        try sameSchedule("0 0 * * fri#2", "0 0 * * 5#2", count: 30)
        try sameSchedule("0 0 * * fril", "0 0 * * 5L", count: 30)
        try sameSchedule("0 0 * * 7L", "0 0 * * 0L", count: 30)
    }

    @Test func stepsRangesAndLists() throws {
        try sameSchedule("*/15 * * * *", "0,15,30,45 * * * *")
        try sameSchedule("10/20 * * * *", "10,30,50 * * * *")
        try sameSchedule("5-59/15 * * * *", "5,20,35,50 * * * *")
        try sameSchedule("0 9-17/4 * * *", "0 9,13,17 * * *")
        try sameSchedule("0 0 * JAN-DEC/3 *", "0 0 * 1,4,7,10 *", count: 30)
        // cronsim: a/n runs to the field maximum, and in day-of-week that maximum is 7 (Sunday).
        try sameSchedule("0 0 * * 1/2", "0 0 * * 0,1,3,5")
        try sameSchedule("0 0 * * */2", "0 0 * * 0,2,4,6")
        try sameSchedule("0 0 1,15 * 1-3,5", "0 0 1,15 * 1,2,3,5")
        try sameSchedule("*/30 * * * * *", "0,30 * * * * *")
    }

    @Test func neverFiringExpressionsReturnNil() throws {
        for text in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * 31 2 *", "0 0 31W 2 *"] {
            let e = try CronExpression(text)
            #expect(e.next(after: start, in: utc) == nil, "\(text)")
            let ny = TimeZone(identifier: "America/New_York")!
            #expect(e.next(after: start, in: ny) == nil)
        }
    }

    @Test func rareExpressionsAreFoundAcrossDecades() throws {
        // The fifth Monday of February: only when February 29 is a Monday (2044, 2072, 2112).
        let e = try CronExpression("0 0 * 2 MON#5")
        let got = e.nextInstants(after: start, in: utc, count: 3)
        let expected = ["2044-02-29T00:00:00Z", "2072-02-29T00:00:00Z", "2112-02-29T00:00:00Z"]
            .map { ISO8601DateFormatter().date(from: $0)! }
        #expect(got == expected)
        // No February 29 between 2096 and 2104.
        let leap = try CronExpression("0 0 29 2 *")
        let after2096 = ISO8601DateFormatter().date(from: "2096-03-01T00:00:00Z")!
        #expect(leap.next(after: after2096, in: utc) == ISO8601DateFormatter().date(from: "2104-02-29T00:00:00Z"))
    }
}
