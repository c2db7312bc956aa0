import Foundation

/// A SQL script split into statements and tokens, as psql would split it:
/// `;` ends a statement except inside a string literal (`'…'`, `E'…'`), a
/// quoted identifier (`"…"`), a dollar-quoted string or a comment; a line
/// that starts with `\` where a statement would start is a psql meta-command
/// (`\restrict`, `\connect`). Enough to read what `pg_dumpall` and `pg_dump`
/// write (role, grant and tablespace statements), not a SQL parser.
public struct SQLScript: Sendable {
    public struct Token: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// An unquoted word (keyword or identifier), as written.
            case word
            /// A double-quoted identifier; `text` is its value (quotes removed, `""` → `"`).
            case quotedIdentifier
            /// A string literal (`'…'`, `E'…'`, `$$…$$`); `text` is its source.
            case string
            /// Any other character (`,`, `(`, `=` …) or a number.
            case other
        }
        public var kind: Kind
        public var text: String
        /// Where the token is in the statement's `text`.
        public var range: Range<String.Index>

        /// True if this is the unquoted keyword `keyword` (any case).
        public func isKeyword(_ keyword: String) -> Bool {
            kind == .word && text.caseInsensitiveCompare(keyword) == .orderedSame
        }

        /// The identifier's value: unquoted words fold to lower case, as in PostgreSQL.
        public var identifier: String? {
            switch kind {
            case .word: return text.lowercased()
            case .quotedIdentifier: return text
            default: return nil
            }
        }
    }

    public struct Statement: Sendable {
        /// The statement's source, without the terminating `;` and surrounding blanks.
        public var text: String
        public var tokens: [Token]
        /// A psql meta-command line (`\…`): `tokens` is empty.
        public var isMetaCommand: Bool
    }

    public var statements: [Statement]

    public init(_ source: String) {
        statements = []
        var current = ""
        var i = source.startIndex
        func flush() {
            let t = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if !t.isEmpty { statements.append(Statement(text: t, tokens: Self.tokens(t), isMetaCommand: false)) }
            current = ""
        }
        while i < source.endIndex {
            let c = source[i]
            if c == "\\" && current.allSatisfy(\.isWhitespace) {
                let end = source[i...].firstIndex(where: \.isNewline) ?? source.endIndex
                statements.append(Statement(text: String(source[i..<end]), tokens: [], isMetaCommand: true))
                current = ""
                i = end
                continue
            }
            if c == ";" {
                flush()
                i = source.index(after: i)
                continue
            }
            let end = Self.skipQuotedOrComment(source, from: i)
            if (c == "-" || c == "/") && end > source.index(after: i) {
                current += " "  // a comment
            } else {
                current += source[i..<end]
            }
            i = end
        }
        flush()
    }

    /// The index after the `quote` that closes a literal or identifier whose
    /// body starts at `start` (a doubled quote stands for itself), or the end.
    static func endOfQuoted(_ s: String, from start: String.Index, quote: Character) -> String.Index {
        var j = start
        while j < s.endIndex {
            if s[j] == quote {
                let k = s.index(after: j)
                if k < s.endIndex && s[k] == quote { j = s.index(after: k); continue }
                return k
            }
            j = s.index(after: j)
        }
        return s.endIndex
    }

    /// The end of the literal, quoted identifier or comment starting at `i`,
    /// or the index after `i` if none starts there. An unterminated one runs to the end.
    static func skipQuotedOrComment(_ s: String, from i: String.Index) -> String.Index {
        let c = s[i]
        let next = s.index(after: i)
        switch c {
        case "'", "\"":
            return endOfQuoted(s, from: next, quote: c)
        case "E", "e":
            // E'…': backslash escapes, unless E is the end of a word (handled by the caller's word scan)
            guard next < s.endIndex, s[next] == "'" else { return next }
            if i > s.startIndex, isWordChar(s[s.index(before: i)]) { return next }
            var j = s.index(after: next)
            while j < s.endIndex {
                if s[j] == "\\" { j = s.index(after: j); if j < s.endIndex { j = s.index(after: j) }; continue }
                if s[j] == "'" {
                    let k = s.index(after: j)
                    if k < s.endIndex && s[k] == "'" { j = s.index(after: k); continue }
                    return k
                }
                j = s.index(after: j)
            }
            return s.endIndex
        case "-":
            guard next < s.endIndex, s[next] == "-" else { return next }
            return s[i...].firstIndex(where: \.isNewline) ?? s.endIndex
        case "/":
            guard next < s.endIndex, s[next] == "*" else { return next }
            guard let r = s.range(of: "*/", range: s.index(after: next)..<s.endIndex) else { return s.endIndex }
            return r.upperBound
        case "$":
            // $tag$ … $tag$ (tag: letters, digits, underscores; not starting with a digit)
            guard let close = s[next...].firstIndex(of: "$") else { return next }
            let tag = s[next..<close]
            guard tag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !(tag.first?.isNumber ?? false) else { return next }
            if i > s.startIndex, isWordChar(s[s.index(before: i)]) { return next }
            let delimiter = String(s[i...close])
            guard let r = s.range(of: delimiter, range: s.index(after: close)..<s.endIndex) else { return s.endIndex }
            return r.upperBound
        default:
            return next
        }
    }

    static func isWordChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "$" }

    /// The tokens of one statement (comments dropped).
    public static func tokens(_ s: String) -> [Token] {
        var out: [Token] = []
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c.isWhitespace { i = s.index(after: i); continue }
            let end = skipQuotedOrComment(s, from: i)
            if c == "-" || c == "/", end > s.index(after: i) { i = end; continue }  // comment
            if c == "'" || ((c == "E" || c == "e" || c == "$") && end > s.index(after: i)) {
                out.append(Token(kind: .string, text: String(s[i..<end]), range: i..<end))
                i = end
                continue
            }
            if c == "\"" {
                var value = String(s[s.index(after: i)..<end])
                if value.hasSuffix("\"") { value.removeLast() }
                out.append(Token(kind: .quotedIdentifier, text: value.replacingOccurrences(of: "\"\"", with: "\""), range: i..<end))
                i = end
                continue
            }
            if c.isLetter || c == "_" {
                var j = s.index(after: i)
                while j < s.endIndex, isWordChar(s[j]) { j = s.index(after: j) }
                out.append(Token(kind: .word, text: String(s[i..<j]), range: i..<j))
                i = j
                continue
            }
            out.append(Token(kind: .other, text: String(c), range: i..<s.index(after: i)))
            i = s.index(after: i)
        }
        return out
    }
}

extension Array where Element == SQLScript.Token {
    /// The comma-separated identifiers from `start` (`GROUP` / `ROLE` noise words skipped),
    /// up to the first token that is neither; returns them and the index after.
    func identifierList(from start: Int) -> ([String], Int) {
        var names: [String] = []
        var i = start
        while i < count {
            if self[i].isKeyword("GROUP") || self[i].isKeyword("ROLE") || self[i].isKeyword("USER") { i += 1; continue }
            guard let id = self[i].identifier else { break }
            names.append(id)
            i += 1
            guard i < count, self[i].text == "," else { break }
            i += 1
        }
        return (names, i)
    }

    /// The index of the first unquoted keyword `keyword` at or after `start`.
    func index(ofKeyword keyword: String, from start: Int = 0) -> Int? {
        guard start < count else { return nil }
        return self[start...].firstIndex { $0.isKeyword(keyword) }
    }
}
