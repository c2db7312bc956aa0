/// The one escaping of file names in reports and logs: a name cannot start
/// a new line, move the cursor or hide behind a terminal escape, and bytes
/// that are not UTF-8 stay visible.
///
/// - `\` → `\\`
/// - newline → `\n`, carriage return → `\r`, tab → `\t`, ESC → `\e`
/// - any other C0 control (0x00–0x1F), DEL (0x7F) and the C1 controls
///   (U+0080–U+009F) → `\xNN` (C1 as `\u{NN}`: they are valid UTF-8)
/// - a byte that is not part of valid UTF-8 → `\xNN` (uppercase hex)
/// - everything else (printable ASCII, other Unicode) as is
///
/// Escaped text is never parsed back: the checkpoint and the mapping file
/// keep exact names (the mapping file is JSON, whose own escaping applies).
public enum PathText {
    /// `bytes` (a name or path as on disk) for a report or log line.
    public static func escape<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = ""
        let a = Array(bytes)
        var i = 0
        while i < a.count {
            let b = a[i]
            if b < 0x80 {
                out += ascii(b)
                i += 1
                continue
            }
            let len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0
            if len > 0, i + len <= a.count, let s = String(validating: a[i..<i + len], as: UTF8.self) {
                out += scalarText(s)
                i += len
            } else {
                out += hex(b)
                i += 1
            }
        }
        return out
    }

    /// A Swift string (always valid Unicode) for a report or log line.
    public static func escape(_ s: String) -> String {
        escape(Array(s.utf8))
    }

    private static func ascii(_ b: UInt8) -> String {
        switch b {
        case 0x5C: return "\\\\"
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        case 0x1B: return "\\e"
        case 0..<0x20, 0x7F: return hex(b)
        default: return String(UnicodeScalar(b))
        }
    }

    private static func scalarText(_ s: String) -> String {
        guard let v = s.unicodeScalars.first?.value, (0x80...0x9F).contains(v) else { return s }
        return "\\u{" + String(v, radix: 16, uppercase: true) + "}"
    }

    private static func hex(_ b: UInt8) -> String {
        let d = Array("0123456789ABCDEF")
        return "\\x" + String(d[Int(b >> 4)]) + String(d[Int(b & 0xF)])
    }
}
