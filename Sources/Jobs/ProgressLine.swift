import Core
import Foundation

/// Progress of a byte stream against a known or estimated total, as one line
/// for an operator: "1.2 GiB of 3.4 GiB (35%), 40.0 MiB/s, ETA 1m05s".
/// Pure: the caller passes the elapsed time, so tests need no clock.
public struct ProgressLine: Sendable, Equatable {
    /// Bytes done so far.
    public var done: Int64
    /// Bytes expected in all; nil or 0 when unknown.
    public var total: Int64?
    /// Seconds since the stream started.
    public var elapsed: Double
    /// `total` is an estimate (a backup's `pg_database_size`), not an exact size:
    /// shown as "~", and the percentage stays below 100 until the end.
    public var estimated: Bool

    public init(done: Int64, total: Int64?, elapsed: Double, estimated: Bool = false) {
        self.done = done; self.total = total; self.elapsed = elapsed; self.estimated = estimated
    }

    /// Done / total in 0…1 (at most 0.99 for an estimate), or nil without a total.
    public var fraction: Double? {
        guard let total, total > 0 else { return nil }
        let f = min(1, Double(max(0, done)) / Double(total))
        return estimated ? min(f, 0.99) : f
    }

    /// Bytes per second, once there is a second of history.
    public var rate: Double? {
        guard elapsed >= 1, done > 0 else { return nil }
        return Double(done) / elapsed
    }

    /// Seconds left at the current rate, or nil (no total, no rate yet, or an estimate already passed).
    public var eta: Double? {
        guard let total, total > 0, let rate, rate > 0 else { return nil }
        let left = total - done
        if left <= 0 { return estimated ? nil : 0 }
        return Double(left) / rate
    }

    /// Whole percent, or nil without a total.
    public var percent: Int? { fraction.map { Int(($0 * 100).rounded(.down)) } }

    public var text: String {
        var s = ByteFormat.human(done)
        if let total, total > 0 {
            s += " of \(estimated ? "~" : "")\(ByteFormat.human(total)) (\(percent!)%)"
        }
        s += ", " + (rate.map { ByteFormat.human(Int64($0)) + "/s" } ?? "-/s")
        if let total, total > 0 { s += ", ETA " + (eta.map(Self.duration) ?? "?") }
        return s
    }

    /// "40.0 MiB/s" for a final summary: bytes over seconds.
    public static func rate(bytes: Int64, seconds: Double) -> String {
        ByteFormat.human(Int64(Double(bytes) / max(seconds, 0.001))) + "/s"
    }

    /// Seconds from `start` to now, for summaries.
    public static func seconds(since start: ContinuousClock.Instant) -> Double {
        let e = ContinuousClock.now - start
        return e.inSeconds
    }

    /// "45s", "3m07s", "2h05m".
    public static func duration(_ secs: Double) -> String {
        guard secs.isFinite, secs >= 0 else { return "?" }
        let s = Int(secs.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}

/// When a progress line goes to a log (not a terminal): every `interval`
/// seconds, and each time the fraction crosses a multiple of `step` (every
/// 10 % by default), whichever comes first. Pure: times are passed in.
public struct ProgressLogThrottle: Sendable, Equatable {
    public var interval: Double
    public var step: Double
    private var lastTime: Double = 0
    private var lastStep = 0

    public init(interval: Double = 10, step: Double = 0.1) {
        self.interval = interval
        self.step = step
    }

    /// True when a line should be logged now, at `elapsed` seconds with `fraction` done.
    public mutating func shouldLog(elapsed: Double, fraction: Double?) -> Bool {
        let current = fraction.map { Int(($0 / step).rounded(.down)) } ?? lastStep
        if current > lastStep || elapsed - lastTime >= interval {
            lastStep = max(lastStep, current)
            lastTime = elapsed
            return true
        }
        return false
    }
}
