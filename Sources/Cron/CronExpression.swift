/// A parsed cron expression: five fields (minute hour day-of-month month day-of-week), six
/// fields with a leading seconds field, or one of the macros `@yearly`, `@annually`,
/// `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
///
/// Each field takes `*`, numbers, names (JAN-DEC, SUN-SAT, case-insensitive), ranges `a-b`,
/// steps `*/n`, `a-b/n` and `a/n` (a through the field's maximum), and comma lists of these.
/// Sunday is 0 or 7. Day-of-month also takes `L` (last day), `LW` (last weekday, Mon-Fri) and
/// `nW` (the weekday nearest to day n, never leaving the month); day-of-week also takes `nL`
/// (the last weekday n of the month, e.g. `5L` = last Friday) and `d#n` (the n-th weekday d,
/// n = 1-5, e.g. `MON#1`).
///
/// Day-of-month and day-of-week are ORed unless either field starts with `*` (then ANDed), as
/// in Vixie/Debian cron. See ``next(after:in:)`` for the time-zone semantics.
///
/// Equality compares the expression as written (after whitespace normalisation), not the set of
/// instants it describes: `@daily` and `0 0 * * *` fire at the same times but are not `==`.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The expression as written, with runs of whitespace collapsed to one space.
    public let description: String

    // Bit sets: bit i set = value i allowed.
    let seconds: UInt64      // 0-59
    let minutes: UInt64      // 0-59
    let hours: UInt64        // 0-23
    let months: UInt64       // 1-12
    let daysOfMonth: UInt64  // 1-31
    let lastDayOfMonth: Bool         // L
    let lastWeekdayOfMonth: Bool     // LW
    let nearestWeekday: UInt64       // nW: bit n
    let daysOfWeek: UInt64   // 0-6 (7 folded into 0)
    let lastDaysOfWeek: UInt64       // nL: bit n (0-6)
    let nthDaysOfWeek: UInt64        // d#n: bit (n-1)*7 + d
    /// Day-of-month and day-of-week are ANDed (either field starts with `*`), else ORed.
    let daysAnded: Bool
    /// True when the expression follows real (elapsed) time across DST changes: six-field
    /// expressions and those whose minute or hour field starts with `*`. Otherwise the
    /// expression names fixed wall-clock times and gets Debian cron's DST treatment.
    let followsRealTime: Bool

    static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    ]

    public init(_ text: String) throws {
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        var fields = words
        if words.count == 1, words[0].hasPrefix("@") {
            guard let expansion = Self.macros[words[0].lowercased()] else {
                throw CronError(field: "expression", text: words[0],
                                problem: "is not a supported macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)")
            }
            fields = expansion.split(separator: " ").map(String.init)
        }
        guard fields.count == 5 || fields.count == 6 else {
            let trimmed = words.joined(separator: " ")
            throw CronError(field: "expression", text: trimmed,
                            problem: "has \(fields.count) field\(fields.count == 1 ? "" : "s"); expected 5 (minute hour day-of-month month day-of-week) or 6 (second minute hour day-of-month month day-of-week)")
        }
        let hasSeconds = fields.count == 6
        if !hasSeconds { fields.insert("0", at: 0) }

        let second = try FieldParser(.second).parse(fields[0])
        let minute = try FieldParser(.minute).parse(fields[1])
        let hour = try FieldParser(.hour).parse(fields[2])
        let dom = try FieldParser(.dayOfMonth).parse(fields[3])
        let month = try FieldParser(.month).parse(fields[4])
        let dow = try FieldParser(.dayOfWeek).parse(fields[5])

        description = words.joined(separator: " ")
        seconds = second.values
        minutes = minute.values
        hours = hour.values
        months = month.values
        daysOfMonth = dom.values
        lastDayOfMonth = dom.last
        lastWeekdayOfMonth = dom.lastWeekday
        nearestWeekday = dom.nearestWeekday
        // Sunday may be written 7: fold it into 0.
        daysOfWeek = (dow.values & 0x7F) | ((dow.values >> 7) & 1)
        lastDaysOfWeek = dow.lastOfMonth
        nthDaysOfWeek = dow.nth
        daysAnded = fields[3].hasPrefix("*") || fields[5].hasPrefix("*")
        followsRealTime = hasSeconds || fields[1].hasPrefix("*") || fields[2].hasPrefix("*")
    }
}

// MARK: - Field parsing

enum CronField: Sendable {
    case second, minute, hour, dayOfMonth, month, dayOfWeek

    var name: String {
        switch self {
        case .second: "second"
        case .minute: "minute"
        case .hour: "hour"
        case .dayOfMonth: "day-of-month"
        case .month: "month"
        case .dayOfWeek: "day-of-week"
        }
    }

    var bounds: ClosedRange<Int> {
        switch self {
        case .second, .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7
        }
    }

    /// The values a number or name may take.
    var range: String {
        switch self {
        case .second, .minute: "0-59"
        case .hour: "0-23"
        case .dayOfMonth: "1-31"
        case .month: "1-12 or JAN-DEC"
        case .dayOfWeek: "0-7 or SUN-SAT"
        }
    }

    /// Everything the field accepts besides `*`, ranges, steps and lists.
    var allowed: String {
        switch self {
        case .dayOfMonth: "1-31, L, LW or nW"
        case .dayOfWeek: "0-7, SUN-SAT, nL or d#n"
        default: range
        }
    }

    var names: [String] {
        switch self {
        case .month: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        case .dayOfWeek: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
        default: []
        }
    }

    /// The value of the first name (JAN = 1, SUN = 0).
    var firstNameValue: Int { self == .month ? 1 : 0 }
}

struct ParsedField {
    var values: UInt64 = 0
    var last = false
    var lastWeekday = false
    var nearestWeekday: UInt64 = 0
    var lastOfMonth: UInt64 = 0
    var nth: UInt64 = 0
}

struct FieldParser {
    let field: CronField
    init(_ field: CronField) { self.field = field }

    func error(_ text: some StringProtocol, _ problem: String) -> CronError {
        CronError(field: field.name, text: String(text), problem: problem)
    }

    func parse(_ text: String) throws -> ParsedField {
        var result = ParsedField()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            if item.isEmpty { throw error(text, "has an empty item in its list") }
            try parseItem(item, into: &result)
        }
        return result
    }

    private func isDigits(_ s: some StringProtocol) -> Bool {
        !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber }
    }

    private func parseItem(_ item: Substring, into result: inout ParsedField) throws {
        let upper = item.uppercased()
        if field == .dayOfMonth {
            if upper == "L" { result.last = true; return }
            if upper == "LW" { result.lastWeekday = true; return }
            if upper.hasSuffix("W"), isDigits(upper.dropLast()) {
                let day = try value(item.dropLast(), reportAs: item)
                result.nearestWeekday |= 1 << UInt64(day)
                return
            }
        }
        if field == .dayOfWeek {
            if let hash = item.firstIndex(of: "#") {
                if hash == item.startIndex { throw error(item, "needs a weekday before # (e.g. MON#1 for the first Monday)") }
                let day = try value(item[..<hash], reportAs: item) % 7
                let nthText = item[item.index(after: hash)...]
                guard isDigits(nthText), nthText.count <= 2, let n = Int(nthText), (1...5).contains(n) else {
                    throw error(item, "has a bad occurrence (#1-#5)")
                }
                result.nth |= 1 << UInt64((n - 1) * 7 + day)
                return
            }
            if upper.count > 1, upper.hasSuffix("L") {
                let day = try value(item.dropLast(), reportAs: item) % 7
                result.lastOfMonth |= 1 << UInt64(day)
                return
            }
        }

        var base = item
        var step = 1
        var hasStep = false
        if let slash = item.firstIndex(of: "/") {
            base = item[..<slash]
            let stepText = item[item.index(after: slash)...]
            guard isDigits(stepText), stepText.count <= 4, let s = Int(stepText), s >= 1 else {
                throw error(item, "has a bad step (must be a whole number of at least 1)")
            }
            step = s
            hasStep = true
        }

        let low: Int
        var high: Int
        if base == "*" {
            low = field.bounds.lowerBound
            high = field.bounds.upperBound
        } else if let dash = base.firstIndex(of: "-") {
            let startText = base[..<dash]
            let endText = base[base.index(after: dash)...]
            if startText.isEmpty || endText.isEmpty { throw error(base, "is not a valid range (a-b with \(field.allowed))") }
            low = try value(startText, item: item)
            high = try value(endText, item: item)
            // SAT-SUN: a range that ends on the name SUN means Sunday as 7.
            if field == .dayOfWeek, high == 0, low > 0, endText.uppercased() == "SUN" { high = 7 }
            if low > high { throw error(base, "is a backwards range (the start must not be after the end)") }
        } else {
            low = try value(base, item: item)
            high = hasStep ? field.bounds.upperBound : low
        }
        var v = low
        while v <= high {
            result.values |= 1 << UInt64(v)
            v += step
        }
    }

    /// Parses one number or name, checking it against the field's range.
    /// `whole` replaces the token in messages; `item` is the list item the token came from.
    private func value(_ token: Substring, reportAs whole: Substring? = nil, item: Substring? = nil) throws -> Int {
        let upper = token.uppercased()
        if isDigits(token) {
            guard token.count <= 3, let v = Int(token), field.bounds.contains(v) else {
                throw error(whole ?? token, "is out of range (\(field.range))")
            }
            return v
        }
        if let index = field.names.firstIndex(of: upper) {
            return index + field.firstNameValue
        }
        let rest = upper.dropLast()
        if upper == "L" || upper == "LW" || (upper.hasSuffix("L") && isDigits(rest)) {
            let problem = switch field {
            case .dayOfWeek: "needs a weekday before L (e.g. 5L or FRIL for the last Friday)"
            case .dayOfMonth where upper == "L" || upper == "LW": "cannot be part of a range or step (L and LW stand alone)"
            case .dayOfMonth: "is not allowed here (nL such as 5L is for day-of-week; day-of-month takes L, LW or nW)"
            default: "is not allowed here (L and LW are for day-of-month, nL such as 5L for day-of-week)"
            }
            throw error(field == .dayOfMonth ? (item ?? token) : (whole ?? token), problem)
        }
        if upper.hasSuffix("W"), isDigits(rest) {
            throw error(whole ?? token, "is not allowed here (nW is for day-of-month only)")
        }
        if upper.contains("#") {
            throw error(whole ?? token, "is not allowed here (d#n such as MON#1 is for day-of-week only)")
        }
        throw error(whole ?? token, "is not a valid value (\(field.allowed))")
    }
}
