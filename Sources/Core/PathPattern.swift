/// Exclude patterns for paths relative to a directory tree (migration
/// sources), in the style of rclone's filters and gitignore:
///
/// - `*` matches any run of characters within one path component (not `/`);
///   `**` matches any run including `/`; `?` one character that is not `/`;
///   `[abc]`, `[a-z]`, `[!0-9]` one character of (or not of) a set;
///   `\` makes the next character literal.
/// - A pattern that starts with `/` is anchored at the top of the tree;
///   otherwise it may match the end of the path at any depth: `*.tmp`
///   matches `a.tmp` and `2024/05/a.tmp`; `cache/*.jpg` matches
///   `users/7/cache/x.jpg`.
/// - A pattern that ends with `/` matches directories only, and everything
///   under a matching directory is excluded: `.thumbnails/`, `/tmp/`.
///
/// Matching works on Unicode scalars, so `?` is one character of a
/// non-ASCII name.
public struct PathPattern: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    let anchored: Bool
    let directoryOnly: Bool
    let tokens: [Token]

    enum Token: Sendable, Equatable {
        case literal(Unicode.Scalar)
        case one                       // ?
        case star                      // *
        case globstar                  // **
        case globstarSlash             // **/ : zero or more whole directories
        case set([ClosedRange<Unicode.Scalar>], negated: Bool)
    }

    public var description: String { text }

    /// Parses `text`; throws `.config` naming what is wrong with it.
    public init(_ text: String) throws {
        self.text = text
        var body = Substring(text)
        guard !body.isEmpty else { throw CairnError(.config, "an empty exclude pattern") }
        anchored = body.hasPrefix("/")
        if anchored { body = body.dropFirst() }
        directoryOnly = body.hasSuffix("/") && !body.hasSuffix("\\/")
        if directoryOnly { body = body.dropLast() }
        guard !body.isEmpty else { throw CairnError(.config, "exclude pattern \"\(text)\" matches nothing (it is only slashes)") }
        guard !body.contains("//") else { throw CairnError(.config, "exclude pattern \"\(text)\" has an empty path component (\"//\")") }

        var out: [Token] = []
        let scalars = Array(body.unicodeScalars)
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            switch c {
            case "\\":
                guard i + 1 < scalars.count else { throw CairnError(.config, "exclude pattern \"\(text)\" ends with a lone \\") }
                out.append(.literal(scalars[i + 1])); i += 2
            case "*":
                if i + 1 < scalars.count && scalars[i + 1] == "*" {
                    i += 2
                    // `**/` as a whole component also matches no directory at
                    // all: `a/**/b` matches `a/b`, `**/x` matches `x`.
                    if i < scalars.count && scalars[i] == "/" && (out.isEmpty || out.last == .literal("/")) {
                        out.append(.globstarSlash); i += 1
                    } else {
                        out.append(.globstar)
                    }
                } else {
                    out.append(.star); i += 1
                }
            case "?":
                out.append(.one); i += 1
            case "[":
                var j = i + 1
                var negated = false
                if j < scalars.count && (scalars[j] == "!" || scalars[j] == "^") { negated = true; j += 1 }
                var ranges: [ClosedRange<Unicode.Scalar>] = []
                var first = true
                while j < scalars.count && (scalars[j] != "]" || first) {
                    var lo = scalars[j]
                    if lo == "\\" && j + 1 < scalars.count { j += 1; lo = scalars[j] }
                    if j + 2 < scalars.count && scalars[j + 1] == "-" && scalars[j + 2] != "]" {
                        var hi = scalars[j + 2]
                        var skip = 3
                        if hi == "\\" && j + 3 < scalars.count { hi = scalars[j + 3]; skip = 4 }
                        guard lo <= hi else { throw CairnError(.config, "exclude pattern \"\(text)\": range \(lo)-\(hi) is backwards") }
                        ranges.append(lo...hi); j += skip
                    } else {
                        ranges.append(lo...lo); j += 1
                    }
                    first = false
                }
                guard j < scalars.count else { throw CairnError(.config, "exclude pattern \"\(text)\" has a [ without its ]") }
                out.append(.set(ranges, negated: negated)); i = j + 1
            default:
                out.append(.literal(c)); i += 1
            }
        }
        tokens = out
    }

    /// True if `path` (relative, `/`-separated, no leading `/`) is excluded.
    /// `isDirectory` says whether it names a directory.
    public func matches(_ path: String, isDirectory: Bool) -> Bool {
        if directoryOnly && !isDirectory { return false }
        let s = Array(path.unicodeScalars)
        if anchored { return Self.match(tokens[...], s[...]) }
        // Unanchored: the whole path, or any tail that starts after a `/`.
        if Self.match(tokens[...], s[...]) { return true }
        for (k, c) in s.enumerated() where c == "/" {
            if Self.match(tokens[...], s[(k + 1)...]) { return true }
        }
        return false
    }

    static func match(_ p: ArraySlice<Token>, _ s: ArraySlice<Unicode.Scalar>) -> Bool {
        guard let t = p.first else { return s.isEmpty }
        let rest = p.dropFirst()
        switch t {
        case .literal(let c):
            guard let f = s.first, f == c else { return false }
            return match(rest, s.dropFirst())
        case .one:
            guard let f = s.first, f != "/" else { return false }
            return match(rest, s.dropFirst())
        case .set(let ranges, let negated):
            guard let f = s.first, f != "/" else { return false }
            guard ranges.contains(where: { $0.contains(f) }) != negated else { return false }
            return match(rest, s.dropFirst())
        case .star:
            var tail = s
            while true {
                if match(rest, tail) { return true }
                guard let f = tail.first, f != "/" else { return false }
                tail = tail.dropFirst()
            }
        case .globstar:
            var tail = s
            while true {
                if match(rest, tail) { return true }
                guard !tail.isEmpty else { return false }
                tail = tail.dropFirst()
            }
        case .globstarSlash:
            // `**/`: nothing, or any run of whole directories.
            if match(rest, s) { return true }
            var tail = s
            while let k = tail.firstIndex(of: "/") {
                tail = tail[(k + 1)...]
                if match(rest, tail) { return true }
            }
            return false
        }
    }
}

/// A list of exclude patterns; a path is excluded when any of them matches.
public struct PathFilter: Sendable, Equatable {
    public let patterns: [PathPattern]

    public init(_ patterns: [PathPattern] = []) { self.patterns = patterns }

    public init(parsing texts: [String]) throws {
        patterns = try texts.map(PathPattern.init)
    }

    public var isEmpty: Bool { patterns.isEmpty }

    /// The first pattern that excludes `path`, nil if none does.
    public func exclusion(of path: String, isDirectory: Bool) -> PathPattern? {
        patterns.first { $0.matches(path, isDirectory: isDirectory) }
    }
}
