/// Finds where a key is written in a TOML text, since TOMLKit keeps no source
/// positions for values. It follows `[table]` and `[[array]]` headers,
/// `key = value` lines (dotted and quoted keys), keys inside inline tables,
/// and skips strings (including multi-line ones), arrays and comments.
///
/// Meant for text that already parsed as TOML; on anything else it does its
/// best and never loops. Positions are 1-based; columns count characters.
/// For a key that occurs more than once (in an array of tables) the first
/// occurrence is returned.
public struct TOMLKeyLocator: Sendable {
    public struct Position: Sendable, Equatable {
        public var line: Int
        public var column: Int
        public init(line: Int, column: Int) { self.line = line; self.column = column }
    }

    private var positions: [String: Position] = [:]

    public init(text: String) {
        var scanner = Scanner(chars: Array(text))
        scanner.document()
        positions = scanner.found
    }

    /// The position of the key (or table header) at `path`, such as
    /// `["storage", "primary", "url"]` or `["storage", "primary"]`.
    public func position(of path: [String]) -> Position? {
        positions[Self.join(path)]
    }

    /// The line of `path`, or of its closest enclosing table that is written
    /// in the file.
    public func nearestLine(of path: [String]) -> Int? {
        var p = path
        while !p.isEmpty {
            if let pos = position(of: p) { return pos.line }
            p.removeLast()
        }
        return nil
    }

    static func join(_ path: [String]) -> String { path.joined(separator: "\u{0}") }

    private struct Scanner {
        let chars: [Character]
        var i = 0
        var line = 1
        var col = 1
        var found: [String: Position] = [:]

        init(chars: [Character]) { self.chars = chars }

        var atEnd: Bool { i >= chars.count }
        var peek: Character? { i < chars.count ? chars[i] : nil }
        func peek(_ offset: Int) -> Character? { i + offset < chars.count ? chars[i + offset] : nil }

        mutating func advance() {
            guard i < chars.count else { return }
            if chars[i] == "\n" || chars[i] == "\r\n" { line += 1; col = 1 } else { col += 1 }
            i += 1
        }

        mutating func record(_ path: [String], _ pos: Position) {
            let k = TOMLKeyLocator.join(path)
            if found[k] == nil { found[k] = pos }
        }

        /// Spaces and tabs; with `newlines`, also line ends and comments.
        mutating func skipSpace(newlines: Bool) {
            while let c = peek {
                if c == " " || c == "\t" { advance() }
                else if newlines && (c == "\n" || c == "\r\n" || c == "\r") { advance() }
                else if newlines && c == "#" { skipComment() }
                else { break }
            }
        }

        mutating func skipComment() {
            while let c = peek, c != "\n", c != "\r\n" { advance() }
        }

        mutating func skipRestOfLine() {
            while let c = peek, c != "\n", c != "\r\n" { advance() }
            advance()
        }

        mutating func document() {
            var table: [String] = []
            while !atEnd {
                let before = i
                skipSpace(newlines: true)
                guard let c = peek else { break }
                if c == "[" {
                    let pos = Position(line: line, column: col)
                    let isArray = peek(1) == "["
                    advance(); if isArray { advance() }
                    skipSpace(newlines: false)
                    table = parseKey()
                    record(table, pos)
                    skipRestOfLine()
                } else {
                    keyValue(prefix: table)
                }
                if i == before { advance() }
            }
        }

        /// `key = value`, recording the key's position under `prefix` (if any).
        mutating func keyValue(prefix: [String]?) {
            let pos = Position(line: line, column: col)
            let key = parseKey()
            let path = prefix.map { $0 + key }
            if let path, !key.isEmpty { record(path, pos) }
            skipSpace(newlines: false)
            guard peek == "=" else { skipRestOfLine(); return }
            advance()
            skipSpace(newlines: false)
            value(path: path)
        }

        /// A dotted key made of bare and quoted parts.
        mutating func parseKey() -> [String] {
            var parts: [String] = []
            while !atEnd {
                skipSpace(newlines: false)
                guard let c2 = peek else { break }
                if c2 == "\"" || c2 == "'" {
                    parts.append(quoted(c2))
                } else {
                    var s = ""
                    while let b = peek, b.isASCII, b.isLetter || b.isNumber || b == "_" || b == "-" { s.append(b); advance() }
                    if s.isEmpty { break }
                    parts.append(s)
                }
                skipSpace(newlines: false)
                if peek == "." { advance() } else { break }
            }
            return parts
        }

        /// A single-line quoted string; returns its (unescaped enough) content.
        mutating func quoted(_ q: Character) -> String {
            advance()
            var s = ""
            while let c = peek, c != "\n", c != "\r\n" {
                if c == q { advance(); break }
                if q == "\"" && c == "\\" {
                    advance()
                    if let e = peek { s.append(e == "n" ? "\n" : e == "t" ? "\t" : e); advance() }
                    continue
                }
                s.append(c); advance()
            }
            return s
        }

        mutating func multiline(_ q: Character) {
            advance(); advance(); advance()
            while let c = peek {
                if q == "\"" && c == "\\" { advance(); advance(); continue }
                if c == q && peek(1) == q && peek(2) == q {
                    advance(); advance(); advance()
                    // Up to two more quotes may belong to the content.
                    while peek == q { advance() }
                    return
                }
                advance()
            }
        }

        mutating func value(path: [String]?) {
            guard let c = peek else { return }
            switch c {
            case "\"", "'":
                if peek(1) == c && peek(2) == c { multiline(c) } else { _ = quoted(c) }
            case "[":
                advance()
                while !atEnd {
                    let before = i
                    skipSpace(newlines: true)
                    if peek == "]" { advance(); return }
                    value(path: nil)
                    skipSpace(newlines: true)
                    if peek == "," { advance() }
                    if i == before { advance() }
                }
            case "{":
                advance()
                while !atEnd {
                    let before = i
                    skipSpace(newlines: false)
                    if peek == "}" { advance(); return }
                    if peek == "\n" || peek == "\r\n" { return }
                    keyValue(prefix: path)
                    skipSpace(newlines: false)
                    if peek == "," { advance() }
                    if i == before { advance() }
                }
            default:
                while let c = peek, c != ",", c != "]", c != "}", c != "\n", c != "\r\n", c != "#" { advance() }
            }
        }
    }
}
