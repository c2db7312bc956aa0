import Foundation

/// The parts of a verify unit that need more than one key: its checks, and
/// the rule that the scratch server is never the backed-up database.
extension ConfigLoader {
    /// `checks = ["SQL", { name = "...", sql = "..." }]`.
    func verifyChecks(_ k: TableReader) -> [VerifyCheck] {
        guard let v = k.values["checks"] else { return [] }
        guard case .array(let items) = v else {
            k.report(.type, "checks", "expected an array of SQL strings or { name = \"...\", sql = \"...\" } tables, got \(v.typeName)")
            return []
        }
        var out: [VerifyCheck] = []
        for (n, item) in items.enumerated() {
            switch item {
            case .string(let sql) where !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty:
                out.append(VerifyCheck(sql: sql))
            case .table(let t):
                guard case .string(let sql)? = t["sql"], !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    k.report(.type, "checks", "item \(n + 1): a table needs sql = \"a query returning one true value\"")
                    continue
                }
                if let unknown = t.keys.sorted().first(where: { $0 != "name" && $0 != "sql" }) {
                    k.report(.unknownKey, "checks", "item \(n + 1): unknown key '\(unknown)' (a check has name and sql)")
                    continue
                }
                var name = sql
                if let nv = t["name"] {
                    guard case .string(let s) = nv, !s.trimmingCharacters(in: .whitespaces).isEmpty else {
                        k.report(.type, "checks", "item \(n + 1): name must be a non-empty string")
                        continue
                    }
                    name = s
                }
                out.append(VerifyCheck(name: name, sql: sql))
            default:
                k.report(.type, "checks", "item \(n + 1) is \(item.typeName); expected a non-empty SQL string or { name = \"...\", sql = \"...\" }")
            }
        }
        if Set(out.map(\.name)).count != out.count {
            k.report(.invalidValue, "checks", "two checks have the same name; give each its own")
        }
        return out
    }

    /// Refuses a scratch URL naming the backup job's own database (same host,
    /// port and database name): verification drops what it restores into.
    func checkScratchServer(_ spec: VerifySpec, from unit: JobUnit, in units: [String: JobUnit]) {
        guard case .backup(let backup)? = units[spec.backupJob]?.job.spec,
              let scratch = ConnectionString.target(spec.scratchDatabaseURL),
              let source = ConnectionString.target(backup.database),
              scratch.sameDatabase(as: source) else { return }
        let r = unit.kindReader ?? unit.reader
        r.report(.invalidValue, "scratch_database_url",
                 "names the database that backup job '\(spec.backupJob)' backs up (\(source.display)); scratch databases are created and dropped on this server through its database, so give another database on that server (such as postgres) or another server")
    }
}

extension ConnectionString {
    /// Where a connection string points: host, port, database (as written; nil = libpq's default).
    struct Target: Equatable {
        var host: String?
        var port: String?
        var dbname: String?

        /// Hosts that reach the local server: no host, a socket directory, loopback names.
        var normalizedHost: String {
            guard let h = host?.split(separator: ",").first.map(String.init), !h.isEmpty else { return "local" }
            if h.hasPrefix("/") || h.hasPrefix("@") || ["localhost", "127.0.0.1", "::1", "[::1]"].contains(h.lowercased()) { return "local" }
            return h.lowercased()
        }
        var normalizedPort: String { port?.split(separator: ",").first.map(String.init).flatMap { $0.isEmpty ? nil : $0 } ?? "5432" }

        /// True when both name the same database on what may be the same server
        /// (unknown database names never match: libpq's default is the user name).
        func sameDatabase(as other: Target) -> Bool {
            guard let a = dbname, let b = other.dbname, !a.isEmpty else { return false }
            return a == b && normalizedHost == other.normalizedHost && normalizedPort == other.normalizedPort
        }

        var display: String { "host \(host ?? "(default)"), port \(normalizedPort), database \(dbname ?? "(default)")" }
    }

    /// Parses host, port and dbname from a URL or keyword string; nil when it cannot.
    static func target(_ s: String) -> Target? {
        var t = Target()
        if let schemeEnd = s.range(of: "://") {
            var rest = String(s[schemeEnd.upperBound...])
            var query = ""
            if let q = rest.firstIndex(of: "?") { query = String(rest[rest.index(after: q)...]); rest = String(rest[..<q]) }
            var authority = rest, path = ""
            if let slash = rest.firstIndex(of: "/") { authority = String(rest[..<slash]); path = String(rest[rest.index(after: slash)...]) }
            if let at = authority.lastIndex(of: "@") { authority = String(authority[authority.index(after: at)...]) }
            if authority.hasPrefix("[") , let close = authority.firstIndex(of: "]") {
                t.host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                if after.hasPrefix(":") { t.port = String(after.dropFirst()) }
            } else if let colon = authority.lastIndex(of: ":") {
                t.host = String(authority[..<colon]); t.port = String(authority[authority.index(after: colon)...])
            } else if !authority.isEmpty {
                t.host = authority
            }
            t.host = t.host.flatMap { $0.isEmpty ? nil : ($0.removingPercentEncoding ?? $0) }
            if !path.isEmpty { t.dbname = path.removingPercentEncoding ?? path }
            for pair in query.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                guard kv.count == 2 else { continue }
                switch kv[0] {
                case "host": t.host = kv[1]
                case "port": t.port = kv[1]
                case "dbname": t.dbname = kv[1]
                default: break
                }
            }
            return t
        }
        guard case .ok = check(s) else { return nil }
        for (key, value) in (try? keywordPairs(s).get()) ?? [] {
            switch key {
            case "host": t.host = value
            case "hostaddr": if t.host == nil { t.host = value }
            case "port": t.port = value
            case "dbname": t.dbname = value
            default: break
            }
        }
        return t
    }
}
