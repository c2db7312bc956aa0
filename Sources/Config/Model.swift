import Core
import Foundation

/// The whole configuration: `cairn.toml` and every job unit in `jobs_dir`.
/// Holds no secret: secrets are named by file and read with `SecretFile.read`
/// when they are needed.
public struct CairnConfig: Sendable, CustomStringConvertible {
    /// Absolute path of `cairn.toml`.
    public var path: String
    public var stateDir: String
    /// Absolute path of the job-unit directory.
    public var jobsDir: String
    /// The default time zone of schedules.
    public var timeZone: TimeZone
    public var storages: [String: StorageConfig]
    public var keys: KeysConfig
    public var defaults: DefaultsConfig
    /// `[alerts]`: the alert channels and the reminder interval (empty when absent).
    public var alerts: AlertsConfig = AlertsConfig()
    /// `[daemon]`: how `cairn serve` runs.
    public var daemon: DaemonConfig = DaemonConfig()
    /// `[cluster]`: several daemons sharing jobs through a PostgreSQL lock database.
    public var cluster: ClusterConfig?
    /// Jobs by name.
    public var jobs: [String: JobConfig]
    /// `metrics_file`: a Prometheus text file rewritten after every run (node_exporter's textfile collector).
    public var metricsFile: String? = nil

    /// Jobs sorted by name.
    public var sortedJobs: [JobConfig] { jobs.values.sorted { $0.name < $1.name } }

    public var description: String {
        var lines = ["config \(path): state_dir=\(stateDir) jobs_dir=\(jobsDir) timezone=\(timeZone.identifier)"]
        for name in storages.keys.sorted() { lines.append("  \(storages[name]!)") }
        lines.append("  \(keys)")
        lines.append("  \(defaults)")
        if !alerts.channels.isEmpty { lines.append("  \(alerts)") }
        lines.append("  \(daemon)")
        if let cluster { lines.append("  \(cluster)") }
        for job in sortedJobs { lines.append("  \(job)") }
        return lines.joined(separator: "\n")
    }
}

/// Where a storage keeps objects.
public enum StorageURL: Sendable, Equatable, CustomStringConvertible {
    case s3(bucket: String, prefix: String)
    case directory(path: String)

    public var description: String {
        switch self {
        case .s3(let b, let p): return p.isEmpty ? "s3://\(b)" : "s3://\(b)/\(p)"
        case .directory(let p): return "file://\(p)"
        }
    }

    /// Parses `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`; returns an
    /// error text for anything else.
    public static func parse(_ url: String) -> Result<StorageURL, ConfigTextError> {
        if url.hasPrefix("s3://") {
            let rest = url.dropFirst(5)
            if rest.contains("?") {
                return .failure(.init("write endpoint, region and path_style as keys of the storage table, not as URL parameters"))
            }
            let bucket = String(rest.prefix { $0 != "/" })
            guard !bucket.isEmpty else { return .failure(.init("expected s3://BUCKET/PREFIX, got \"\(url)\" (no bucket)")) }
            let prefix = rest.dropFirst(bucket.count).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            return .success(.s3(bucket: bucket, prefix: prefix))
        }
        if url.hasPrefix("file://") {
            let path = String(url.dropFirst(7))
            guard path.hasPrefix("/") else { return .failure(.init("expected file:///ABSOLUTE/PATH, got \"\(url)\"")) }
            return .success(.directory(path: path))
        }
        if url.hasPrefix("/") { return .failure(.init("write file://\(url) for a local directory")) }
        return .failure(.init("expected s3://BUCKET/PREFIX or file:///PATH, got \"\(url)\""))
    }
}

/// An error text without position, turned into a `ConfigIssue` by the loader.
public struct ConfigTextError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

public struct ObjectLockConfig: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable { case governance, compliance }
    public var mode: Mode
    public var days: Int
}

/// `[storage.NAME]`.
public struct StorageConfig: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    /// The URL as written.
    public var url: String
    public var location: StorageURL
    public var endpoint: String?
    public var region: String?
    public var pathStyle: Bool?
    /// An access key id is an identifier, not a secret; it is shown in descriptions.
    public var accessKeyID: String?
    /// The file holding the secret access key (read with `readSecretAccessKey()`).
    public var secretAccessKeyFile: String?
    public var objectLock: ObjectLockConfig?

    /// Reads the secret access key from `secret_access_key_file`, or returns
    /// nil when none is configured (the AWS credential chain applies).
    /// `"credential:NAME"` reads the systemd credential from `$CREDENTIALS_DIRECTORY` in `env`.
    public func readSecretAccessKey(env: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        guard let f = secretAccessKeyFile else { return nil }
        return try SecretFile.read(f, what: "storage '\(name)' secret_access_key_file", env: env)
    }

    /// The URL that `ObjectStore.StorageLocation.open` takes:
    /// `s3://BUCKET/PREFIX?endpoint=…&region=…&path_style=…` or `file:///PATH`.
    public var locationURL: String {
        guard case .s3 = location else { return location.description }
        var params: [String] = []
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        func enc(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s }
        if let endpoint { params.append("endpoint=\(enc(endpoint))") }
        if let region { params.append("region=\(enc(region))") }
        if let pathStyle { params.append("path_style=\(pathStyle)") }
        return params.isEmpty ? location.description : location.description + "?" + params.joined(separator: "&")
    }

    public var description: String {
        var parts = ["storage \(name): \(location)"]
        if let endpoint { parts.append("endpoint=\(endpoint)") }
        if let region { parts.append("region=\(region)") }
        if let pathStyle { parts.append("path_style=\(pathStyle)") }
        if let accessKeyID { parts.append("access_key_id=\(accessKeyID)") }
        if let secretAccessKeyFile { parts.append("secret_access_key_file=\(secretAccessKeyFile)") }
        if let objectLock { parts.append("object_lock=\(objectLock.mode.rawValue)/\(objectLock.days)d") }
        return parts.joined(separator: " ")
    }
}

/// `[keys]`: the key used for new backups and where every key id's key is.
public struct KeysConfig: Sendable, Equatable, CustomStringConvertible {
    /// Key id for new backups; nil when no `[keys]` table is configured.
    public var active: String?
    public var sources: [String: KeySource]

    public init(active: String?, sources: [String: KeySource]) {
        self.active = active
        self.sources = sources
    }

    /// The path of key `id`'s file (see `resolveKeyPath`). A systemd
    /// credential asked for outside systemd is an error whose hint names the
    /// file to pass with `--key-file` (`CredentialHint`).
    public func path(for id: String, env: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard let source = sources[id] else {
            throw CairnError(.crypto, "key id '\(id)' is not in [keys.files] (known: \(sources.keys.sorted().joined(separator: ", ")))")
        }
        if case .credential(let name) = source, (env["CREDENTIALS_DIRECTORY"] ?? "").isEmpty {
            throw CairnError(.config, CredentialHint.message(keyID: id, credential: name,
                                                             source: CredentialHint.loadCredentialSource(of: name)))
        }
        return try resolveKeyPath(source, env: env)
    }

    public var description: String {
        "keys: active=\(active ?? "-") " + sources.keys.sorted().map { "\($0)=\(sources[$0]!)" }.joined(separator: " ")
    }
}

/// `[defaults]`, already merged into each job.
public struct DefaultsConfig: Sendable, Equatable, CustomStringConvertible {
    /// The default storage: `[defaults] storage`, or the only storage when there is exactly one.
    public var storage: String?
    public var compressionLevel: Int
    public var retentionDays: Int
    /// `[defaults] alerts`: the channels of jobs that name none.
    public var alerts: [String] = []

    public var description: String {
        "defaults: storage=\(storage ?? "-") compression_level=\(compressionLevel) retention_days=\(retentionDays)"
            + (alerts.isEmpty ? "" : " alerts=\(alerts.joined(separator: ","))")
    }
}

public enum JobKind: String, Sendable, CaseIterable { case backup, verify, retention, migrate, probe }

public enum OverlapPolicy: String, Sendable, CaseIterable { case skip, queue }

/// One job unit: `JOBS_DIR/NAME.toml`.
public struct JobConfig: Sendable, CustomStringConvertible {
    public var name: String
    /// Absolute path of the unit file.
    public var file: String
    public var kind: JobKind { spec.kind }
    /// The unit's `description` key.
    public var jobDescription: String?
    /// The cron expression as written; nil = runs only on demand.
    public var schedule: String?
    public var timeZone: TimeZone
    /// nil = no limit.
    public var timeout: Duration?
    public var retries: Int
    public var retryBackoff: Duration
    public var overlap: OverlapPolicy
    /// How late a missed run may still start after downtime; zero = never.
    public var catchUp: Duration
    public var randomDelay: Duration
    public var enabled: Bool
    /// Storage name; for verify and retention jobs it defaults to the backup job's.
    public var storage: String
    public var spec: JobSpec
    /// Alert channels (`alerts` in the unit, else `[defaults] alerts`); names of `[alerts.NAME]`.
    public var alerts: [String] = []
    /// Backup jobs: alert when the newest successful backup is older than this (`stale_after`).
    public var staleAfter: Duration? = nil

    public var backup: BackupSpec? { if case .backup(let s) = spec { return s }; return nil }
    /// A probe's `fail_after` (nil for other kinds).
    public var probeFailAfter: Int? { if case .probe(let s) = spec { return s.failAfter }; return nil }
    public var verify: VerifySpec? { if case .verify(let s) = spec { return s }; return nil }
    public var retention: RetentionSpec? { if case .retention(let s) = spec { return s }; return nil }
    public var migrate: MigrateSpec? { if case .migrate(let s) = spec { return s }; return nil }

    public var description: String {
        var parts = ["job \(name): kind=\(kind.rawValue)"]
        if let schedule { parts.append("schedule=\"\(schedule)\"") }
        parts.append("timezone=\(timeZone.identifier)")
        if let timeout { parts.append("timeout=\(ConfigUnits.formatDuration(timeout))") }
        parts.append("retries=\(retries)")
        parts.append("overlap=\(overlap.rawValue)")
        parts.append("storage=\(storage)")
        if !enabled { parts.append("disabled") }
        parts.append(spec.description)
        return parts.joined(separator: " ")
    }
}

public enum JobSpec: Sendable, CustomStringConvertible {
    case backup(BackupSpec)
    case verify(VerifySpec)
    case retention(RetentionSpec)
    case migrate(MigrateSpec)
    case probe(ProbeSpec)

    public var kind: JobKind {
        switch self {
        case .backup: return .backup
        case .verify: return .verify
        case .retention: return .retention
        case .migrate: return .migrate
        case .probe: return .probe
        }
    }

    public var description: String {
        switch self {
        case .backup(let s): return s.description
        case .verify(let s): return s.description
        case .retention(let s): return s.description
        case .migrate(let s): return s.description
        case .probe(let s): return s.description
        }
    }
}

/// `[backup]` of a backup job.
public struct BackupSpec: Sendable, Equatable, CustomStringConvertible {
    /// libpq URL or keyword/value string; guaranteed to hold no password.
    public var database: String
    public var passwordFile: String?
    public var compressionLevel: Int
    /// zstd's own worker threads: 0 (the default) compresses on the
    /// compression stage's own pipeline thread; 1 or more use zstd's
    /// multithreaded mode. Measured on 2 cores, 0 costs the least CPU (1
    /// costs ~10 % more: docs/BENCHMARKS.md "Backup, issue 15, quiet machine").
    public var zstdWorkers: Int
    public static let defaultZstdWorkers = 0
    /// Key prefix under the storage (default: the job name).
    public var prefix: String
    public var includeGlobals: Bool
    /// nil = chosen from the database size at run time.
    public var partSize: Int64?
    public var uploadConcurrency: Int
    public var pgDumpPath: String?

    public init(database: String, passwordFile: String? = nil, compressionLevel: Int = 3, zstdWorkers: Int = BackupSpec.defaultZstdWorkers,
                prefix: String, includeGlobals: Bool = false, partSize: Int64? = nil, uploadConcurrency: Int = 4,
                pgDumpPath: String? = nil) {
        self.database = database
        self.passwordFile = passwordFile
        self.compressionLevel = compressionLevel
        self.zstdWorkers = zstdWorkers
        self.prefix = prefix
        self.includeGlobals = includeGlobals
        self.partSize = partSize
        self.uploadConcurrency = uploadConcurrency
        self.pgDumpPath = pgDumpPath
    }

    /// Reads the password from `password_file`, or nil when none is configured
    /// (libpq then uses PGPASSFILE / ~/.pgpass).
    public func readPassword(env: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        guard let f = passwordFile else { return nil }
        return try SecretFile.read(f, what: "password_file", env: env)
    }

    public var description: String {
        var parts = ["database=\(database)", "prefix=\(prefix)", "compression_level=\(compressionLevel)"]
        if let passwordFile { parts.append("password_file=\(passwordFile)") }
        if let partSize { parts.append("part_size=\(ConfigUnits.formatSize(partSize))") }
        if includeGlobals { parts.append("include_globals") }
        return parts.joined(separator: " ")
    }
}

/// One SQL check of a verify job: a query that must return exactly one row
/// of one column whose value is true. Written as a string (its name is the
/// SQL itself) or as `{ name = "...", sql = "..." }`.
public struct VerifyCheck: Sendable, Equatable, Codable {
    public var name: String
    public var sql: String
    public init(name: String, sql: String) { self.name = name; self.sql = sql }
    public init(sql: String) { self.name = sql; self.sql = sql }
}

/// `[verify]` of a verify job.
public struct VerifySpec: Sendable, Equatable, CustomStringConvertible {
    public var backupJob: String
    /// Server where scratch databases are created (its database is the
    /// maintenance database connected to for CREATE/DROP); holds no password.
    public var scratchDatabaseURL: String
    public var passwordFile: String?
    public var checks: [VerifyCheck]
    /// pg_restore `--jobs`; above 1 the backup is spooled to a 0600 file in the state directory first.
    public var restoreJobs: Int
    /// Runtime only (never in a unit): the backup to verify, an id, a unique id
    /// prefix or `latest`; nil = the newest backup without a verification record.
    public var backupID: String?

    public init(backupJob: String, scratchDatabaseURL: String, passwordFile: String? = nil, checks: [VerifyCheck] = [],
                restoreJobs: Int = 1, backupID: String? = nil) {
        self.backupJob = backupJob
        self.scratchDatabaseURL = scratchDatabaseURL
        self.passwordFile = passwordFile
        self.checks = checks
        self.restoreJobs = restoreJobs
        self.backupID = backupID
    }

    public func readPassword(env: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        guard let f = passwordFile else { return nil }
        return try SecretFile.read(f, what: "password_file", env: env)
    }

    public var description: String {
        "backup_job=\(backupJob) scratch_database_url=\(scratchDatabaseURL) checks=\(checks.count)" + (restoreJobs > 1 ? " restore_jobs=\(restoreJobs)" : "")
    }
}

/// `[retention]` of a retention job. The rules (docs/OPERATIONS.md, "Retention"):
/// a backup is kept when any rule keeps it; `keep_daily`, `keep_weekly` and
/// `keep_monthly` have restic `forget`'s meaning (the newest backup of each of
/// the last N days / ISO weeks / months that have backups, in the job's time zone).
public struct RetentionSpec: Sendable, Equatable, CustomStringConvertible {
    public var backupJob: String
    /// Keep every backup that started within this many days (24-hour periods) of now.
    public var keepDays: Int
    /// Keep the newest N backups, whatever their age (the floor).
    public var keepLast: Int
    public var keepDaily: Int?
    public var keepWeekly: Int?
    public var keepMonthly: Int?
    /// Plan and report only; delete nothing.
    public var dryRun: Bool

    public init(backupJob: String, keepDays: Int = 30, keepLast: Int = 7, keepDaily: Int? = nil, keepWeekly: Int? = nil,
                keepMonthly: Int? = nil, dryRun: Bool = false) {
        self.backupJob = backupJob; self.keepDays = keepDays; self.keepLast = keepLast
        self.keepDaily = keepDaily; self.keepWeekly = keepWeekly; self.keepMonthly = keepMonthly; self.dryRun = dryRun
    }

    public var description: String {
        var s = "backup_job=\(backupJob) keep_days=\(keepDays) keep_last=\(keepLast)"
        if let keepDaily { s += " keep_daily=\(keepDaily)" }
        if let keepWeekly { s += " keep_weekly=\(keepWeekly)" }
        if let keepMonthly { s += " keep_monthly=\(keepMonthly)" }
        return s + (dryRun ? " dry_run" : "")
    }
}

/// `[migrate]` of a migrate job.
public struct MigrateSpec: Sendable, Equatable, CustomStringConvertible {
    /// Absolute directory path.
    public var source: String
    public var prefix: String
    public var concurrency: Int
    public var multipartThreshold: Int64
    public var partSize: Int64
    public var cacheControl: String?
    /// Bytes per second; nil = unlimited.
    public var bandwidthLimit: Int64?
    /// Where the mapping file (JSON lines) is written; nil = `STATE_DIR/migrate/JOB.mapping.jsonl`.
    public var mappingFile: String?
    /// Exclude patterns (`PathPattern` syntax), already checked.
    public var exclude: [String]

    public init(source: String, prefix: String, concurrency: Int = 8, multipartThreshold: Int64 = 64 << 20,
                partSize: Int64 = 16 << 20, cacheControl: String? = nil, bandwidthLimit: Int64? = nil,
                mappingFile: String? = nil, exclude: [String] = []) {
        self.source = source; self.prefix = prefix; self.concurrency = concurrency
        self.multipartThreshold = multipartThreshold; self.partSize = partSize; self.cacheControl = cacheControl
        self.bandwidthLimit = bandwidthLimit; self.mappingFile = mappingFile; self.exclude = exclude
    }

    public var description: String {
        var s = "source=\(source) prefix=\(prefix) concurrency=\(concurrency) part_size=\(ConfigUnits.formatSize(partSize))"
        if let bandwidthLimit { s += " bwlimit=\(ConfigUnits.formatSize(bandwidthLimit))/s" }
        if !exclude.isEmpty { s += " exclude=\(exclude.joined(separator: ","))" }
        return s
    }
}

/// `[daemon]` in cairn.toml.
public struct DaemonConfig: Sendable, Equatable, CustomStringConvertible {
    /// The control socket (default: see `socketPath(stateDir:env:)`).
    public var socket: String?
    /// Jobs running at once, across all jobs (default 2).
    public var maxConcurrentJobs: Int = 2
    /// On SIGTERM, how long running jobs may take to finish before they are cancelled (default 5 min).
    public var stopGracePeriod: Duration = .seconds(300)
    /// Send `WATCHDOG=1` when systemd asks for it (`WATCHDOG_USEC`); default true.
    public var watchdog: Bool = true
    public init() {}

    /// The socket path: explicit; else `$RUNTIME_DIRECTORY/cairn.sock` (systemd's
    /// `RuntimeDirectory=`); else `/run/cairn/cairn.sock` when `/run/cairn` exists;
    /// else `STATE_DIR/cairn.sock`. The daemon and the CLI compute the same path.
    public func socketPath(stateDir: String, env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let socket { return socket }
        if let dir = env["RUNTIME_DIRECTORY"], !dir.isEmpty {
            return dir.split(separator: ":").first.map(String.init)! + "/cairn.sock"
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: "/run/cairn", isDirectory: &isDir), isDir.boolValue {
            return "/run/cairn/cairn.sock"
        }
        return stateDir + "/cairn.sock"
    }

    public var description: String {
        "daemon: socket=\(socket ?? "(default)") max_concurrent_jobs=\(maxConcurrentJobs) stop_grace_period=\(stopGracePeriod) watchdog=\(watchdog)"
    }
}

/// `[cluster]` in cairn.toml.
public struct ClusterConfig: Sendable, Equatable, CustomStringConvertible {
    /// libpq URL of the lock database (no password in it).
    public var lockDatabase: String
    /// A file holding the lock database password (chmod 600), or
    /// `"credential:NAME"` (a systemd credential); optional.
    public var passwordFile: String?
    /// This node's name in the cluster runs table (default: the host name).
    public var node: String?
    public init(lockDatabase: String, passwordFile: String? = nil, node: String? = nil) {
        self.lockDatabase = lockDatabase; self.passwordFile = passwordFile; self.node = node
    }
    /// Reads the password from `password_file`, or nil when none is configured
    /// (libpq then uses PGPASSWORD / PGPASSFILE / ~/.pgpass).
    public func readPassword(env: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        guard let f = passwordFile else { return nil }
        return try SecretFile.read(f, what: "[cluster] password_file", env: env)
    }
    public var description: String { "cluster: lock_database=\(lockDatabase) node=\(node ?? "(host name)")" }
}

/// `[probe]` of a probe job: an HTTP health check of the platform (its
/// `/api/health`, `/api/ready`), on a schedule, with its latency recorded.
public struct ProbeSpec: Sendable, Equatable, CustomStringConvertible {
    public var url: String
    /// GET or HEAD.
    public var method: String
    /// The status that counts as up.
    public var expectStatus: Int
    /// A substring the body must contain (GET only).
    public var bodyContains: String?
    /// How long one request may take.
    public var requestTimeout: Duration
    /// Alert after this many consecutive failures (and a recovery notice after the first success).
    public var failAfter: Int
    /// A CA bundle for an internal TLS endpoint (verification stays on).
    public var caFile: String?

    public init(url: String, method: String = "GET", expectStatus: Int = 200, bodyContains: String? = nil,
                requestTimeout: Duration = .seconds(10), failAfter: Int = 2, caFile: String? = nil) {
        self.url = url; self.method = method; self.expectStatus = expectStatus; self.bodyContains = bodyContains
        self.requestTimeout = requestTimeout; self.failAfter = failAfter; self.caFile = caFile
    }

    public var description: String {
        "\(method) \(url) expect_status=\(expectStatus)" + (bodyContains.map { " body_contains=\"\($0)\"" } ?? "")
            + " request_timeout=\(ConfigUnits.formatDuration(requestTimeout)) fail_after=\(failAfter)"
    }
}
