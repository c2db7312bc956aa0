import Config
import Core
import Foundation

/// A global upload bandwidth limit shared by every transfer of a run: a token
/// bucket refilled at `bytesPerSecond`, with a burst of one second's worth.
///
/// A transfer asks for its body's bytes before it is sent and waits until the
/// bucket can pay for them (debt is allowed, so a body larger than the burst
/// waits for the time it costs). Over any interval longer than a part, the
/// average rate of all transfers together stays at or below the limit.
public final class BandwidthLimiter: @unchecked Sendable {
    public let bytesPerSecond: Int64
    private let lock = NSLock()
    private var tokens: Double
    private var last: ContinuousClock.Instant
    private let clock = ContinuousClock()

    public init(bytesPerSecond: Int64) {
        self.bytesPerSecond = max(1, bytesPerSecond)
        tokens = Double(self.bytesPerSecond)
        last = clock.now
    }

    /// How long a request for `bytes` has to wait (and takes the bytes from the bucket).
    func reserve(_ bytes: Int64, now: ContinuousClock.Instant) -> Duration {
        lock.lock(); defer { lock.unlock() }
        let rate = Double(bytesPerSecond)
        let elapsed = now - last
        let secs = elapsed.inSeconds
        tokens = min(rate, tokens + secs * rate)
        last = now
        tokens -= Double(bytes)
        if tokens >= 0 { return .zero }
        return .nanoseconds(Int64((-tokens / rate) * 1e9))
    }

    /// Waits until `bytes` may be sent.
    public func acquire(_ bytes: Int64) async throws {
        let wait = reserve(bytes, now: clock.now)
        if wait > .zero { try await Sleep.for(wait) }
    }

    /// Parses a rate the way rclone's `--bwlimit` reads one: a number with an
    /// optional unit `k`/`K` (KiB/s), `M` (MiB/s), `G` (GiB/s), or any size that
    /// the configuration accepts (`512KiB`, `10MB`), optionally followed by
    /// `/s`. Unlike rclone, a bare number is bytes per second. `0` or `off`
    /// means no limit (nil). Anything else throws a `.usage` error.
    public static func parse(_ text: String) throws -> Int64? {
        var t = text.trimmingCharacters(in: .whitespaces)
        if t.lowercased() == "off" || t == "0" { return nil }
        if t.hasSuffix("/s") { t = String(t.dropLast(2)) }
        guard let n = ConfigUnits.parseSize(t), n > 0 else {
            throw CairnError(.usage, "bandwidth limit '\(text)': expected a rate such as 10M (MiB/s), 512k (KiB/s), 20MiB/s, 1000000 (bytes/s) or off")
        }
        return n
    }
}
