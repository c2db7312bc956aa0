import Foundation

extension CronExpression {
    /// How far ahead `next(after:in:)` looks before concluding the expression never fires.
    /// The Gregorian calendar repeats every 400 years, so an expression with no match in
    /// 400 years has none at all (`0 0 30 2 *`, `0 0 31 4 *`).
    static let searchYears = 400

    /// The first fire instant strictly after `after`, or nil if the expression never fires.
    ///
    /// Fire instants fall on whole seconds. Semantics follow Debian cron (cronie) as
    /// healthchecks.io's cronsim implements them:
    ///
    /// * Expressions with fixed minute and hour fields (neither starts with `*`, five fields)
    ///   name wall-clock times. A wall time that does not exist (spring-forward gap) fires at
    ///   the first valid instant after the gap (the first whole minute after it on the same
    ///   clock, in practice the end of the gap); a wall time that occurs twice (fall-back)
    ///   fires once, at its first occurrence.
    /// * Expressions whose minute or hour field starts with `*`, and all six-field expressions,
    ///   follow real time: they fire at every instant whose local time matches, so in a
    ///   repeated hour they fire in both occurrences, and times in a gap are simply skipped.
    public func next(after: Date, in timeZone: TimeZone) -> Date? {
        let t = after.timeIntervalSince1970
        guard t.isFinite, abs(t) < 1e12 else { return nil }
        let start = Int(t.rounded(.down))
        let zone = Zone(timeZone)
        let startWall = start + zone.offset(start)
        let limitYear = WallTime(seconds: startWall).year + Self.searchYears
        let limit = Civil.days(year: limitYear + 1, month: 1, day: 1) * 86_400 - 1
        let result = followsRealTime
            ? nextRealTime(after: start, zone: zone, wallLimit: limit)
            : nextWallClock(after: start, zone: zone, wallLimit: limit)
        return result.map { Date(timeIntervalSince1970: Double($0)) }
    }

    /// The next `count` fire instants strictly after `after`, in order (fewer if the
    /// expression stops firing within the search horizon).
    public func nextInstants(after: Date, in timeZone: TimeZone, count: Int) -> [Date] {
        var result: [Date] = []
        result.reserveCapacity(max(count, 0))
        var cursor = after
        while result.count < count, let n = next(after: cursor, in: timeZone) {
            result.append(n)
            cursor = n
        }
        return result
    }

    /// True if the whole second containing `date` is a fire instant, with the same DST rules
    /// as ``next(after:in:)``: `matches(d, in: tz)` ⇔ `next(after: d - 1s, in: tz) == d` for a
    /// whole-second `d`. So a fixed-time job matches the first occurrence of a repeated wall
    /// time but not the second, and matches the end of a gap that swallowed one of its times.
    public func matches(_ date: Date, in timeZone: TimeZone) -> Bool {
        let t = date.timeIntervalSince1970
        guard t.isFinite, abs(t) < 1e12 else { return false }
        let instant = Int(t.rounded(.down))
        let zone = Zone(timeZone)
        let wall = instant + zone.offset(instant)
        if followsRealTime { return matches(wall: WallTime(seconds: wall)) }
        // Wall times map monotonically to instants, so one mapping to `instant` lies between
        // the wall time of the second before and its own wall time.
        return nextWallClock(after: instant - 1, zone: zone, wallLimit: wall) == instant
    }

    // MARK: - Time-zone handling

    /// Fixed wall-clock times: walk matching wall times in order and map each to an instant
    /// (first occurrence if repeated, first valid minute after the gap if skipped). The
    /// mapping is monotonic, so the first mapped instant after `after` is the answer; wall
    /// times in the second occurrence of a repeated hour map before `after` and are passed over.
    func nextWallClock(after: Int, zone: Zone, wallLimit: Int) -> Int? {
        var wall = after + zone.offset(after)
        while let candidate = nextWallTime(after: wall, limit: wallLimit) {
            if let instant = zone.firstInstant(wall: candidate), instant > after { return instant }
            wall = candidate
        }
        return nil
    }

    /// Real time: between two offset transitions the wall clock is the instant plus a constant,
    /// so search wall times segment by segment.
    func nextRealTime(after: Int, zone: Zone, wallLimit: Int) -> Int? {
        var t = after
        while true {
            let segmentStart = t + 1
            let offset = zone.offset(segmentStart)
            if segmentStart + offset > wallLimit { return nil }
            var segmentEnd = zone.nextTransition(after: segmentStart)
            if let end = segmentEnd, end <= segmentStart { segmentEnd = nil }
            guard let wall = nextWallTime(after: segmentStart + offset - 1, limit: wallLimit) else { return nil }
            let candidate = wall - offset
            if let end = segmentEnd, candidate >= end {
                t = end - 1
                continue
            }
            if zone.offset(candidate) != offset {
                // The zone changed offset without reporting a transition: find a change point.
                var low = segmentStart, high = candidate
                while high - low > 1 {
                    let mid = low + (high - low) / 2
                    if zone.offset(mid) == offset { low = mid } else { high = mid }
                }
                t = high - 1
                continue
            }
            return candidate
        }
    }

    // MARK: - Wall-clock search

    /// The first wall time strictly after `after` (seconds on the local clock since
    /// 1970-01-01T00:00) that matches every field, skipping by month, day, hour, minute and
    /// second; nil if there is none up to `limit`.
    func nextWallTime(after: Int, limit: Int) -> Int? {
        let limitYear = WallTime(seconds: limit).year
        var t = WallTime(seconds: after + 1)
        while true {
            if t.year > limitYear { return nil }
            if !Self.has(months, t.month) {
                if let m = Self.next(months, from: t.month + 1) {
                    t.month = m
                } else {
                    t.year += 1
                    t.month = Self.next(months, from: 1)!
                }
                t.day = 1; t.hour = 0; t.minute = 0; t.second = 0
                continue
            }
            let daysInMonth = Civil.daysInMonth(year: t.year, month: t.month)
            if t.day > daysInMonth {
                Self.startNextMonth(&t)
                continue
            }
            let monthStart = Civil.days(year: t.year, month: t.month, day: 1)
            let firstWeekday = Civil.weekday(days: monthStart)
            var day = t.day
            while day <= daysInMonth,
                  !dayMatches(year: t.year, month: t.month, day: day, daysInMonth: daysInMonth,
                              weekday: (firstWeekday + day - 1) % 7) {
                day += 1
            }
            if day > daysInMonth {
                Self.startNextMonth(&t)
                continue
            }
            if day != t.day {
                t.day = day; t.hour = 0; t.minute = 0; t.second = 0
            }
            guard let hour = Self.next(hours, from: t.hour) else {
                t.day += 1; t.hour = 0; t.minute = 0; t.second = 0
                continue
            }
            if hour != t.hour { t.hour = hour; t.minute = 0; t.second = 0 }
            guard let minute = Self.next(minutes, from: t.minute) else {
                t.hour += 1; t.minute = 0; t.second = 0
                if t.hour > 23 { t.hour = 0; t.day += 1 }
                continue
            }
            if minute != t.minute { t.minute = minute; t.second = 0 }
            guard let second = Self.next(seconds, from: t.second) else {
                t.minute += 1; t.second = 0
                if t.minute > 59 {
                    t.minute = 0; t.hour += 1
                    if t.hour > 23 { t.hour = 0; t.day += 1 }
                }
                continue
            }
            t.second = second
            let result = t.seconds
            return result <= limit ? result : nil
        }
    }

    /// Whether every field matches a wall time (no DST rules).
    func matches(wall t: WallTime) -> Bool {
        let daysInMonth = Civil.daysInMonth(year: t.year, month: t.month)
        let weekday = Civil.weekday(days: Civil.days(year: t.year, month: t.month, day: t.day))
        return Self.has(seconds, t.second) && Self.has(minutes, t.minute) && Self.has(hours, t.hour)
            && Self.has(months, t.month)
            && dayMatches(year: t.year, month: t.month, day: t.day, daysInMonth: daysInMonth, weekday: weekday)
    }

    func dayMatches(year: Int, month: Int, day: Int, daysInMonth: Int, weekday: Int) -> Bool {
        if daysAnded {
            return dayOfMonthMatches(year: year, month: month, day: day, daysInMonth: daysInMonth, weekday: weekday)
                && dayOfWeekMatches(day: day, daysInMonth: daysInMonth, weekday: weekday)
        }
        return dayOfMonthMatches(year: year, month: month, day: day, daysInMonth: daysInMonth, weekday: weekday)
            || dayOfWeekMatches(day: day, daysInMonth: daysInMonth, weekday: weekday)
    }

    func dayOfMonthMatches(year: Int, month: Int, day: Int, daysInMonth: Int, weekday: Int) -> Bool {
        if Self.has(daysOfMonth, day) { return true }
        if lastDayOfMonth, day == daysInMonth { return true }
        if lastWeekdayOfMonth, day >= daysInMonth - 2 {
            // The last Mon-Fri: the last day, or the Friday before a Saturday/Sunday last day.
            let lastWeekday = (weekday + daysInMonth - day) % 7
            let target = lastWeekday == 0 ? daysInMonth - 2 : lastWeekday == 6 ? daysInMonth - 1 : daysInMonth
            if day == target { return true }
        }
        if nearestWeekday != 0 {
            // nW: the weekday nearest day n, without leaving the month (Quartz semantics).
            for n in max(1, day - 2)...min(daysInMonth, day + 2) where Self.has(nearestWeekday, n) {
                let w = ((weekday + n - day) % 7 + 7) % 7
                let target = switch w {
                case 6: n == 1 ? n + 2 : n - 1
                case 0: n == daysInMonth ? n - 2 : n + 1
                default: n
                }
                if target == day { return true }
            }
        }
        return false
    }

    func dayOfWeekMatches(day: Int, daysInMonth: Int, weekday: Int) -> Bool {
        if Self.has(daysOfWeek, weekday) { return true }
        if Self.has(lastDaysOfWeek, weekday), day + 7 > daysInMonth { return true }
        if nthDaysOfWeek != 0, Self.has(nthDaysOfWeek, (day - 1) / 7 * 7 + weekday) { return true }
        return false
    }

    private static func startNextMonth(_ t: inout WallTime) {
        t.month += 1
        if t.month > 12 { t.month = 1; t.year += 1 }
        t.day = 1; t.hour = 0; t.minute = 0; t.second = 0
    }

    @inline(__always) static func has(_ mask: UInt64, _ i: Int) -> Bool {
        i >= 0 && i < 64 && mask & (1 << UInt64(i)) != 0
    }

    /// The smallest set bit at index ≥ `from`.
    @inline(__always) static func next(_ mask: UInt64, from: Int) -> Int? {
        guard from < 64 else { return nil }
        let rest = mask & (~UInt64(0) << UInt64(max(from, 0)))
        return rest == 0 ? nil : rest.trailingZeroBitCount
    }
}

/// A time zone seen as a function from whole-second instants to UTC offsets.
struct Zone {
    let timeZone: TimeZone
    init(_ timeZone: TimeZone) { self.timeZone = timeZone }

    @inline(__always) func offset(_ t: Int) -> Int {
        timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t)))
    }

    /// The first instant after `t` at which the offset (or DST flag) changes.
    func nextTransition(after t: Int) -> Int? {
        timeZone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: Double(t)))
            .map { Int($0.timeIntervalSince1970.rounded(.up)) }
    }

    /// The instants whose local time is `wall`, in order: none in a gap, two in a repeated hour.
    /// Assumes at most one transition within a day either side (true of every real zone).
    func instants(wall: Int) -> (first: Int?, count: Int) {
        let before = offset(wall - 86_400)
        let after = offset(wall + 86_400)
        if before == after {
            let t = wall - before
            if offset(t) == before { return (t, 1) }
        }
        var found: [Int] = []
        for o in [before, after, offset(wall)] where !found.contains(wall - o) {
            let t = wall - o
            if offset(t) == o { found.append(t) }
        }
        return (found.min(), found.count)
    }

    /// Debian cron's instant for a fixed wall time: its first occurrence, or, if the wall time
    /// falls in a gap, the first whole minute after it (on the wall clock) that exists.
    func firstInstant(wall: Int) -> Int? {
        var w = wall
        for _ in 0...(2 * 24 * 60) {
            if let t = instants(wall: w).first { return t }
            w += 60
        }
        return nil
    }
}
