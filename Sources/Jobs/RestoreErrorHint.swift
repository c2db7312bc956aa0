import Foundation

/// What to do about a failed restore, decided from PostgreSQL's own error
/// line (pg_restore and psql print no SQLSTATE, so the message text is all
/// there is): the line is parsed into its primary message, which is matched
/// against PostgreSQL's message templates (`%s "%s" already exists`,
/// `role "%s" does not exist`, `permission denied …`, `must be owner of …`).
public enum RestoreErrorHint: Sendable, Equatable {
    /// An object of the backup is already in the target.
    case objectExists(String)
    /// The backup names a role the target server does not have.
    case missingRole(String)
    /// The restoring role may not set owners or privileges.
    case permissionDenied

    /// The hint for a stderr line such as `pg_restore: error: could not
    /// execute query: ERROR: relation "users" already exists` or
    /// `psql:<stdin>:12: ERROR: role "x" does not exist`; nil when the line
    /// is not a PostgreSQL error or there is nothing specific to say.
    public static func classify(errorLine line: String) -> RestoreErrorHint? {
        guard let r = line.range(of: "ERROR:") else { return nil }
        let message = line[r.upperBound...].trimmingCharacters(in: .whitespaces)
        // `<kind> "<name>" already exists`, optionally `… for relation "<table>"`.
        // (a role is cluster-wide: not something --clean or a new database changes)
        if message.hasSuffix(" already exists"), !message.hasPrefix("role "), let name = firstQuoted(message) {
            return .objectExists(name)
        }
        let rolePrefix = "role \"", roleSuffix = "\" does not exist"
        if message.hasPrefix(rolePrefix), message.hasSuffix(roleSuffix), message.count > rolePrefix.count + roleSuffix.count {
            return .missingRole(String(message.dropFirst(rolePrefix.count).dropLast(roleSuffix.count)))
        }
        if message.hasPrefix("permission denied") || message.hasPrefix("must be owner of")
            || message.hasPrefix("must be superuser") || message.hasPrefix("must be able to SET ROLE")
            || message.hasPrefix("must be member of role") {
            return .permissionDenied
        }
        return nil
    }

    /// The advice, for the end of a one-line message.
    public var advice: String {
        switch self {
        case .objectExists:
            return "restoring into an existing, non-empty database: use --clean or a new database with --create"
        case .missingRole(let r):
            return "the target server has no role \(r): restore the backup's roles with --globals, create the role, or restore with --no-owner --no-privileges"
        case .permissionDenied:
            return "the restoring role may not set owners or privileges: restore as a superuser, or with --no-owner --no-privileges"
        }
    }

    /// The text between the first pair of double quotes (PostgreSQL quotes
    /// names in messages as "…", without doubling inner quotes).
    static func firstQuoted(_ s: String) -> String? {
        guard let open = s.firstIndex(of: "\"") else { return nil }
        let rest = s[s.index(after: open)...]
        // The name ends at the quote followed by a space (or the end): names may contain quotes.
        var i = rest.startIndex
        while let q = rest[i...].firstIndex(of: "\"") {
            let after = rest.index(after: q)
            if after == rest.endIndex || rest[after] == " " { return String(rest[..<q]) }
            i = after
        }
        return nil
    }
}
