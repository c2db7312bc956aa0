import Foundation
import Testing
import Cron

/// SplitMix64: small, seeded, deterministic, so a failure reproduces from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What a generated expression means, built alongside its text and independent of the parser.
struct ExpressionModel {
    var text = ""
    var seconds: Set<Int> = [0]
    var minutes: Set<Int> = []
    var hours: Set<Int> = []
    var daysOfMonth: Set<Int> = []
    var lastDay = false
    var lastWeekday = false
    var nearestWeekday: Set<Int> = []
    var months: Set<Int> = []
    var weekdays: Set<Int> = []          // 0-6
    var lastWeekdays: Set<Int> = []      // nL
    var nthWeekdays: Set<[Int]> = []     // [weekday, n]
    var daysAnded = false
    var realTime = false

    struct Day { let year: Int, month: Int, day: Int, weekday: Int, daysInMonth: Int }

    func dayMatches(_ d: Day) -> Bool {
        let dom: Bool = {
            if daysOfMonth.contains(d.day) { return true }
            if lastDay && d.day == d.daysInMonth { return true }
            if lastWeekday {
                // Walk back from the last day to the first Monday-Friday.
                var day = d.daysInMonth, wd = (d.weekday + d.daysInMonth - d.day) % 7
                while wd == 0 || wd == 6 { day -= 1; wd = (wd + 6) % 7 }
                if day == d.day { return true }
            }
            for n in nearestWeekday where n <= d.daysInMonth {
                let wd = ((d.weekday + n - d.day) % 7 + 7) % 7
                var target = n
                if wd == 6 { target = n > 1 ? n - 1 : n + 2 }
                if wd == 0 { target = n < d.daysInMonth ? n + 1 : n - 2 }
                if target == d.day { return true }
            }
            return false
        }()
        let dow: Bool = {
            if weekdays.contains(d.weekday) { return true }
            if lastWeekdays.contains(d.weekday) && d.day > d.daysInMonth - 7 { return true }
            if nthWeekdays.contains([d.weekday, (d.day + 6) / 7]) { return true }
            return false
        }()
        return daysAnded ? (dom && dow) : (dom || dow)
    }

    func matchesMinute(day: Day, hour: Int, minute: Int) -> Bool {
        months.contains(day.month) && hours.contains(hour) && minutes.contains(minute) && dayMatches(day)
    }
}

/// Generates random expressions from the grammar, together with their meaning.
struct ExpressionGenerator {
    var rng: SplitMix64
    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    mutating func render(_ v: Int, names: [String], base: Int) -> String {
        guard !names.isEmpty, v - base < names.count, chance(0.4) else { return String(v) }
        let name = names[v - base]
        return chance(0.3) ? name.lowercased() : name
    }

    /// One field: `*`, `*/n`, or a list of values, ranges and steps. Returns text and values.
    mutating func field(_ bounds: ClosedRange<Int>, names: [String] = [], nameBase: Int = 0,
                        starWeight: Double, allowEmptyList: Bool = false) -> (String, Set<Int>) {
        let lo = bounds.lowerBound, hi = bounds.upperBound
        let roll = Double.random(in: 0..<1, using: &rng)
        if roll < starWeight { return ("*", Set(bounds)) }
        if roll < starWeight + 0.1 {
            let step = int(1...max(1, (hi - lo) / 2 + 1))
            return ("*/\(step)", Set(stride(from: lo, through: hi, by: step)))
        }
        if allowEmptyList && chance(0.25) { return ("", []) }
        var items: [String] = []
        var values: Set<Int> = []
        for _ in 0..<int(1...3) {
            switch int(0...3) {
            case 0:
                let v = int(bounds)
                items.append(render(v, names: names, base: nameBase)); values.insert(v)
            case 1:
                let a = int(bounds), b = int(a...hi)
                items.append("\(render(a, names: names, base: nameBase))-\(render(b, names: names, base: nameBase))")
                values.formUnion(a...b)
            case 2:
                let a = int(bounds), b = int(a...hi), step = int(1...max(1, (b - a) / 2 + 1))
                items.append("\(render(a, names: names, base: nameBase))-\(render(b, names: names, base: nameBase))/\(step)")
                values.formUnion(stride(from: a, through: b, by: step))
            default:
                let a = int(bounds), step = int(1...max(1, (hi - a) / 2 + 1))
                items.append("\(render(a, names: names, base: nameBase))/\(step)")
                values.formUnion(stride(from: a, through: hi, by: step))
            }
        }
        return (items.joined(separator: ","), values)
    }

    mutating func expression() -> ExpressionModel {
        var m = ExpressionModel()
        let sixFields = chance(0.1)
        var parts: [String] = []
        if sixFields {
            let (t, v) = field(0...59, starWeight: 0.2)
            parts.append(t); m.seconds = v
        }
        let (minuteText, minutes) = field(0...59, starWeight: 0.15)
        var (hourText, hours) = field(0...23, starWeight: 0.25)
        if chance(0.4) {
            // Hours around the small-hours DST changes of the zones under test.
            let a = int(0...3), b = int(a...min(23, a + int(0...2)))
            (hourText, hours) = a == b ? ("\(a)", [a]) : chance(0.5) ? ("\(a)-\(b)", Set(a...b)) : ("\(a),\(b)", [a, b])
        }

        // Day of month, sometimes with L, LW and nW.
        var (domText, dom) = field(1...31, starWeight: 0.55, allowEmptyList: true)
        if domText != "*" && !domText.hasPrefix("*/") && chance(0.35) {
            var extra: [String] = []
            for _ in 0..<int(1...2) {
                switch int(0...2) {
                case 0: extra.append(chance(0.5) ? "L" : "l"); m.lastDay = true
                case 1: extra.append("LW"); m.lastWeekday = true
                default:
                    let n = int(1...31); extra.append("\(n)W"); m.nearestWeekday.insert(n)
                }
            }
            domText = ([domText].filter { !$0.isEmpty } + extra).joined(separator: ",")
        }
        if domText.isEmpty { domText = "\(int(1...31))"; dom = [Int(domText)!] }

        let (monthText, months) = field(1...12, names: Self.monthNames, nameBase: 1, starWeight: 0.7)

        // Day of week, 0-7 with 7 = Sunday, sometimes with nL and d#n.
        var (dowText, dowRaw) = field(0...7, names: Self.dayNames, starWeight: 0.55, allowEmptyList: true)
        if dowText != "*" && !dowText.hasPrefix("*/") && chance(0.35) {
            var extra: [String] = []
            for _ in 0..<int(1...2) {
                let d = int(0...7)
                let name = render(d, names: Self.dayNames, base: 0)
                if chance(0.5) {
                    extra.append("\(name)L"); m.lastWeekdays.insert(d % 7)
                } else {
                    let n = int(1...5); extra.append("\(name)#\(n)"); m.nthWeekdays.insert([d % 7, n])
                }
            }
            dowText = ([dowText].filter { !$0.isEmpty } + extra).joined(separator: ",")
        }
        if dowText.isEmpty { let d = int(0...7); dowText = "\(d)"; dowRaw = [d] }

        parts += [minuteText, hourText, domText, monthText, dowText]
        m.text = parts.joined(separator: " ")
        m.minutes = minutes; m.hours = hours; m.daysOfMonth = dom; m.months = months
        m.weekdays = Set(dowRaw.map { $0 % 7 })
        m.daysAnded = domText.hasPrefix("*") || dowText.hasPrefix("*")
        m.realTime = sixFields || minuteText.hasPrefix("*") || hourText.hasPrefix("*")
        return m
    }
}

/// A minute-by-minute reference: enumerate instants, look at the local clock (offsets from
/// Foundation, calendar days from Foundation's Calendar in UTC) and apply the documented rules.
final class BruteForce {
    let zone: TimeZone
    var days: [Int: ExpressionModel.Day] = [:]
    let calendar: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    init(zone: TimeZone) { self.zone = zone }

    func offset(_ t: Int) -> Int { zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t))) }

    func day(wall: Int) -> ExpressionModel.Day {
        let n = Int((Double(wall) / 86_400).rounded(.down))
        if let d = days[n] { return d }
        let date = Date(timeIntervalSince1970: Double(n) * 86_400)
        let c = calendar.dateComponents([.year, .month, .day, .weekday], from: date)
        let dim = calendar.range(of: .day, in: .month, for: date)!.count
        let d = ExpressionModel.Day(year: c.year!, month: c.month!, day: c.day!, weekday: c.weekday! - 1, daysInMonth: dim)
        days[n] = d
        return d
    }

    func matchesMinute(_ m: ExpressionModel, wall: Int) -> Bool {
        let secondOfDay = ((wall % 86_400) + 86_400) % 86_400
        return m.matchesMinute(day: day(wall: wall), hour: secondOfDay / 3600, minute: secondOfDay / 60 % 60)
    }

    /// The first fire instant in (after, after + horizon], or nil.
    func next(_ m: ExpressionModel, after: Int, horizon: Int) -> Int? {
        let firstMinute = Int((Double(after) / 60).rounded(.down)) * 60
        if m.realTime {
            // Every instant whose local time matches (offsets are whole minutes here).
            for t in stride(from: firstMinute, through: after + horizon, by: 60) {
                guard matchesMinute(m, wall: t + offset(t)) else { continue }
                if let s = m.seconds.sorted().first(where: { t + $0 > after }) { return t + s <= after + horizon ? t + s : nil }
            }
            return nil
        }
        // Fixed wall times: fire at the first occurrence of a matching wall time, and at the
        // first instant after a gap that swallowed a matching wall time.
        var maxWall = Int.min
        for t in stride(from: firstMinute - 6 * 3600, through: after + horizon, by: 60) {
            let wall = t + offset(t)
            guard wall > maxWall else { continue }  // second occurrence of a repeated time
            var fires = matchesMinute(m, wall: wall)
            if !fires && maxWall != Int.min && wall > maxWall + 60 {
                fires = stride(from: maxWall + 60, to: wall, by: 60).contains { matchesMinute(m, wall: $0) }
            }
            maxWall = wall
            if fires && t > after { return t }
        }
        return nil
    }
}

@Suite struct PropertyTests {
    struct ZoneCase: Sendable, CustomTestStringConvertible {
        let identifier: String
        let seed: UInt64
        var testDescription: String { identifier }
    }

    static let zones: [ZoneCase] = [
        ZoneCase(identifier: "America/New_York", seed: 1),
        ZoneCase(identifier: "Europe/London", seed: 2),
        ZoneCase(identifier: "Australia/Sydney", seed: 3),
        ZoneCase(identifier: "Asia/Kathmandu", seed: 4),
        ZoneCase(identifier: "Africa/Accra", seed: 5),
        ZoneCase(identifier: "UTC", seed: 6),
        ZoneCase(identifier: "Australia/Lord_Howe", seed: 7),  // 30-minute DST
    ]

    static let casesPerZone = 700
    static let horizon = 3 * 86_400

    /// Start instants cluster around the zone's offset changes in 2024-2027 (for Kathmandu,
    /// the 1986 change from +05:30 to +05:45, a 15-minute gap at midnight).
    static func transitions(_ zone: TimeZone) -> [Int] {
        var result: [Int] = []
        var d = Date(timeIntervalSince1970: 473_385_600)  // 1985-01-01
        while let t = zone.nextDaylightSavingTimeTransition(after: d), t.timeIntervalSince1970 < 1_830_297_600 {
            let s = Int(t.timeIntervalSince1970)
            if s < 536_457_600 || s > 1_704_067_200 { result.append(s) }  // 1985-86 and 2024-27
            d = t
        }
        return result
    }

    @Test(arguments: zones)
    func nextIsTheFirstMatchStrictlyAfterStart(_ zc: ZoneCase) throws {
        let zone = try #require(TimeZone(identifier: zc.identifier))
        var gen = ExpressionGenerator(rng: SplitMix64(seed: 0xC0FFEE ^ zc.seed))
        let transitions = Self.transitions(zone)
        let brute = BruteForce(zone: zone)
        var checkedExactly = 0, failures = 0

        for index in 0..<Self.casesPerZone {
            let model = gen.expression()
            let expression: CronExpression
            do { expression = try CronExpression(model.text) } catch {
                Issue.record("case \(index): \(model.text) did not parse: \(error)")
                failures += 1; continue
            }
            let start: Int
            if !transitions.isEmpty && gen.chance(0.85) {
                let window = gen.chance(0.6) ? 4 * 3600 : 36 * 3600
                start = transitions[gen.int(0...(transitions.count - 1))] + gen.int(-window...window)
            } else {
                start = 1_735_689_600 + gen.int(0...(365 * 86_400))  // some time in 2025
            }
            let startDate = Date(timeIntervalSince1970: Double(start))
            let got = expression.next(after: startDate, in: zone).map { Int($0.timeIntervalSince1970) }
            let expected = brute.next(model, after: start, horizon: Self.horizon)
            let context = "case \(index) seed \(zc.seed): \"\(model.text)\" in \(zc.identifier) after \(startDate)"

            if let expected {
                checkedExactly += 1
                if got != expected {
                    failures += 1
                    Issue.record("\(context): got \(got.map { Date(timeIntervalSince1970: Double($0)) }.map(String.init(describing:)) ?? "nil"), brute force \(Date(timeIntervalSince1970: Double(expected)))")
                }
            } else if let got {
                // Beyond the brute-force horizon: still after the start, and itself a fire instant.
                if got <= start + Self.horizon || brute.next(model, after: got - 1, horizon: 1) != got {
                    failures += 1
                    Issue.record("\(context): got \(Date(timeIntervalSince1970: Double(got))), which the brute force rejects")
                }
            }
            // matches(_:in:) agrees with the brute force at the result and near the start.
            if let got {
                #expect(expression.matches(Date(timeIntervalSince1970: Double(got)), in: zone), "\(context)")
            }
            for probe in [start, start + 60 * gen.int(1...180), (start / 60 + gen.int(1...600)) * 60] {
                let isFire = brute.next(model, after: probe - 1, horizon: 1) == probe
                if expression.matches(Date(timeIntervalSince1970: Double(probe)), in: zone) != isFire {
                    failures += 1
                    Issue.record("\(context): matches(\(Date(timeIntervalSince1970: Double(probe)))) should be \(isFire)")
                }
            }
            if failures > 20 { break }
        }
        // Most cases must be checked against the full minute-by-minute search.
        #expect(checkedExactly > Self.casesPerZone / 2, "only \(checkedExactly) cases within the horizon")
    }
}
