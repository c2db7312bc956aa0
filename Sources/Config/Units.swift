import Foundation

/// Parsers for the duration, size and rate strings used in Cairn's configuration.
/// Pure functions: they return `nil` for anything they do not accept, and the
/// caller turns that into a `ConfigIssue` that names the key and the file.
public enum ConfigUnits {
    /// Parses a duration such as `"90s"`, `"30m"`, `"2h"`, `"1h30m"`, `"500ms"`,
    /// `"7d"`, `"1.5h"` or `"0"`. Units: `ms`, `s`, `m`, `h`, `d`. Components
    /// must be written from the largest unit to the smallest, each unit once.
    /// Negative durations are not accepted.
    public static func parseDuration(_ text: String) -> Duration? {
        let s = Array(text.utf8)
        if s.isEmpty { return nil }
        if text == "0" { return .zero }
        var i = 0
        var totalNanos: Double = 0
        var lastRank = Int.max
        while i < s.count {
            let numberStart = i
            var sawDigit = false, sawDot = false
            while i < s.count {
                let c = s[i]
                if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { sawDigit = true; i += 1 }
                else if c == UInt8(ascii: "."), !sawDot { sawDot = true; i += 1 }
                else { break }
            }
            guard sawDigit, let value = Double(String(decoding: s[numberStart..<i], as: UTF8.self)) else { return nil }
            let unitStart = i
            while i < s.count, (s[i] >= UInt8(ascii: "a") && s[i] <= UInt8(ascii: "z")) { i += 1 }
            let unit = String(decoding: s[unitStart..<i], as: UTF8.self)
            let (rank, nanos): (Int, Double)
            switch unit {
            case "d": (rank, nanos) = (5, 86_400e9)
            case "h": (rank, nanos) = (4, 3_600e9)
            case "m": (rank, nanos) = (3, 60e9)
            case "s": (rank, nanos) = (2, 1e9)
            case "ms": (rank, nanos) = (1, 1e6)
            default: return nil
            }
            guard rank < lastRank else { return nil }
            lastRank = rank
            totalNanos += value * nanos
        }
        guard totalNanos.isFinite, totalNanos < 1e18 else { return nil }
        let n = Int64(totalNanos.rounded())
        return .seconds(n / 1_000_000_000) + .nanoseconds(n % 1_000_000_000)
    }

    /// Formats a duration the way the configuration writes it: `"1h30m"`, `"90s"`
    /// becomes `"1m30s"`, `"0s"`, `"250ms"`.
    public static func formatDuration(_ d: Duration) -> String {
        let (secs, attos) = d.components
        if secs == 0 && attos == 0 { return "0s" }
        var out = ""
        var rest = secs
        for (unit, size) in [("d", Int64(86_400)), ("h", 3_600), ("m", 60), ("s", 1)] where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        let ms = attos / 1_000_000_000_000_000
        if ms > 0 { out += "\(ms)ms" }
        return out.isEmpty ? "0s" : out
    }

    /// Parses a size such as `"16MiB"`, `"64MiB"`, `"5GiB"`, `"512KiB"`, `"10MB"`,
    /// `"16M"` or `"1048576"` into bytes. Binary units (`KiB`, `MiB`, `GiB`,
    /// `TiB`, and the short `K`, `M`, `G`, `T`) are powers of 1024; decimal units
    /// (`KB`, `MB`, `GB`, `TB`) are powers of 1000; `B` or no unit means bytes.
    /// Units are case-insensitive; a fraction is allowed (`"1.5GiB"`).
    public static func parseSize(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let unitStart = t.firstIndex(where: { !($0.isASCII && ($0.isNumber || $0 == ".")) }) ?? Optional(t.endIndex)
        else { return nil }
        let number = String(t[..<unitStart])
        let unit = t[unitStart...].trimmingCharacters(in: .whitespaces).lowercased()
        guard !number.isEmpty, number.first != ".", let value = Double(number) else { return nil }
        let multiplier: Double
        switch unit {
        case "", "b": multiplier = 1
        case "k", "kib": multiplier = 1024
        case "m", "mib": multiplier = 1024 * 1024
        case "g", "gib": multiplier = 1024 * 1024 * 1024
        case "t", "tib": multiplier = 1024 * 1024 * 1024 * 1024
        case "kb": multiplier = 1e3
        case "mb": multiplier = 1e6
        case "gb": multiplier = 1e9
        case "tb": multiplier = 1e12
        default: return nil
        }
        let bytes = (value * multiplier).rounded()
        guard bytes.isFinite, bytes < 9e18 else { return nil }
        return Int64(bytes)
    }

    /// Formats a byte count with the largest binary unit that divides it exactly
    /// (`16777216` → `"16MiB"`), else in bytes.
    public static func formatSize(_ bytes: Int64) -> String {
        for (unit, size) in [("TiB", Int64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes >= size && bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)B"
    }

    /// Parses a rate such as `"20MiB/s"` or `"500KB/s"` into bytes per second.
    public static func parseRate(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard t.hasSuffix("/s") else { return nil }
        return parseSize(String(t.dropLast(2)))
    }
}
