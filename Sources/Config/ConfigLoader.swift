import Core
import Foundation

/// Loads and checks `cairn.toml` and the job units in its `jobs_dir`.
///
/// `check` reports every problem it finds (syntax errors with TOMLKit's
/// line and column, everything else with the line of the key); `load` returns
/// the configuration or throws one `CairnError(.config)` that quotes the first
/// problem and counts the rest.
public struct ConfigLoader: Sendable {
    public static let defaultConfigPath = "/etc/cairn/cairn.toml"
    public static let defaultStateDir = "/var/lib/cairn"

    /// Validates `schedule` strings; returns an error text (without the key
    /// name) or nil when the expression is valid. Unset: only non-emptiness is
    /// checked. The CLI plugs the Cron module's parser in here.
    public var scheduleValidator: (@Sendable (String) -> String?)?

    public init(scheduleValidator: (@Sendable (String) -> String?)? = nil) {
        self.scheduleValidator = scheduleValidator
    }

    /// `$CAIRN_CONFIG`, else `/etc/cairn/cairn.toml`.
    public static func defaultPath(env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let p = env["CAIRN_CONFIG"], !p.isEmpty { return p }
        return defaultConfigPath
    }

    /// Loads with the default loader (no schedule validator).
    public static func load(path: String) throws -> CairnConfig {
        try ConfigLoader().load(path: path)
    }

    /// Checks with the default loader (no schedule validator).
    public static func check(path: String) -> [ConfigIssue] {
        ConfigLoader().check(path: path)
    }

    public func load(path: String) throws -> CairnConfig {
        let (config, issues) = run(path: path)
        if let first = issues.first {
            let more = issues.count > 1 ? " (and \(issues.count - 1) more problem\(issues.count > 2 ? "s" : ""); run `cairn config check` to list them)" : ""
            throw CairnError(.config, "\(first)\(more)")
        }
        guard let config else { throw CairnError(.internal, "configuration \(path) produced neither a config nor an error") }
        return config
    }

    public func check(path: String) -> [ConfigIssue] {
        run(path: path).1
    }

    // MARK: - The one pass behind load and check

    func run(path: String) -> (CairnConfig?, [ConfigIssue]) {
        let absPath = URL(fileURLWithPath: path).standardizedFileURL.path
        let configDir = (absPath as NSString).deletingLastPathComponent
        var issues: [ConfigIssue] = []

        var main: MainParts? = nil
        switch readText(absPath) {
        case .failure(let e):
            issues.append(ConfigIssue(kind: .file, file: path, message: "cannot read configuration: \(e.message)"))
        case .success(let text):
            let ctx = FileContext(display: path, path: absPath, text: text)
            switch TOMLDocument.parse(text) {
            case .failure(let e):
                ctx.addFileIssue(.syntax, line: e.line, column: e.column, "TOML syntax error: \(e.message)")
            case .success(let root):
                main = parseMain(TableReader(ctx: ctx, path: [], values: root), configDir: configDir)
            }
            issues += ctx.issues
        }

        // Job units are checked even when cairn.toml is broken (with the default
        // jobs_dir), so that one run of `check` shows everything it can.
        let jobsDir = main?.jobsDir ?? configDir + "/jobs"
        let defaultTZ = main?.timeZone ?? TimeZone.current
        var units: [JobUnit] = []
        switch listJobFiles(jobsDir, configDir: configDir) {
        case .failure(let issue):
            if main?.jobsDirExplicit == true { issues.append(issue) }
        case .success(let (files, fileIssues)):
            issues += fileIssues
            for (name, file) in files {
                let display = displayPath(file, configDir: configDir)
                switch readText(file) {
                case .failure(let e):
                    issues.append(ConfigIssue(kind: .file, file: display, message: "cannot read job unit: \(e.message)"))
                case .success(let text):
                    let ctx = FileContext(display: display, path: file, text: text)
                    switch TOMLDocument.parse(text) {
                    case .failure(let e):
                        ctx.addFileIssue(.syntax, line: e.line, column: e.column, "TOML syntax error: \(e.message)")
                        issues += ctx.issues
                    case .success(let root):
                        if let unit = parseJob(name: name, file: file, reader: TableReader(ctx: ctx, path: [], values: root),
                                               defaults: main?.defaults, defaultTZ: defaultTZ, configDir: configDir) {
                            units.append(unit)
                        } else {
                            issues += ctx.issues
                        }
                    }
                }
            }
        }

        // Cross-references need every unit parsed first.
        var jobs: [String: JobConfig] = [:]
        let byName = Dictionary(units.map { ($0.job.name, $0) }, uniquingKeysWith: { a, _ in a })
        // Backup jobs own their prefix: a run cleans up what interrupted runs
        // left there, which must never be another job's backup in progress.
        var backupDestinations: [String: String] = [:]
        for unit in units.sorted(by: { $0.job.name < $1.job.name }) {
            guard case .backup(let spec) = unit.job.spec, !unit.job.storage.isEmpty else { continue }
            let place = unit.job.storage + "\u{0}" + spec.prefix
            if let first = backupDestinations[place] {
                let at = unit.reader.ctx.locator.position(of: ["backup", "prefix"]) ?? unit.reader.ctx.locator.position(of: ["kind"])
                unit.reader.ctx.addFileIssue(.invalidValue, line: at?.line, column: at?.column,
                    "[backup] prefix: job '\(unit.job.name)' writes to the same place as job '\(first)' (storage \(unit.job.storage), prefix \"\(spec.prefix)\"); give each backup job its own prefix")
            } else {
                backupDestinations[place] = unit.job.name
            }
        }
        for unit in units {
            var job = unit.job
            let r = unit.reader
            if case .verify(let s) = job.spec {
                resolveBackupJob(s.backupJob, from: unit, in: byName, job: &job)
                checkScratchServer(s, from: unit, in: byName)
            }
            if case .retention(let s) = job.spec { resolveBackupJob(s.backupJob, from: unit, in: byName, job: &job) }
            if let main {
                if let explicit = unit.explicitStorage {
                    if main.storages[explicit] == nil {
                        r.report(.reference, "storage", "no storage named '\(explicit)' in \(main.ctx.display) (defined: \(listOrNone(main.storages.keys)))")
                    }
                } else if job.storage.isEmpty && job.kind.needs.store {
                    r.ctx.addFileIssue(.missing, line: r.ctx.locator.position(of: ["kind"])?.line,
                                       "storage: not set, and \(main.ctx.display) has no [defaults] storage (defined storages: \(listOrNone(main.storages.keys)))")
                }
            }
            applyAlertKeys(r, to: &job, main: main)
            if job.kind == .backup, let main, main.keys.active == nil, !main.reportedNoActiveKey {
                main.reportedNoActiveKey = true
                main.ctx.addFileIssue(.missing, "[keys] active: required because backup jobs exist (job '\(job.name)'); add [keys] with active = \"ID\" and [keys.files]")
            }
            issues += r.ctx.issues
            jobs[job.name] = job
        }
        if let main { issues += main.ctx.issues.filter { !issues.contains($0) } }
        issues = Self.ordered(issues, mainFile: path)

        guard let main, issues.isEmpty else { return (nil, issues) }
        let config = CairnConfig(path: absPath, stateDir: main.stateDir, jobsDir: jobsDir, timeZone: main.timeZone,
                                 storages: main.storages, keys: main.keys, defaults: main.defaults,
                                 alerts: main.alerts, daemon: main.daemon, cluster: main.cluster, jobs: jobs)
        var withMetrics = config
        withMetrics.metricsFile = main.metricsFile
        return (withMetrics, [])
    }

    /// The main file first, then job units by name; within a file by line.
    static func ordered(_ issues: [ConfigIssue], mainFile: String) -> [ConfigIssue] {
        issues.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            if x.file != y.file {
                if x.file == mainFile || y.file == mainFile { return x.file == mainFile }
                return x.file < y.file
            }
            if x.line != y.line { return (x.line ?? 0) < (y.line ?? 0) }
            return a.offset < b.offset
        }.map(\.element)
    }

    private func resolveBackupJob(_ target: String, from unit: JobUnit, in units: [String: JobUnit], job: inout JobConfig) {
        let r = unit.kindReader ?? unit.reader
        guard !target.isEmpty else { return }
        guard let other = units[target] else {
            let backups = units.values.filter { $0.job.kind == .backup }.map(\.job.name)
            r.report(.reference, "backup_job", "no job named '\(target)' (backup jobs: \(listOrNone(backups)))")
            return
        }
        guard other.job.kind == .backup else {
            r.report(.reference, "backup_job", "job '\(target)' is a \(other.job.kind.rawValue) job; expected a backup job")
            return
        }
        if unit.explicitStorage == nil { job.storage = other.job.storage }
    }

    // MARK: - cairn.toml

    final class MainParts {
        let ctx: FileContext
        var stateDir = ConfigLoader.defaultStateDir
        var jobsDir = ""
        var jobsDirExplicit = false
        var timeZone = TimeZone.current
        var storages: [String: StorageConfig] = [:]
        var keys = KeysConfig(active: nil, sources: [:])
        var defaults = DefaultsConfig(storage: nil, compressionLevel: 3, retentionDays: 30)
        var alerts = AlertsConfig()
        /// Every [alerts.NAME] table, also those with errors (no second error for a job naming one).
        var alertTables: Set<String> = []
        var daemon = DaemonConfig()
        var cluster: ClusterConfig?
        var metricsFile: String?
        var reportedNoActiveKey = false
        init(ctx: FileContext) { self.ctx = ctx }
    }

    static let mainKeys = ["state_dir", "jobs_dir", "timezone", "storage", "keys", "defaults", "alerts", "daemon", "cluster", "metrics_file"]
    static let daemonKeys = ["socket", "max_concurrent_jobs", "stop_grace_period", "watchdog"]
    static let clusterKeys = ["lock_database", "password_file", "node"]
    static let storageKeys = ["url", "endpoint", "region", "path_style", "access_key_id", "secret_access_key_file", "object_lock"]
    static let keysKeys = ["active", "files"]
    static let defaultsKeys = ["storage", "compression_level", "retention_days", "alerts"]

    func parseMain(_ r: TableReader, configDir: String) -> MainParts {
        let m = MainParts(ctx: r.ctx)
        r.rejectUnknownKeys(allowed: Self.mainKeys)
        if let s = r.string("state_dir") {
            if s.hasPrefix("/") { m.stateDir = s } else { r.report(.invalidValue, "state_dir", "expected an absolute path, got \"\(s)\"") }
        }
        if let s = r.string("jobs_dir") {
            m.jobsDirExplicit = true
            m.jobsDir = absolute(s, relativeTo: configDir)
        } else {
            m.jobsDir = configDir + "/jobs"
        }
        if let tz = r.timeZone("timezone") { m.timeZone = tz }
        if let s = r.string("metrics_file") {
            if s.hasPrefix("/") && !s.hasSuffix("/") { m.metricsFile = s } else {
                r.report(.invalidValue, "metrics_file", "expected an absolute file path such as \"/var/lib/node_exporter/textfile/cairn.prom\", got \"\(s)\"")
            }
        }

        var storageNames: Set<String> = []
        if let storages = r.table("storage") {
            storageNames = Set(storages.values.keys)
            for name in storages.values.keys.sorted() {
                guard let t = storages.table(name) else { continue }
                if !isValidName(name, allowUpper: true) {
                    t.ctx.add(.invalidValue, at: t.path, key: t.name(""), "storage name '\(name)' must match [A-Za-z0-9][A-Za-z0-9_-]*")
                }
                if let s = parseStorage(name: name, t, configDir: configDir) { m.storages[name] = s }
            }
        }

        if let k = r.table("keys") {
            k.rejectUnknownKeys(allowed: Self.keysKeys)
            var sources: [String: KeySource] = [:]
            let files = k.table("files")
            if let files {
                for id in files.values.keys.sorted() {
                    guard let v = files.string(id) else { continue }
                    guard isValidKeyID(id) else {
                        files.report(.invalidValue, id, "key id must be 1–64 characters of A–Z a–z 0–9 . _ -")
                        continue
                    }
                    guard let src = KeySource(configValue: v, relativeTo: configDir) else {
                        files.report(.invalidValue, id, "expected a key file path or \"credential:NAME\", got \"\(v)\"")
                        continue
                    }
                    sources[id] = src
                }
            } else if !k.has("files") {
                k.missing("files", "a table of key id = \"/path/to/key\" or \"credential:NAME\"")
            }
            m.keys.sources = sources
            if let active = k.string("active", required: "the key id used for new backups, such as \"2026-11\"") {
                if let files, files.values[active] == nil {
                    k.report(.reference, "active", "key id '\(active)' is not in [keys.files] (defined: \(listOrNone(sources.keys)))")
                }
                m.keys.active = active
            }
        }

        if let d = r.table("defaults") {
            d.rejectUnknownKeys(allowed: Self.defaultsKeys)
            if let s = d.string("storage") {
                if !storageNames.contains(s) {
                    d.report(.reference, "storage", "no storage named '\(s)' (defined: \(listOrNone(storageNames)))")
                }
                m.defaults.storage = s
            }
            if let c = d.int("compression_level", in: 1...19) { m.defaults.compressionLevel = c }
            if let c = d.int("retention_days", in: 1...Int.max) { m.defaults.retentionDays = c }
        }
        if m.defaults.storage == nil, m.storages.count == 1 { m.defaults.storage = m.storages.keys.first }

        parseAlertsSection(r, into: m, configDir: configDir)

        if let d = r.table("daemon") {
            d.rejectUnknownKeys(allowed: Self.daemonKeys)
            if let s = d.string("socket") {
                if s.hasPrefix("/") { m.daemon.socket = s } else { d.report(.invalidValue, "socket", "expected an absolute path, got \"\(s)\"") }
            }
            if let n = d.int("max_concurrent_jobs", in: 1...64) { m.daemon.maxConcurrentJobs = n }
            if let g = d.duration("stop_grace_period") { m.daemon.stopGracePeriod = g }
            if let w = d.bool("watchdog") { m.daemon.watchdog = w }
        }
        if let c = r.table("cluster") {
            c.rejectUnknownKeys(allowed: Self.clusterKeys)
            if let url = connectionString(c, "lock_database", required: true) {
                var cluster = ClusterConfig(lockDatabase: url)
                if let pf = c.string("password_file") { cluster.passwordFile = secretPath(pf, relativeTo: configDir) }
                if let node = c.string("node") { cluster.node = node }
                m.cluster = cluster
            }
        }
        return m
    }

    func parseStorage(name: String, _ t: TableReader, configDir: String) -> StorageConfig? {
        var skip: Set<String> = []
        if t.has("secret_access_key") {
            skip.insert("secret_access_key")
            t.report(.inlineSecret, "secret_access_key",
                     "secrets are not accepted inline; put the key in a file (chmod 600) and set secret_access_key_file, or set AWS_SECRET_ACCESS_KEY in the service environment")
        }
        t.rejectUnknownKeys(allowed: Self.storageKeys, except: skip)
        guard let url = t.string("url", required: "s3://BUCKET/PREFIX or file:///PATH") else { return nil }
        let location: StorageURL
        switch StorageURL.parse(url) {
        case .success(let l): location = l
        case .failure(let e):
            t.report(.invalidValue, "url", e.message)
            return nil
        }
        var s = StorageConfig(name: name, url: url, location: location)
        let isS3: Bool
        if case .s3 = location { isS3 = true } else { isS3 = false }
        if let e = t.string("endpoint") {
            if !(e.hasPrefix("https://") || e.hasPrefix("http://")) || URL(string: e)?.host == nil {
                t.report(.invalidValue, "endpoint", "expected an http(s) URL like \"https://ACCOUNT.r2.cloudflarestorage.com\", got \"\(e)\"")
            }
            s.endpoint = e
        }
        s.region = t.string("region")
        s.pathStyle = t.bool("path_style")
        s.accessKeyID = t.string("access_key_id")
        if let f = t.string("secret_access_key_file") { s.secretAccessKeyFile = secretPath(f, relativeTo: configDir) }
        if t.has("object_lock") {
            if let ol = t.table("object_lock") {
                ol.rejectUnknownKeys(allowed: ["mode", "days"])
                let mode = ol.choice("mode", ObjectLockConfig.Mode.self)
                let days = ol.int("days", in: 1...36_500)
                if !ol.has("mode") { ol.missing("mode", "\"governance\" or \"compliance\"") }
                if !ol.has("days") { ol.missing("days", "retention in days") }
                if let mode, let days { s.objectLock = ObjectLockConfig(mode: mode, days: days) }
            }
        }
        if !isS3 {
            for key in ["endpoint", "region", "path_style", "access_key_id", "secret_access_key_file", "object_lock"] where t.has(key) {
                t.report(.invalidValue, key, "applies only to s3:// storages; \(name) is a file:// storage")
            }
        }
        if s.secretAccessKeyFile != nil && s.accessKeyID == nil {
            t.report(.missing, "access_key_id", "required when secret_access_key_file is set")
        }
        return s
    }

    // MARK: - Job units

    struct JobUnit {
        var job: JobConfig
        var reader: TableReader
        var kindReader: TableReader?
        var explicitStorage: String?
    }

    static let commonKeys = ["kind", "description", "schedule", "timezone", "timeout", "retries", "retry_backoff",
                             "overlap", "catch_up", "random_delay", "enabled", "storage", "alerts", "stale_after"]
    static let kindKeys: [JobKind: [String]] = [
        .backup: ["database", "password_file", "compression_level", "zstd_workers", "prefix", "include_globals",
                  "part_size", "upload_concurrency", "pg_dump_path"],
        .verify: ["backup_job", "scratch_database_url", "password_file", "checks", "restore_jobs"],
        .retention: ["backup_job", "keep_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "dry_run"],
        .migrate: ["source", "prefix", "concurrency", "multipart_threshold", "part_size", "cache_control", "bwlimit", "mapping_file", "exclude"],
        .probe: ["url", "method", "expect_status", "body_contains", "request_timeout", "fail_after", "ca_file"],
    ]

    static let minPartSize: Int64 = 5 << 20
    static let maxPartSize: Int64 = 5 << 30

    /// Parses one unit. Returns nil only when nothing usable could be built
    /// (its issues are then in `reader.ctx`); otherwise the unit, whose
    /// issues are collected after cross-references are checked.
    func parseJob(name: String, file: String, reader r: TableReader, defaults: DefaultsConfig?,
                  defaultTZ: TimeZone, configDir: String) -> JobUnit? {
        let kindNames = JobKind.allCases.map(\.rawValue)
        let kind = r.choice("kind", JobKind.self)
        if !r.has("kind") { r.ctx.addFileIssue(.missing, line: 1, "kind: required key is missing (one of \(JobKind.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")))") }
        // A table of another kind gets its own, clearer message below.
        r.rejectUnknownKeys(allowed: Self.commonKeys + (kind.map { [$0.rawValue] } ?? kindNames), except: Set(kindNames))
        if let kind {
            for other in JobKind.allCases where other != kind && r.has(other.rawValue) {
                r.report(.invalidValue, other.rawValue, "a [\(other.rawValue)] table does not apply to kind = \"\(kind.rawValue)\"; use [\(kind.rawValue)]")
            }
        }

        let jobDescription = r.string("description")
        var schedule: String? = nil
        if let v = r.values["schedule"] {
            if case .string(let s) = v {
                let trimmed = s.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty {
                    r.report(.invalidValue, "schedule", "must not be empty; remove the key for a job that only runs on demand")
                } else if let err = scheduleValidator?(trimmed) {
                    r.report(.invalidValue, "schedule", err)
                } else {
                    schedule = trimmed
                }
            } else {
                _ = r.string("schedule")
            }
        }
        let tz = r.timeZone("timezone") ?? defaultTZ
        let timeout = r.duration("timeout", min: .seconds(1))
        let retries = r.int("retries", in: 0...100) ?? 0
        let backoff = r.duration("retry_backoff") ?? .seconds(60)
        let overlap = r.choice("overlap", OverlapPolicy.self) ?? .skip
        let catchUp = r.duration("catch_up") ?? .zero
        let randomDelay = r.duration("random_delay") ?? .zero
        let enabled = r.bool("enabled") ?? true
        let explicitStorage = r.string("storage")

        guard let kind else { return nil }
        var k: TableReader
        if r.has(kind.rawValue) {
            guard let t = r.table(kind.rawValue) else { return nil }
            k = t
        } else {
            k = TableReader(ctx: r.ctx, path: [kind.rawValue], values: [:])
        }
        k.fallbackLine = r.ctx.locator.position(of: ["kind"])?.line
        k.rejectUnknownKeys(allowed: Self.kindKeys[kind]!)

        let spec: JobSpec
        switch kind {
        case .backup:
            let database = connectionString(k, "database", required: true) ?? ""
            let prefix = objectPrefix(k, "prefix") ?? name
            let partSize = k.size("part_size", in: Self.minPartSize...Self.maxPartSize)
            spec = .backup(BackupSpec(
                database: database,
                passwordFile: k.string("password_file").map { secretPath($0, relativeTo: configDir) },
                compressionLevel: k.int("compression_level", in: 1...19) ?? defaults?.compressionLevel ?? 3,
                zstdWorkers: k.int("zstd_workers", in: 0...16) ?? BackupSpec.defaultZstdWorkers,
                prefix: prefix,
                includeGlobals: k.bool("include_globals") ?? false,
                partSize: partSize,
                uploadConcurrency: k.int("upload_concurrency", in: 1...64) ?? 4,
                pgDumpPath: k.string("pg_dump_path")))
        case .verify:
            spec = .verify(VerifySpec(
                backupJob: jobReference(k) ?? "",
                scratchDatabaseURL: connectionString(k, "scratch_database_url", required: true) ?? "",
                passwordFile: k.string("password_file").map { secretPath($0, relativeTo: configDir) },
                checks: verifyChecks(k),
                restoreJobs: k.int("restore_jobs", in: 1...64) ?? 1))
        case .retention:
            spec = .retention(RetentionSpec(
                backupJob: jobReference(k) ?? "",
                keepDays: k.int("keep_days", in: 1...Int.max) ?? defaults?.retentionDays ?? 30,
                keepLast: k.int("keep_last", in: 1...Int.max) ?? 7,
                keepDaily: k.int("keep_daily", in: 1...Int.max),
                keepWeekly: k.int("keep_weekly", in: 1...Int.max),
                keepMonthly: k.int("keep_monthly", in: 1...Int.max),
                dryRun: k.bool("dry_run") ?? false))
        case .probe:
            var url = ""
            if let u = k.string("url", required: "the URL to check, such as \"https://marketplace.example/api/health\"") {
                if (u.hasPrefix("https://") || u.hasPrefix("http://")) && URL(string: u)?.host != nil { url = u } else {
                    k.report(.invalidValue, "url", "expected an http:// or https:// URL, got \"\(u)\"")
                }
            }
            var method = "GET"
            if let m = k.string("method") {
                if ["GET", "HEAD"].contains(m.uppercased()) { method = m.uppercased() } else {
                    k.report(.invalidValue, "method", "expected \"GET\" or \"HEAD\", got \"\(m)\"")
                }
            }
            let bodyContains = k.string("body_contains")
            if bodyContains != nil && method == "HEAD" {
                k.report(.invalidValue, "body_contains", "a HEAD request has no body to search; use method = \"GET\"")
            }
            spec = .probe(ProbeSpec(
                url: url, method: method,
                expectStatus: k.int("expect_status", in: 100...599) ?? 200,
                bodyContains: bodyContains,
                requestTimeout: k.duration("request_timeout") ?? .seconds(10),
                failAfter: k.int("fail_after", in: 1...1000) ?? 2,
                caFile: k.string("ca_file").map { absolute($0, relativeTo: configDir) }))
        case .migrate:
            var source = ""
            if let s = k.string("source", required: "the directory to upload, such as \"/srv/app/uploads\"") {
                if s.hasPrefix("/") { source = s } else { k.report(.invalidValue, "source", "expected an absolute directory path, got \"\(s)\"") }
            }
            var prefix = ""
            if k.has("prefix") { prefix = objectPrefix(k, "prefix") ?? "" } else { k.missing("prefix", "the key prefix for uploaded files, such as \"media/\"") }
            let exclude = k.stringArray("exclude") ?? []
            for pattern in exclude {
                do { _ = try PathPattern(pattern) } catch { k.report(.invalidValue, "exclude", (error as? CairnError)?.message ?? "\(error)") }
            }
            spec = .migrate(MigrateSpec(
                source: source,
                prefix: prefix,
                concurrency: k.int("concurrency", in: 1...256) ?? 8,
                multipartThreshold: k.size("multipart_threshold", in: Self.minPartSize...Self.maxPartSize) ?? 64 << 20,
                partSize: k.size("part_size", in: Self.minPartSize...Self.maxPartSize) ?? 16 << 20,
                cacheControl: k.string("cache_control"),
                bandwidthLimit: k.rate("bwlimit"),
                mappingFile: k.string("mapping_file").map { absolute($0, relativeTo: configDir) },
                exclude: exclude))
        }

        let job = JobConfig(name: name, file: file, jobDescription: jobDescription, schedule: schedule, timeZone: tz,
                            timeout: timeout, retries: retries, retryBackoff: backoff, overlap: overlap,
                            catchUp: catchUp, randomDelay: randomDelay, enabled: enabled,
                            storage: explicitStorage ?? defaults?.storage ?? "", spec: spec)
        return JobUnit(job: job, reader: r, kindReader: k, explicitStorage: explicitStorage)
    }

    private func jobReference(_ k: TableReader) -> String? {
        guard let s = k.string("backup_job", required: "the name of a backup job, such as \"marketplace-db\"") else { return nil }
        guard isValidName(s, allowUpper: false) else {
            k.report(.invalidValue, "backup_job", "expected a job name (a unit file name without .toml), got \"\(s)\"")
            return nil
        }
        return s
    }

    private func objectPrefix(_ k: TableReader, _ key: String) -> String? {
        guard let s = k.string(key) else { return nil }
        let trimmed = s.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard !trimmed.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            k.report(.invalidValue, key, "expected a key prefix like \"media/\" (no empty, . or .. segments), got \"\(s)\"")
            return nil
        }
        return trimmed
    }

    /// A libpq connection string without a password in it.
    private func connectionString(_ k: TableReader, _ key: String, required: Bool) -> String? {
        guard let s = k.string(key, required: required ? "a libpq URL such as \"postgres:///mydb?host=/var/run/postgresql\"" : nil) else { return nil }
        switch ConnectionString.check(s) {
        case .containsPassword:
            k.report(.inlineSecret, key, "the connection string contains a password; remove it and use password_file (chmod 600) or PGPASSFILE")
            return nil
        case .invalid(let why):
            k.report(.invalidValue, key, why)
            return nil
        case .ok:
            return s
        }
    }

    // MARK: - Files

    private func readText(_ path: String) -> Result<String, ConfigTextError> {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return .failure(.init("no such file")) }
        guard !isDir.boolValue else { return .failure(.init("is a directory")) }
        guard let data = FileManager.default.contents(atPath: path) else { return .failure(.init("permission denied or unreadable")) }
        guard let text = String(data: data, encoding: .utf8) else { return .failure(.init("not UTF-8 text")) }
        return .success(text)
    }

    /// `(job name, absolute path)` of every `*.toml` in `dir`, sorted, plus
    /// issues for unit files with unusable names.
    private func listJobFiles(_ dir: String, configDir: String) -> Result<([(String, String)], [ConfigIssue]), ConfigIssue> {
        let display = displayPath(dir, configDir: configDir)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: dir)
        } catch {
            return .failure(ConfigIssue(kind: .file, file: display, message: "cannot read jobs directory: \(FileManager.default.fileExists(atPath: dir) ? "permission denied or not a directory" : "no such directory")"))
        }
        var out: [(String, String)] = []
        var issues: [ConfigIssue] = []
        for file in names.sorted() where file.hasSuffix(".toml") && !file.hasPrefix(".") {
            let name = String(file.dropLast(5))
            let path = dir + "/" + file
            guard isValidName(name, allowUpper: false) else {
                issues.append(ConfigIssue(kind: .file, file: displayPath(path, configDir: configDir),
                                          message: "job name '\(name)' must match [a-z0-9][a-z0-9_-]* (rename the file)"))
                continue
            }
            out.append((name, path))
        }
        return .success((out, issues))
    }

    func displayPath(_ path: String, configDir: String?) -> String {
        guard let configDir else { return path }
        let prefix = configDir.hasSuffix("/") ? configDir : configDir + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    /// A secret file setting: `"credential:NAME"` (a systemd credential, kept
    /// as written and resolved when read, see `SecretFile.resolve`) or a path.
    private func secretPath(_ value: String, relativeTo dir: String) -> String {
        value.hasPrefix("credential:") ? value : absolute(value, relativeTo: dir)
    }

    private func absolute(_ path: String, relativeTo dir: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: dir, isDirectory: true)).standardizedFileURL.path
    }
}

func isValidName(_ name: String, allowUpper: Bool) -> Bool {
    guard let first = name.unicodeScalars.first else { return false }
    func ok(_ c: Unicode.Scalar, first: Bool) -> Bool {
        if c >= "a" && c <= "z" || c >= "0" && c <= "9" { return true }
        if allowUpper && c >= "A" && c <= "Z" { return true }
        return !first && (c == "_" || c == "-")
    }
    return ok(first, first: true) && name.unicodeScalars.dropFirst().allSatisfy { ok($0, first: false) }
}

func isValidKeyID(_ id: String) -> Bool {
    !id.isEmpty && id.count <= 64 && id.unicodeScalars.allSatisfy {
        ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "." || $0 == "_" || $0 == "-"
    }
}

private func listOrNone<S: Sequence>(_ names: S) -> String where S.Element == String {
    let sorted = names.sorted()
    return sorted.isEmpty ? "none" : sorted.joined(separator: ", ")
}
