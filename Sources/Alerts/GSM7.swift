/// The GSM 03.38 (GSM-7) alphabet of SMS: one segment holds 160 septets;
/// characters of the extension table take two.
public enum GSM7 {
    static let basic: Set<Character> = Set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
    static let extended: Set<Character> = Set("^{}\\[~]|€")
    public static let segmentSeptets = 160

    /// Septets `text` takes, or nil when it has a character outside GSM-7.
    public static func septets(_ text: String) -> Int? {
        var n = 0
        for c in text {
            if basic.contains(c) { n += 1 } else if extended.contains(c) { n += 2 } else { return nil }
        }
        return n
    }

    /// `text` on one line in GSM-7: line breaks and tabs become spaces, runs
    /// of spaces one space, common typographic characters their ASCII
    /// equivalents, anything else outside the alphabet `?`.
    public static func sanitize(_ text: String) -> String {
        var out = ""
        var lastSpace = false
        for c in text {
            var r: String
            switch c {
            case "\n", "\r", "\r\n", "\t": r = " "
            case "…": r = "..."
            case "–", "—", "‐", "−": r = "-"
            case "‘", "’", "`", "´": r = "'"
            case "“", "”", "«", "»": r = "\""
            default: r = basic.contains(c) || extended.contains(c) ? String(c) : "?"
            }
            if r == " " {
                if lastSpace { continue }
                lastSpace = true
            } else {
                lastSpace = false
            }
            out += r
        }
        return out.trimmingCharacters(in: .whitespaces)
    }

    /// The longest prefix of `text` (already sanitized) that fits in
    /// `septets`, ending in "..." when something was cut.
    public static func truncate(_ text: String, to limit: Int) -> String {
        guard let n = septets(text), n > limit else { return text }
        guard limit > 3 else { return String(repeating: ".", count: max(0, limit)) }
        var out = ""
        var used = 0
        for c in text {
            let w = extended.contains(c) ? 2 : 1
            if used + w > limit - 3 { break }
            out.append(c)
            used += w
        }
        while out.hasSuffix(" ") { out.removeLast() }
        return out + "..."
    }
}

import Foundation
