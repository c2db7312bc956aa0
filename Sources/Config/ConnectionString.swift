/// Checks libpq connection strings without ever echoing them (they might hold
/// a password, which is exactly what this rejects).
enum ConnectionString {
    enum Verdict: Equatable {
        case ok
        case containsPassword
        case invalid(String)
    }

    static let hint = "expected a libpq URL like \"postgres:///mydb?host=/var/run/postgresql\" or keywords like \"host=/var/run/postgresql dbname=mydb\""

    static func check(_ s: String) -> Verdict {
        if let schemeEnd = s.range(of: "://") {
            let scheme = s[..<schemeEnd.lowerBound]
            guard scheme == "postgres" || scheme == "postgresql" else {
                return .invalid("URL scheme must be postgres:// or postgresql://; \(hint)")
            }
            let rest = s[schemeEnd.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") {
                return .containsPassword
            }
            if let q = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: q)...].split(separator: "&") {
                    let key = pair.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
                    if key == "password" { return .containsPassword }
                }
            }
            return .ok
        }
        // Keyword/value form: key = value pairs, values optionally single-quoted.
        switch keywordPairs(s) {
        case .failure(let why): return .invalid(why.message)
        case .success(let pairs):
            if pairs.contains(where: { $0.0 == "password" }) { return .containsPassword }
            return pairs.isEmpty ? .invalid(hint) : .ok
        }
    }

    /// The key/value pairs of a libpq keyword string (`host=/run dbname='my db'`),
    /// values unquoted and unescaped; the one parser of that form (also the
    /// scratch URL's comparison with the source database, `VerifyConfig`).
    static func keywordPairs(_ s: String) -> Result<[(String, String)], ConfigTextError> {
        let c = Array(s)
        var i = 0
        var out: [(String, String)] = []
        func skipSpace() { while i < c.count, c[i].isWhitespace { i += 1 } }
        while true {
            skipSpace()
            if i >= c.count { break }
            var key = ""
            while i < c.count, !c[i].isWhitespace, c[i] != "=" { key.append(c[i]); i += 1 }
            skipSpace()
            guard i < c.count, c[i] == "=" else { return .failure(ConfigTextError(hint)) }
            i += 1
            skipSpace()
            var value = ""
            if i < c.count, c[i] == "'" {
                i += 1
                while i < c.count, c[i] != "'" { if c[i] == "\\", i + 1 < c.count { i += 1 }; value.append(c[i]); i += 1 }
                guard i < c.count else { return .failure(ConfigTextError("unterminated quoted value; \(hint)")) }
                i += 1
            } else {
                while i < c.count, !c[i].isWhitespace { if c[i] == "\\", i + 1 < c.count { i += 1 }; value.append(c[i]); i += 1 }
            }
            out.append((key, value))
        }
        return .success(out)
    }
}
