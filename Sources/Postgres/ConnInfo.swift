import Foundation
import CLibPQ
import Core

/// A parsed libpq connection string (URL `postgres://user@host:port/db?sslmode=…`
/// or `key=value` keywords), parsed by libpq itself (`PQconninfoParse`).
///
/// It exists so that a password never reaches a command line: `withoutPassword`
/// is what goes into `pg_dump -d`, `password` goes into the child's environment
/// (`PGPASSWORD`). Its `description` never shows the password.
public struct ConnInfo: Sendable, CustomStringConvertible {
    /// The explicitly given options, in libpq's order, password included.
    public let options: [(key: String, value: String)]

    public init(_ conninfo: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        guard let opts = PQconninfoParse(conninfo, &err) else {
            var msg = "invalid postgres connection string"
            if let err {
                msg += ": " + firstLine(String(cString: err))
                PQfreemem(err)
            }
            // The message of PQconninfoParse names the bad keyword or URL part, never a value.
            throw CairnError(.config, msg)
        }
        defer { PQconninfoFree(opts) }
        var out: [(key: String, value: String)] = []
        var p = opts
        while let kw = p.pointee.keyword {
            if let v = p.pointee.val {
                out.append((String(cString: kw), String(cString: v)))
            }
            p += 1
        }
        options = out
    }

    public subscript(key: String) -> String? {
        options.last(where: { $0.key == key })?.value
    }

    public var password: String? { self["password"] }

    /// The connection string in keyword form without any password,
    /// values quoted for libpq ('…' with \' and \\ escaped).
    public var withoutPassword: String {
        options.filter { $0.key != "password" }
            .map { "\($0.key)=\(ConnInfo.quote($0.value))" }
            .joined(separator: " ")
    }

    /// `host:port/db` for messages (defaults as libpq would use when absent).
    public var description: String {
        let host = self["host"] ?? self["hostaddr"] ?? "localhost"
        let port = self["port"] ?? "5432"
        let db = self["dbname"] ?? self["user"] ?? "?"
        return "\(host):\(port)/\(db)"
    }

    /// Quotes a keyword value for a libpq connection string.
    public static func quote(_ v: String) -> String {
        var s = "'"
        for c in v {
            if c == "'" || c == "\\" { s.append("\\") }
            s.append(c)
        }
        s.append("'")
        return s
    }

    /// This connection string with one option replaced (or added), e.g. another `dbname`.
    public func with(_ key: String, _ value: String) -> ConnInfo {
        var c = self
        c.set(key, value)
        return c
    }

    private mutating func set(_ key: String, _ value: String) {
        var o = options.filter { $0.key != key }
        o.append((key, value))
        self = ConnInfo(options: o)
    }

    private init(options: [(key: String, value: String)]) { self.options = options }

    /// The full connection string in keyword form, password included: only for
    /// libpq calls inside this process, never for argv, logs or messages.
    public var keywordString: String {
        options.map { "\($0.key)=\(ConnInfo.quote($0.value))" }.joined(separator: " ")
    }
}

/// The first non-empty line of a (libpq) message, trimmed.
func firstLine(_ s: String) -> String {
    for line in s.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
        let t = line.trimmingCharacters(in: .whitespaces)
        if !t.isEmpty { return t }
    }
    return ""
}

/// Quotes an SQL identifier like PostgreSQL's `quote_ident`: left bare only when
/// it is lower-case letters, digits, `_` and `$`, starts with a letter or `_`,
/// and is not a keyword that would need quoting.
public func quoteIdentifier(_ s: String) -> String {
    let bare = !s.isEmpty && s.unicodeScalars.enumerated().allSatisfy { i, c in
        (c >= "a" && c <= "z") || c == "_" || (i > 0 && ((c >= "0" && c <= "9") || c == "$"))
    } && !sqlKeywordsNeedingQuotes.contains(s)
    if bare { return s }
    return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// `schema.table`, each part quoted as needed.
public func qualifiedName(schema: String, table: String) -> String {
    quoteIdentifier(schema) + "." + quoteIdentifier(table)
}

/// PostgreSQL keywords that `quote_ident` quotes (reserved, type/function-name
/// and column-name keywords, from src/include/parser/kwlist.h).
let sqlKeywordsNeedingQuotes: Set<String> = [
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
    "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character",
    "check", "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create",
    "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
    "current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc",
    "distinct", "do", "else", "end", "except", "exists", "extract", "false", "fetch", "float",
    "for", "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping", "having",
    "ilike", "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into",
    "is", "isnull", "join", "json", "json_array", "json_arrayagg", "json_exists", "json_object",
    "json_objectagg", "json_query", "json_scalar", "json_serialize", "json_table", "json_value",
    "lateral", "leading", "least", "left", "like", "limit", "localtime", "localtimestamp",
    "merge_action", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null",
    "nullif", "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps",
    "overlay", "placing", "position", "precision", "primary", "real", "references", "returning",
    "right", "row", "select", "session_user", "setof", "similar", "smallint", "some", "substring",
    "symmetric", "system_user", "table", "tablesample", "then", "time", "timestamp", "to",
    "trailing", "treat", "trim", "true", "union", "unique", "user", "using", "values", "varchar",
    "variadic", "verbose", "when", "where", "window", "with", "xmlattributes", "xmlconcat",
    "xmlelement", "xmlexists", "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot",
    "xmlserialize", "xmltable",
]
