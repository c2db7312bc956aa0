import Foundation

/// A `pg_dumpall --globals-only` script, read statement by statement so that
/// it can be applied to a server that already has some of its roles.
///
/// What pg_dumpall writes (pg_dumpall.c, PostgreSQL 12–17): `SET` lines;
/// per role `CREATE ROLE r;` then `ALTER ROLE r WITH … [PASSWORD '…'] …;`,
/// `COMMENT ON ROLE`, `SECURITY LABEL … ON ROLE`; role settings
/// (`ALTER ROLE r [IN DATABASE d] SET …`); memberships (`GRANT g TO r [WITH …]
/// [GRANTED BY x];`); privileges on parameters (`GRANT … ON PARAMETER … TO r`);
/// tablespaces (`CREATE TABLESPACE`, `ALTER/COMMENT/GRANT … TABLESPACE`); and,
/// since 15.14/16.10/17.6, the psql meta-commands `\restrict` / `\unrestrict`.
///
/// `filtered` keeps the statements for the roles to create and drops the
/// rest: an existing role is left exactly as it is, passwords are removed
/// unless asked for, tablespaces are never created (their directories belong
/// to the old host), and meta-commands are dropped (an older psql does not
/// know `\restrict`).
public struct GlobalsScript: Sendable {
    public enum Kind: Sendable, Equatable {
        /// `CREATE ROLE`, `ALTER ROLE`, `COMMENT ON ROLE`, `SECURITY LABEL … ON ROLE`.
        case role(String)
        /// `GRANT roles TO members [… GRANTED BY grantor]`.
        case membership(roles: [String], members: [String], grantor: String?)
        /// `GRANT/REVOKE … ON PARAMETER … TO/FROM grantees`.
        case parameterPrivilege(grantees: [String])
        /// Anything about a tablespace.
        case tablespace(String)
        /// `SET …` and anything else.
        case other
        /// A psql meta-command line.
        case metaCommand
    }

    public struct Entry: Sendable {
        public var kind: Kind
        public var statement: SQLScript.Statement
    }

    public var entries: [Entry]

    public init(_ text: String) {
        entries = SQLScript(text).statements.map { Entry(kind: Self.classify($0), statement: $0) }
    }

    /// Every role the script creates, in order.
    public var roles: [String] {
        entries.compactMap { e in
            if case .role(let r) = e.kind, e.statement.tokens.first?.isKeyword("CREATE") == true { return r }
            return nil
        }
    }

    /// Role memberships: (role, member) pairs.
    public var memberships: [(role: String, member: String)] {
        entries.flatMap { e -> [(role: String, member: String)] in
            guard case .membership(let roles, let members, _) = e.kind else { return [] }
            return roles.flatMap { r in members.map { (role: r, member: $0) } }
        }
    }

    /// Tablespaces the script creates.
    public var tablespaces: [String] {
        entries.compactMap { e in
            if case .tablespace(let t) = e.kind, e.statement.tokens.first?.isKeyword("CREATE") == true { return t }
            return nil
        }
    }

    /// The roles a database whose objects name `roots` needs: `roots`, their
    /// members (transitively: the login roles that use their privileges), and
    /// the roles all of these are members of (transitively: privileges they
    /// inherit). Not the other members of those groups.
    public func rolesLinked(to roots: Set<String>) -> Set<String> {
        let pairs = memberships
        var down = roots
        var changed = true
        while changed {
            changed = false
            for p in pairs where down.contains(p.role) && !down.contains(p.member) {
                down.insert(p.member)
                changed = true
            }
        }
        var out = down
        changed = true
        while changed {
            changed = false
            for p in pairs where out.contains(p.member) && !out.contains(p.role) {
                out.insert(p.role)
                changed = true
            }
        }
        return out
    }

    public struct Filtered: Sendable, Equatable {
        /// The script to run (statements ended by `;` and a newline).
        public var sql: String
        /// Roles it creates.
        public var created: [String]
        /// Memberships it grants, as "role → member".
        public var memberships: [String]
        /// True if `PASSWORD` clauses were removed.
        public var strippedPasswords: Bool
        /// Tablespaces of the script that are not created.
        public var skippedTablespaces: [String]
    }

    /// The statements that create the roles in `create` (and nothing about
    /// any other role), memberships that involve at least one of them and
    /// whose roles all exist afterwards (`existing` + `create`), and the `SET`
    /// lines. `PASSWORD '…'` is removed from `ALTER ROLE` unless `withPasswords`.
    public func filtered(create: Set<String>, existing: Set<String>, withPasswords: Bool) -> Filtered {
        var out = Filtered(sql: "", created: [], memberships: [], strippedPasswords: false, skippedTablespaces: [])
        let after = existing.union(create)
        for e in entries {
            var text = e.statement.text
            switch e.kind {
            case .metaCommand:
                continue
            case .tablespace(let t):
                if e.statement.tokens.first?.isKeyword("CREATE") == true { out.skippedTablespaces.append(t) }
                continue
            case .role(let r):
                guard create.contains(r) else { continue }
                if e.statement.tokens.first?.isKeyword("CREATE") == true { out.created.append(r) }
                if !withPasswords, let stripped = Self.withoutPassword(e.statement) {
                    text = stripped
                    out.strippedPasswords = true
                }
            case .membership(let roles, let members, let grantor):
                let all = roles + members
                guard all.contains(where: create.contains), all.allSatisfy(after.contains) else { continue }
                if let grantor, !after.contains(grantor) {
                    // GRANTED BY a role that is not there: grant it as the restoring role.
                    text = Self.withoutGrantedBy(e.statement) ?? text
                }
                out.memberships += roles.flatMap { r in members.map { "\(r) → \($0)" } }
            case .parameterPrivilege(let grantees):
                guard grantees.contains(where: create.contains), grantees.allSatisfy({ after.contains($0) || $0 == "public" }) else { continue }
            case .other:
                break
            }
            out.sql += text + ";\n"
        }
        return out
    }

    static func classify(_ s: SQLScript.Statement) -> Kind {
        if s.isMetaCommand { return .metaCommand }
        let t = s.tokens
        guard let first = t.first else { return .other }
        func id(_ i: Int) -> String? { i < t.count ? t[i].identifier : nil }
        if (first.isKeyword("CREATE") || first.isKeyword("ALTER")) && t.count > 2 && t[1].isKeyword("ROLE") {
            return id(2).map { .role($0) } ?? .other
        }
        if (first.isKeyword("CREATE") || first.isKeyword("ALTER")) && t.count > 2 && t[1].isKeyword("TABLESPACE") {
            return id(2).map { .tablespace($0) } ?? .other
        }
        if first.isKeyword("COMMENT") || first.isKeyword("SECURITY") {
            if let on = t.index(ofKeyword: "ON"), on + 2 < t.count {
                if t[on + 1].isKeyword("ROLE"), let r = id(on + 2) { return .role(r) }
                if t[on + 1].isKeyword("TABLESPACE"), let ts = id(on + 2) { return .tablespace(ts) }
            }
            return .other
        }
        if first.isKeyword("GRANT") || first.isKeyword("REVOKE") {
            if let on = t.index(ofKeyword: "ON") {
                if on + 2 < t.count, t[on + 1].isKeyword("TABLESPACE"), let ts = id(on + 2) { return .tablespace(ts) }
                if on + 1 < t.count, t[on + 1].isKeyword("PARAMETER") {
                    let kw = first.isKeyword("GRANT") ? "TO" : "FROM"
                    guard let to = t.index(ofKeyword: kw, from: on) else { return .other }
                    return .parameterPrivilege(grantees: t.identifierList(from: to + 1).0)
                }
                return .other
            }
            guard first.isKeyword("GRANT"), let to = t.index(ofKeyword: "TO") else { return .other }
            let roles = t.identifierList(from: 1).0
            let (members, end) = t.identifierList(from: to + 1)
            var grantor: String?
            if let g = t.index(ofKeyword: "GRANTED", from: end), g + 2 < t.count, t[g + 1].isKeyword("BY") { grantor = id(g + 2) }
            guard !roles.isEmpty, !members.isEmpty else { return .other }
            return .membership(roles: roles, members: members, grantor: grantor)
        }
        return .other
    }

    /// An `ALTER ROLE … WITH …` statement without its `PASSWORD '…'` (or
    /// `PASSWORD NULL`) clause; nil if it has none.
    static func withoutPassword(_ s: SQLScript.Statement) -> String? {
        let t = s.tokens
        guard let p = t.index(ofKeyword: "PASSWORD"), p + 1 < t.count, t[0].isKeyword("ALTER") else { return nil }
        var lower = t[p].range.lowerBound
        if p > 0, t[p - 1].isKeyword("ENCRYPTED") || t[p - 1].isKeyword("UNENCRYPTED") { lower = t[p - 1].range.lowerBound }
        var text = s.text
        // the clause and the blanks before it
        while lower > text.startIndex, text[text.index(before: lower)].isWhitespace { lower = text.index(before: lower) }
        text.replaceSubrange(lower..<t[p + 1].range.upperBound, with: "")
        return text
    }

    /// A membership `GRANT` without its `GRANTED BY …` clause.
    static func withoutGrantedBy(_ s: SQLScript.Statement) -> String? {
        let t = s.tokens
        guard let g = t.index(ofKeyword: "GRANTED"), g + 2 < t.count, t[g + 1].isKeyword("BY") else { return nil }
        var text = s.text
        var lower = t[g].range.lowerBound
        while lower > text.startIndex, text[text.index(before: lower)].isWhitespace { lower = text.index(before: lower) }
        text.replaceSubrange(lower..<t[g + 2].range.upperBound, with: "")
        return text
    }
}

/// The roles that a SQL definition of pg_dump's (an `ACL` or `DEFAULT ACL`
/// entry of an archive) names: grantees after `TO`/`FROM`, `GRANTED BY` and
/// `FOR ROLE` roles. `PUBLIC` is not a role.
public func rolesNamed(inACL sql: String) -> Set<String> {
    var out: Set<String> = []
    for s in SQLScript(sql).statements {
        let t = s.tokens
        var i = 0
        while i < t.count {
            if t[i].isKeyword("TO") || t[i].isKeyword("FROM") {
                let (names, end) = t.identifierList(from: i + 1)
                out.formUnion(names)
                i = max(end, i + 1)
            } else if (t[i].isKeyword("BY") && i > 0 && t[i - 1].isKeyword("GRANTED"))
                        || (t[i].isKeyword("FOR") && i + 1 < t.count && (t[i + 1].isKeyword("ROLE") || t[i + 1].isKeyword("USER"))) {
                let (names, end) = t.identifierList(from: i + 1)
                out.formUnion(names)
                i = max(end, i + 1)
            } else {
                i += 1
            }
        }
    }
    out.remove("public")
    return out
}
