import Foundation

/// Turns an `AlertMessage` into the texts channels send: a subject line, a
/// plain-text body and an SMS body that fits one GSM-7 segment. Pure; times
/// are shown in UTC.
public enum AlertRenderer {
    /// One line, no control characters, at most 200 characters:
    /// `[cairn] FAILED db-nightly on backup-1: pg_dump exited with status 1`.
    public static func subject(_ m: AlertMessage) -> String {
        let s = "[cairn] \(m.event.label) \(m.job) on \(m.host): \(oneLine(m.what))"
        return s.count > 200 ? String(s.prefix(197)) + "..." : s
    }

    /// The plain-text body (LF line ends).
    public static func text(_ m: AlertMessage) -> String {
        var lines: [String] = []
        lines.append("\(m.event.label): job \(m.job) on \(m.host)")
        lines.append("")
        var rows: [(String, String)] = [("What", oneLine(m.what))]
        if let since = m.since { rows.append((m.event == .recovered || m.event == .probeRecovered ? "Was failing since" : "Failing since", longDate(since))) }
        rows.append(("Last success", m.lastSuccess.map(longDate) ?? "none recorded"))
        rows.append(("When", longDate(m.time)))
        if let run = m.runID { rows.append(("Run", String(run))) }
        rows.append(("See more", m.command))
        let width = rows.map(\.0.count).max()! + 1
        for (k, v) in rows { lines.append((k + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0) + v) }
        if let tail = m.logTail, !tail.isEmpty {
            lines.append("")
            lines.append("Last lines of the log:")
            lines.append(tail.trimmingCharacters(in: .newlines))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// At most 160 GSM-7 septets (one SMS segment):
    /// `FAILED db@backup-1: pg_dump exited 1. Since 05 Dec 07:00Z. Last ok 04 Dec 02:30Z. cairn history db`.
    /// What gives way first: the last-success time, then the since time, then
    /// the end of `what`, then the command, then the job and host names.
    public static func sms(_ m: AlertMessage) -> String {
        let limit = GSM7.segmentSeptets
        let head = GSM7.sanitize("\(m.event.label) \(m.job)@\(m.host)")
        var what = GSM7.sanitize(m.what)
        var extras: [String] = []
        if let s = m.since { extras.append("Since \(shortDate(s)).") }
        if let l = m.lastSuccess, m.event.isProblem { extras.append("Last ok \(shortDate(l)).") }
        var command = GSM7.sanitize(m.command)

        func compose(_ head: String, _ what: String) -> String {
            var s = head + ":"
            if !what.isEmpty { s += " " + what + (what.hasSuffix(".") ? "" : ".") }
            for e in extras { s += " " + e }
            if !command.isEmpty { s += " " + command }
            return s
        }
        func size(_ s: String) -> Int { GSM7.septets(s) ?? Int.max }

        var text = compose(head, what)
        if size(text) <= limit { return text }
        // Keep at least a readable start of `what` before dropping more.
        while !extras.isEmpty, limit - size(compose(head, "")) - 2 < min(size(what), 40) {
            extras.removeLast()
        }
        let room = limit - size(compose(head, "")) - 2   // ": " is counted in compose; the trailing "." below
        if room >= 12 {
            what = GSM7.truncate(what, to: room)
            text = compose(head, what)
            if size(text) <= limit { return text }
        }
        extras = []
        command = ""
        let room2 = limit - size(compose(head, "")) - 2
        if room2 >= 12 {
            text = compose(head, GSM7.truncate(what, to: room2))
            if size(text) <= limit { return text }
        }
        // Very long job or host names: cut the head too.
        let shortHead = GSM7.truncate(head, to: 80)
        text = compose(shortHead, GSM7.truncate(what, to: max(0, limit - size(compose(shortHead, "")) - 2)))
        return size(text) <= limit ? text : GSM7.truncate(text, to: limit)
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: { $0.isNewline || $0 == "\t" }).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }

    static let utc = TimeZone(identifier: "UTC")!
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]

    static func components(_ d: Date) -> DateComponents {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = utc
        return cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: d)
    }

    static func two(_ n: Int?) -> String { let n = n ?? 0; return n < 10 ? "0\(n)" : String(n) }

    /// `Sat, 05 Dec 2026 07:49 UTC`.
    static func longDate(_ d: Date) -> String {
        let c = components(d)
        return "\(weekdays[(c.weekday ?? 1) - 1]), \(two(c.day)) \(months[(c.month ?? 1) - 1]) \(c.year ?? 0) \(two(c.hour)):\(two(c.minute)) UTC"
    }

    /// `05 Dec 07:49Z`.
    static func shortDate(_ d: Date) -> String {
        let c = components(d)
        return "\(two(c.day)) \(months[(c.month ?? 1) - 1]) \(two(c.hour)):\(two(c.minute))Z"
    }

    /// RFC 3339 in UTC with seconds: `2026-12-05T07:49:09Z`.
    public static func rfc3339(_ d: Date) -> String {
        let c = components(d)
        return "\(c.year ?? 0)-\(two(c.month))-\(two(c.day))T\(two(c.hour)):\(two(c.minute)):\(two(c.second))Z"
    }
}
