import Foundation

/// Collects issues for one file and knows where its keys are.
final class FileContext {
    let display: String
    let path: String
    var locator: TOMLKeyLocator
    private(set) var issues: [ConfigIssue] = []

    init(display: String, path: String, text: String) {
        self.display = display
        self.path = path
        self.locator = TOMLKeyLocator(text: text)
    }

    func add(_ kind: ConfigIssue.Kind, at keyPath: [String], fallbackLine: Int? = nil, key: String?, _ message: String) {
        let pos = locator.position(of: keyPath)
        let line = pos?.line ?? locator.nearestLine(of: keyPath) ?? fallbackLine
        issues.append(ConfigIssue(kind: kind, file: display, line: line, column: pos?.column, key: key, message: message))
    }

    func addFileIssue(_ kind: ConfigIssue.Kind, line: Int? = nil, column: Int? = nil, _ message: String) {
        issues.append(ConfigIssue(kind: kind, file: display, line: line, column: column, message: message))
    }

    static func displayKey(_ path: [String]) -> String {
        path.map { part in
            let bare = !part.isEmpty && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            return bare ? part : "\"\(part)\""
        }.joined(separator: ".")
    }
}

/// Typed access to one TOML table; every wrong value becomes an issue that
/// names the key, the expected type and the line, and the getter returns nil
/// so that checking carries on.
struct TableReader {
    let ctx: FileContext
    let path: [String]
    let values: [String: ConfigValue]
    /// Line to report missing keys at when the table itself is not written
    /// in the file (an absent `[backup]` table is reported at `kind`).
    var fallbackLine: Int? = nil

    func keyPath(_ key: String) -> [String] { path + [key] }
    func name(_ key: String) -> String { FileContext.displayKey(path + [key]) }
    var tableName: String { path.isEmpty ? "the top level" : "[\(FileContext.displayKey(path))]" }

    func has(_ key: String) -> Bool { values[key] != nil }

    func report(_ kind: ConfigIssue.Kind, _ key: String, _ message: String) {
        ctx.add(kind, at: keyPath(key), fallbackLine: fallbackLine, key: name(key), "\(name(key)): \(message)")
    }

    func missing(_ key: String, _ hint: String) {
        report(.missing, key, "required key is missing (\(hint))")
    }

    private func got(_ v: ConfigValue) -> String {
        switch v {
        case .table, .array: return v.typeName
        default: return "\(v.typeName) (\(v))"
        }
    }

    func string(_ key: String, required hint: String? = nil, nonEmpty: Bool = true) -> String? {
        guard let v = values[key] else {
            if let hint { missing(key, hint) }
            return nil
        }
        guard case .string(let s) = v else {
            report(.type, key, "expected a string, got \(got(v))")
            return nil
        }
        if nonEmpty && s.trimmingCharacters(in: .whitespaces).isEmpty {
            report(.invalidValue, key, "must not be empty")
            return nil
        }
        return s
    }

    func bool(_ key: String) -> Bool? {
        guard let v = values[key] else { return nil }
        guard case .bool(let b) = v else {
            report(.type, key, "expected true or false, got \(got(v))")
            return nil
        }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let v = values[key] else { return nil }
        guard case .int(let i) = v else {
            report(.type, key, "expected an integer \(Self.rangeText(range)), got \(got(v))")
            return nil
        }
        guard range.contains(i) else {
            report(.invalidValue, key, "expected an integer \(Self.rangeText(range)), got \(i)")
            return nil
        }
        return i
    }

    static func rangeText(_ r: ClosedRange<Int>) -> String {
        if r.upperBound == Int.max { return "≥ \(r.lowerBound)" }
        return "from \(r.lowerBound) to \(r.upperBound)"
    }

    func duration(_ key: String, min: Duration = .zero) -> Duration? {
        guard let v = values[key] else { return nil }
        let expected = "expected a duration like \"30m\" or \"2h\""
        guard case .string(let s) = v else {
            report(.type, key, "\(expected), got \(got(v))")
            return nil
        }
        guard let d = ConfigUnits.parseDuration(s) else {
            report(.invalidValue, key, "\(expected), got \"\(s)\"")
            return nil
        }
        guard d >= min else {
            report(.invalidValue, key, "must be at least \(ConfigUnits.formatDuration(min)), got \"\(s)\"")
            return nil
        }
        return d
    }

    func size(_ key: String, in range: ClosedRange<Int64>) -> Int64? {
        guard let v = values[key] else { return nil }
        let expected = "expected a size like \"16MiB\""
        let bytes: Int64
        switch v {
        case .string(let s):
            guard let b = ConfigUnits.parseSize(s) else {
                report(.invalidValue, key, "\(expected), got \"\(s)\"")
                return nil
            }
            bytes = b
        case .int(let i):
            bytes = Int64(i)
        default:
            report(.type, key, "\(expected), got \(got(v))")
            return nil
        }
        guard range.contains(bytes) else {
            report(.invalidValue, key, "must be from \(ConfigUnits.formatSize(range.lowerBound)) to \(ConfigUnits.formatSize(range.upperBound)), got \(v)")
            return nil
        }
        return bytes
    }

    func rate(_ key: String) -> Int64? {
        guard let v = values[key] else { return nil }
        let expected = "expected a rate like \"20MiB/s\""
        guard case .string(let s) = v else {
            report(.type, key, "\(expected), got \(got(v))")
            return nil
        }
        guard let r = ConfigUnits.parseRate(s), r > 0 else {
            report(.invalidValue, key, "\(expected), got \"\(s)\"")
            return nil
        }
        return r
    }

    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type) -> E? where E.RawValue == String {
        guard let v = values[key] else { return nil }
        let options = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        guard case .string(let s) = v else {
            report(.type, key, "expected one of \(options), got \(got(v))")
            return nil
        }
        guard let e = E(rawValue: s) else {
            report(.invalidValue, key, "expected one of \(options), got \"\(s)\"")
            return nil
        }
        return e
    }

    func timeZone(_ key: String) -> TimeZone? {
        guard let s = string(key) else { return nil }
        guard let tz = TimeZone(identifier: s) else {
            report(.invalidValue, key, "expected an IANA time zone name like \"Africa/Accra\" or \"UTC\", got \"\(s)\"")
            return nil
        }
        return tz
    }

    func stringArray(_ key: String) -> [String]? {
        guard let v = values[key] else { return nil }
        guard case .array(let items) = v else {
            report(.type, key, "expected an array of strings, got \(got(v))")
            return nil
        }
        var out: [String] = []
        for (n, item) in items.enumerated() {
            guard case .string(let s) = item, !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                report(.type, key, "expected an array of non-empty strings; item \(n + 1) is \(item.typeName)")
                return nil
            }
            out.append(s)
        }
        return out
    }

    /// The sub-table at `key`; nil (with an issue) when the key holds something else.
    func table(_ key: String) -> TableReader? {
        guard let v = values[key] else { return nil }
        guard case .table(let t) = v else {
            report(.type, key, "expected a table, got \(got(v))")
            return nil
        }
        return TableReader(ctx: ctx, path: keyPath(key), values: t, fallbackLine: fallbackLine)
    }

    /// Reports every key not in `allowed`, suggesting the closest known key.
    func rejectUnknownKeys(allowed: [String], except skip: Set<String> = []) {
        for key in values.keys.sorted() where !allowed.contains(key) && !skip.contains(key) {
            var msg = "unknown key '\(key)' in \(tableName)"
            if let s = Self.suggestion(for: key, among: allowed) { msg += " (did you mean '\(s)'?)" }
            msg += "; expected one of: " + allowed.joined(separator: ", ")
            ctx.add(.unknownKey, at: keyPath(key), fallbackLine: fallbackLine, key: name(key), msg)
        }
    }

    static func suggestion(for key: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (best, d) = scored, d <= max(2, key.count / 3) else { return nil }
        return best
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        for i in 1...a.count {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}
