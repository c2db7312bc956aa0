import Core
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Finding PostgreSQL client programs and building their command lines.
public enum PostgresTools {
    /// The path of `program`: `configured` if given (it must be executable),
    /// else `program` in PATH, else the newest `/usr/lib/postgresql/*/bin/program`.
    ///
    /// A `program` in PATH that is Debian's `pg_wrapper` (postgresql-common)
    /// is replaced by the newest `/usr/lib/postgresql/*/bin/program`: the
    /// wrapper is a Perl script that costs ~35 ms of CPU and ~0.1 s per start,
    /// and for a `--dbname` connection string it picks the version of the
    /// local default cluster, not of the server Cairn connects to, which fails
    /// when that server is newer. The newest client programs work with every
    /// older server, which is the wrapper's own rule for `psql` and for an
    /// explicit `--host`. Set `pg_dump_path` to choose a version.
    public static func locate(_ program: String, configured: String? = nil) throws -> String {
        try locate(program, configured: configured, searchPath: ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
    }

    static func locate(_ program: String, configured: String?, searchPath: String, base: String = versionedBase) throws -> String {
        if let configured, !configured.isEmpty {
            guard access(configured, X_OK) == 0 else {
                throw CairnError(.config, "\(program) not found or not executable at \(configured)")
            }
            return configured
        }
        for dir in searchPath.split(separator: ":") {
            let p = "\(dir)/\(program)"
            if access(p, X_OK) == 0 {
                if isDebianWrapper(p), let versioned = newestVersioned(program, base: base) { return versioned }
                return p
            }
        }
        if let versioned = newestVersioned(program, base: base) { return versioned }
        throw CairnError(.config, "\(program) not found in PATH nor in \(base)/*/bin")
    }

    static let versionedBase = "/usr/lib/postgresql"

    /// The newest `/usr/lib/postgresql/<version>/bin/program`, if any.
    static func newestVersioned(_ program: String, base: String = versionedBase) -> String? {
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
            .compactMap { v -> (Double, String)? in Double(v).map { ($0, v) } }
            .sorted { $0.0 > $1.0 }
        for (_, v) in versions {
            let p = "\(base)/\(v)/bin/\(program)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }

    /// Whether `path` resolves to Debian's `pg_wrapper` (e.g. `/usr/bin/pg_dump`
    /// → `/usr/share/postgresql-common/pg_wrapper`).
    static func isDebianWrapper(_ path: String) -> Bool {
        guard let real = realpath(path, nil) else { return false }
        defer { free(real) }
        return String(cString: real).hasSuffix("/postgresql-common/pg_wrapper")
    }

    /// The environment of a PostgreSQL client program: `childEnvironment`
    /// of this process's environment.
    static func environment(password: String?) -> [String: String] {
        childEnvironment(parent: ProcessInfo.processInfo.environment, password: password)
    }

    /// The variables of `parent` a PostgreSQL client program may see: the
    /// locale and search path, HOME (libpq reads `~/.pgpass`,
    /// `~/.pg_service.conf` and `~/.postgresql/` through it), Kerberos'
    /// own (GSSAPI authentication), and libpq's environment variables, so
    /// that pg_dump connects exactly as Cairn's own libpq connection does.
    /// Nothing else: no `AWS_*`, no `CREDENTIALS_DIRECTORY`, `NOTIFY_SOCKET`
    /// or `CAIRN_*`. `password` (Cairn's own, from the connection string or
    /// `password_file`) becomes PGPASSWORD, replacing one the operator set;
    /// without it, an operator's PGPASSWORD passes, as libpq would use it in
    /// Cairn itself. The password never goes into argv.
    public static func childEnvironment(parent: [String: String], password: String?) -> [String: String] {
        var env = parent.filter { isPassedToChildren($0.key) }
        if let password { env["PGPASSWORD"] = password }
        return env
    }

    /// Variables passed by name (besides `LC_*`).
    static let passedVariables: Set<String> = [
        "PATH", "LANG", "LANGUAGE", "TZ", "HOME",
        "KRB5CCNAME", "KRB5_CONFIG", "KRB5_KTNAME", "KRB5_CLIENT_KTNAME",
    ]

    /// libpq's environment variables (PostgreSQL documentation, libpq,
    /// "Environment Variables", up to PostgreSQL 18).
    static let libpqVariables: Set<String> = [
        "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE",
        "PGREQUIREAUTH", "PGCHANNELBINDING", "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PGAPPNAME",
        "PGSSLMODE", "PGREQUIRESSL", "PGSSLNEGOTIATION", "PGSSLCOMPRESSION", "PGSSLCERT", "PGSSLKEY",
        "PGSSLCERTMODE", "PGSSLROOTCERT", "PGSSLCRL", "PGSSLCRLDIR", "PGSSLSNI", "PGREQUIREPEER",
        "PGSSLMINPROTOCOLVERSION", "PGSSLMAXPROTOCOLVERSION", "PGMINPROTOCOLVERSION", "PGMAXPROTOCOLVERSION",
        "PGGSSENCMODE", "PGKRBSRVNAME", "PGGSSLIB", "PGGSSDELEGATION", "PGCONNECT_TIMEOUT",
        "PGCLIENTENCODING", "PGTARGETSESSIONATTRS", "PGLOADBALANCEHOSTS",
        "PGDATESTYLE", "PGTZ", "PGGEQO", "PGSYSCONFDIR", "PGLOCALEDIR",
    ]

    static func isPassedToChildren(_ name: String) -> Bool {
        passedVariables.contains(name) || libpqVariables.contains(name) || name.hasPrefix("LC_")
    }

    /// Runs `program --version` and returns its output line, e.g. "pg_dump (PostgreSQL) 15.20".
    public static func version(of program: String, binary: String? = nil) async throws -> String {
        let path = try locate(program, configured: binary)
        let out = ByteChannel(capacity: 64 << 10)
        let child = try ChildProcess(executable: path, arguments: ["--version"],
                                     environment: environment(password: nil), stdout: .channel(out))
        var text = Data()
        for try await chunk in out { text.append(chunk) }
        try await child.waitForSuccess()
        return firstLine(String(decoding: text, as: UTF8.self))
    }
}

/// `pg_dump --version`, e.g. "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)".
public func pgDumpVersion(binary: String? = nil) async throws -> String {
    try await PostgresTools.version(of: "pg_dump", binary: binary)
}

/// A running `pg_dump -Fc -Z0` whose archive streams into `output`.
///
/// `output` yields the archive and then ends cleanly only if pg_dump exited
/// with status 0; otherwise the consumer gets `.process` "pg_dump exited with
/// status N: <last stderr line>" (or `.cancelled`). Cancelling `output` or the
/// task awaiting `wait()` terminates pg_dump (SIGTERM, SIGKILL after 5 s).
public final class PgDump: Sendable {
    public struct Options: Sendable {
        /// Path of pg_dump; nil finds it (see `PostgresTools.locate`).
        public var binary: String?
        /// Password for PGPASSWORD; nil uses the one in the connection string, if any,
        /// else libpq's own sources (PGPASSWORD, PGPASSFILE, ~/.pgpass).
        public var password: String?
        /// Extra arguments, e.g. ["--exclude-table=audit.*"].
        public var extraArguments: [String]
        /// Read size for stdout (bytes).
        public var chunkSize: Int

        public init(binary: String? = nil, password: String? = nil, extraArguments: [String] = [], chunkSize: Int = 1 << 20) {
            self.binary = binary
            self.password = password
            self.extraArguments = extraArguments
            self.chunkSize = chunkSize
        }
    }

    public let process: ChildProcess
    public let output: ByteChannel
    public var pid: pid_t { process.pid }

    /// The argv (after the program) for a dump: no password in it, ever.
    public static func arguments(conninfo: ConnInfo, snapshot: String?, extra: [String] = []) -> [String] {
        var args = ["--format=custom", "--compress=0", "--no-password"]
        if let snapshot { args.append("--snapshot=\(snapshot)") }
        args += extra
        args.append("--dbname=\(conninfo.withoutPassword)")
        return args
    }

    /// Starts pg_dump of the database `conninfo` names, inside `snapshot`
    /// (from `DumpSnapshot`, whose transaction must stay open until `wait()` returns).
    public init(conninfo: String, snapshot: String?, output: ByteChannel, options: Options = .init()) throws {
        let info = try ConnInfo(conninfo)
        let path = try PostgresTools.locate("pg_dump", configured: options.binary)
        self.output = output
        let command = PostgresTools.buffered(.output, executable: path,
                                             arguments: Self.arguments(conninfo: info, snapshot: snapshot, extra: options.extraArguments))
        self.process = try ChildProcess(
            name: "pg_dump", executable: command.executable, arguments: command.arguments,
            environment: PostgresTools.environment(password: options.password ?? info.password),
            stdin: .null, stdout: .channel(output), chunkSize: options.chunkSize)
    }

    /// Waits for pg_dump; throws unless it exited with status 0.
    public func wait() async throws { try await process.waitForSuccess() }

    /// Terminates pg_dump (SIGTERM, then SIGKILL after `grace`).
    public func cancel(grace: Duration = .seconds(5)) { process.cancel(grace: grace) }
}

/// A running `pg_restore` of a custom-format archive, into a database or to a script file.
public final class PgRestore: Sendable {
    public enum Source: Sendable {
        /// The archive streamed on stdin (not with `jobs`).
        case channel(ByteChannel)
        /// An archive file (required for `jobs > 1`: pg_restore seeks in it).
        case file(String)
    }

    public enum Target: Sendable {
        /// Restore into this database (`--dbname`).
        case database(String)
        /// Write the SQL script to this file (`--file`).
        case script(String)
    }

    public struct Options: Sendable {
        public var binary: String?
        public var password: String?
        /// `--jobs N` (needs `.file` source and a database target).
        public var jobs: Int?
        /// `--no-owner`: objects belong to the restoring role instead of
        /// their owners in the archive (default off: a restore is faithful).
        public var noOwner: Bool
        /// `--no-privileges`: no GRANT/REVOKE (default off).
        public var noPrivileges: Bool
        /// `--clean --if-exists`: drop the archive's objects before creating them.
        public var clean: Bool
        /// `--exit-on-error` (default on: the first error fails the restore).
        public var exitOnError: Bool
        /// `--single-transaction` (not with `jobs`).
        public var singleTransaction: Bool
        public var extraArguments: [String]

        public init(binary: String? = nil, password: String? = nil, jobs: Int? = nil, noOwner: Bool = false,
                    noPrivileges: Bool = false, clean: Bool = false, exitOnError: Bool = true, singleTransaction: Bool = false,
                    extraArguments: [String] = []) {
            self.binary = binary
            self.password = password
            self.jobs = jobs
            self.noOwner = noOwner
            self.noPrivileges = noPrivileges
            self.clean = clean
            self.exitOnError = exitOnError
            self.singleTransaction = singleTransaction
            self.extraArguments = extraArguments
        }
    }

    public let process: ChildProcess
    public var pid: pid_t { process.pid }

    public init(source: Source, target: Target, options: Options = .init()) throws {
        let path = try PostgresTools.locate("pg_restore", configured: options.binary)
        var args = ["--format=custom", "--no-password"]
        if options.exitOnError { args.append("--exit-on-error") }
        if options.noOwner { args.append("--no-owner") }
        if options.noPrivileges { args.append("--no-privileges") }
        if options.clean { args += ["--clean", "--if-exists"] }
        if options.singleTransaction { args.append("--single-transaction") }
        var password = options.password
        switch target {
        case .database(let conninfo):
            let info = try ConnInfo(conninfo)
            password = password ?? info.password
            args.append("--dbname=\(info.withoutPassword)")
        case .script(let file):
            args.append("--file=\(file)")
        }
        if let jobs = options.jobs, jobs > 1 {
            guard case .file = source else {
                throw CairnError(.config, "pg_restore --jobs needs an archive file, not a stream")
            }
            guard !options.singleTransaction else {
                throw CairnError(.config, "pg_restore --jobs cannot be combined with --single-transaction")
            }
            args.append("--jobs=\(jobs)")
        }
        args += options.extraArguments
        let stdin: ChildProcess.Input
        var command = (executable: path, arguments: args)
        switch source {
        case .channel(let ch): stdin = .channel(ch); command = PostgresTools.buffered(.input, executable: path, arguments: args)
        case .file(let p): command.arguments.append(p); stdin = .null
        }
        process = try ChildProcess(name: "pg_restore", executable: command.executable, arguments: command.arguments,
                                   environment: PostgresTools.environment(password: password),
                                   stdin: stdin, stdout: .null)
    }

    /// Waits for pg_restore; throws `.process` unless it exited with status 0
    /// after reading all of its input.
    public func wait() async throws { try await process.waitForSuccess() }

    public func cancel(grace: Duration = .seconds(5)) { process.cancel(grace: grace) }
}

/// `psql` running a SQL script read from `input` (`--file=-`: errors name the
/// line, `psql:<stdin>:N: ERROR: …`), stopping at the first
/// error (`-X -q -v ON_ERROR_STOP=1`; the password only through PGPASSWORD).
public final class Psql: Sendable {
    public let process: ChildProcess
    public var pid: pid_t { process.pid }

    public init(conninfo: String, input: ByteChannel, binary: String? = nil, password: String? = nil) throws {
        let info = try ConnInfo(conninfo)
        let path = try PostgresTools.locate("psql", configured: binary)
        process = try ChildProcess(name: "psql", executable: path,
                                   arguments: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "--file=-", "--dbname=\(info.withoutPassword)"],
                                   environment: PostgresTools.environment(password: password ?? info.password),
                                   stdin: .channel(input), stdout: .null)
    }

    /// Runs `sql` in the database `conninfo` names; throws `.process` with
    /// psql's first `ERROR:` line unless every statement succeeded.
    public static func run(_ sql: String, conninfo: String, binary: String? = nil, password: String? = nil) async throws {
        let input = ByteChannel(capacity: 1 << 20)
        let p = try Psql(conninfo: conninfo, input: input, binary: binary, password: password)
        do {
            try await input.send(Data(sql.utf8))
            input.finish()
        } catch {
            input.cancel(error)
        }
        try await p.process.waitForSuccess()
    }
}

/// A running `pg_dumpall --globals-only` (roles, tablespaces) streaming SQL into `output`.
public final class PgDumpAll: Sendable {
    public struct Options: Sendable {
        public var binary: String?
        public var password: String?
        /// `--no-role-passwords`: needed when the role cannot read pg_authid
        /// (e.g. managed services); also keeps password hashes out of the backup.
        public var noRolePasswords: Bool
        public var extraArguments: [String]

        public init(binary: String? = nil, password: String? = nil, noRolePasswords: Bool = false, extraArguments: [String] = []) {
            self.binary = binary
            self.password = password
            self.noRolePasswords = noRolePasswords
            self.extraArguments = extraArguments
        }
    }

    public let process: ChildProcess
    public let output: ByteChannel
    public var pid: pid_t { process.pid }

    public init(conninfo: String, output: ByteChannel, options: Options = .init()) throws {
        let info = try ConnInfo(conninfo)
        let path = try PostgresTools.locate("pg_dumpall", configured: options.binary)
        var args = ["--globals-only", "--no-password"]
        if options.noRolePasswords { args.append("--no-role-passwords") }
        args += options.extraArguments
        args.append("--dbname=\(info.withoutPassword)")
        self.output = output
        process = try ChildProcess(name: "pg_dumpall", executable: path, arguments: args,
                                   environment: PostgresTools.environment(password: options.password ?? info.password),
                                   stdin: .null, stdout: .channel(output))
    }

    public func wait() async throws { try await process.waitForSuccess() }
    public func cancel(grace: Duration = .seconds(5)) { process.cancel(grace: grace) }
}
