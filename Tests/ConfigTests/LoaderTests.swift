import Core
import Foundation
import Testing
@testable import Config

@Suite struct LoadingAValidConfiguration {
    @Test func loadsEveryTableAndAppliesDefaults() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: [
            "db": ConfigFixture.backup,
            "db-verify": """
            kind = "verify"
            schedule = "0 4 * * 0"
            [verify]
            backup_job = "db"
            scratch_database_url = "host=/var/run/postgresql dbname=postgres"
            checks = ["SELECT 1"]
            """,
            "db-retention": """
            kind = "retention"
            storage = "local"
            overlap = "queue"
            [retention]
            backup_job = "db"
            keep_last = 3
            """,
            "uploads": """
            kind = "migrate"
            enabled = false
            random_delay = "10m"
            [migrate]
            source = "/srv/uploads"
            prefix = "media/"
            bwlimit = "20MiB/s"
            """,
        ])
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.stateDir == "/var/lib/cairn")
        #expect(c.jobsDir == f.dir + "/jobs")
        #expect(c.timeZone.identifier == "Africa/Accra")

        let p = try #require(c.storages["primary"])
        #expect(p.location == .s3(bucket: "bucket", prefix: "prefix"))
        #expect(p.endpoint == "https://acc.r2.cloudflarestorage.com")
        #expect(p.region == "auto")
        #expect(p.pathStyle == true)
        #expect(p.accessKeyID == "AKIDEXAMPLE")
        #expect(p.secretAccessKeyFile == "/run/credentials/cairn.service/s3-secret")
        #expect(p.objectLock == ObjectLockConfig(mode: .governance, days: 30))
        #expect(p.locationURL == "s3://bucket/prefix?endpoint=https%3A%2F%2Facc.r2.cloudflarestorage.com&region=auto&path_style=true")
        #expect(c.storages["local"]?.location == .directory(path: "/var/lib/cairn/backups"))

        #expect(c.keys.active == "2026-11")
        #expect(c.keys.sources == ["2026-11": .file("/etc/cairn/keys/2026-11.key"), "2025-01": .credential("backup-key-2025")])
        #expect(c.defaults == DefaultsConfig(storage: "primary", compressionLevel: 5, retentionDays: 14))
        #expect(c.alerts.channels["webhook"]?.kind == .webhook(.init(url: "https://hooks.example/abc", secretFile: "/etc/cairn/token")))
        #expect(c.alerts.remindEvery == .seconds(86400))

        let db = try #require(c.jobs["db"])
        #expect(db.kind == .backup)
        #expect(db.schedule == "30 2 * * *")
        #expect(db.timeZone.identifier == "Africa/Accra")
        #expect(db.timeout == .seconds(7200))
        #expect(db.retries == 0)
        #expect(db.retryBackoff == .seconds(60))
        #expect(db.overlap == .skip)
        #expect(db.catchUp == .zero)
        #expect(db.enabled)
        #expect(db.storage == "primary")
        let b = try #require(db.backup)
        #expect(b.database == "postgres:///marketplace?host=/var/run/postgresql")
        #expect(b.compressionLevel == 5)          // from [defaults]
        #expect(b.prefix == "db")                 // the job name
        #expect(b.uploadConcurrency == 4)
        #expect(b.partSize == nil)
        #expect(b.zstdWorkers == BackupSpec.defaultZstdWorkers)
        #expect(BackupSpec.defaultZstdWorkers == 0)   // docs/CONFIG.md, measured in docs/BENCHMARKS.md
        #expect(b.includeGlobals == false)

        let v = try #require(c.jobs["db-verify"]?.verify)
        #expect(v.backupJob == "db")
        #expect(v.checks == [VerifyCheck(sql: "SELECT 1")])

        let r = try #require(c.jobs["db-retention"])
        #expect(r.storage == "local")
        #expect(r.overlap == .queue)
        #expect(r.retention == RetentionSpec(backupJob: "db", keepDays: 14, keepLast: 3, dryRun: false))

        let m = try #require(c.jobs["uploads"])
        #expect(m.enabled == false)
        #expect(m.randomDelay == .seconds(600))
        #expect(m.migrate == MigrateSpec(source: "/srv/uploads", prefix: "media", concurrency: 8,
                                         multipartThreshold: 64 << 20, partSize: 16 << 20,
                                         cacheControl: nil, bandwidthLimit: 20 << 20))
        #expect(c.sortedJobs.map(\.name) == ["db", "db-retention", "db-verify", "uploads"])
    }

    @Test func verifyAndRetentionInheritTheBackupJobsStorage() throws {
        // `storage` goes before [backup]: it is a top-level key of the unit.
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: [
            "db": "storage = \"local\"\n" + ConfigFixture.backup,
            "ret": "kind = \"retention\"\n[retention]\nbackup_job = \"db\"\n",
        ])
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.jobs["ret"]?.storage == "local")
    }

    @Test func theOnlyStorageIsTheDefault() throws {
        let f = try ConfigFixture(main: """
        [storage.only]
        url = "file:///srv/b"
        [keys]
        active = "k1"
        files = { k1 = "keys/k1.key" }
        """, jobs: ["db": ConfigFixture.backup])
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.jobs["db"]?.storage == "only")
        // Relative key paths are resolved against the config's directory.
        #expect(c.keys.sources["k1"] == .file(f.dir + "/keys/k1.key"))
        #expect(c.stateDir == "/var/lib/cairn")
    }

    @Test func aMissingDefaultJobsDirectoryMeansNoJobs() throws {
        let f = try ConfigFixture(main: "[storage.a]\nurl = \"file:///srv/b\"\n")
        try FileManager.default.removeItem(atPath: f.dir + "/jobs")
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.jobs.isEmpty)
    }

    @Test func descriptionsNameSecretFilesButHoldNoSecrets() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: ["db": ConfigFixture.backup])
        let c = try ConfigLoader.load(path: f.configPath)
        let text = c.description
        #expect(text.contains("secret_access_key_file=/run/credentials/cairn.service/s3-secret"))
        #expect(text.contains("alerts: remind_every=1d webhook=webhook"))
        #expect(!text.contains("hooks.example"))
    }

    @Test func defaultPathHonoursCAIRN_CONFIG() {
        #expect(ConfigLoader.defaultPath(env: [:]) == "/etc/cairn/cairn.toml")
        #expect(ConfigLoader.defaultPath(env: ["CAIRN_CONFIG": "/tmp/c.toml"]) == "/tmp/c.toml")
    }
}

/// Runs `check` on a fixture and returns the issue descriptions.
private func check(main: String = ConfigFixture.main, jobs: [String: String] = [:],
                   loader: ConfigLoader = ConfigLoader()) throws -> [String] {
    let f = try ConfigFixture(main: main, jobs: jobs)
    return loader.check(path: f.configPath).map { $0.description.replacingOccurrences(of: f.dir + "/", with: "") }
}

@Suite struct ReportingProblems {
    @Test func badDurationNamesKeyLineAndExpectation() throws {
        let issues = try check(jobs: ["nightly": """
        kind = "backup"
        # comment
        schedule = "30 2 * * *"
        timeout = "soon"
        [backup]
        database = "postgres:///db"
        """])
        #expect(issues.contains { $0.hasSuffix("jobs/nightly.toml:4: timeout: expected a duration like \"30m\" or \"2h\", got \"soon\"") })
        #expect(issues.count == 1)
    }

    @Test func unknownKeysAreReportedWithASuggestion() throws {
        let issues = try check(jobs: ["db": """
        kind = "retention"
        schedule = "@daily"

        [retention]
        backup_job = "db2"
        keep_last = 3
        retension_days = 30
        """, "db2": ConfigFixture.backup])
        #expect(issues == ["jobs/db.toml:7: unknown key 'retension_days' in [retention]; expected one of: backup_job, keep_days, keep_last, keep_daily, keep_weekly, keep_monthly, dry_run"]
                || issues.contains { $0.hasPrefix("jobs/db.toml:7: unknown key 'retension_days' in [retention]") })
        let mainIssues = try check(main: "state_dri = \"/x\"\n" + ConfigFixture.main)
        #expect(mainIssues.contains { $0.contains(":1: unknown key 'state_dri' in the top level (did you mean 'state_dir'?); expected one of: state_dir, jobs_dir") })
    }

    @Test func typeErrorsNameTheExpectedType() throws {
        let issues = try check(jobs: ["db": """
        kind = "backup"
        retries = "3"
        enabled = "yes"
        [backup]
        database = "postgres:///db"
        compression_level = 25
        upload_concurrency = 2.5
        """])
        #expect(issues.contains("jobs/db.toml:2: retries: expected an integer from 0 to 100, got a string (\"3\")"))
        #expect(issues.contains("jobs/db.toml:3: enabled: expected true or false, got a string (\"yes\")"))
        #expect(issues.contains("jobs/db.toml:6: backup.compression_level: expected an integer from 1 to 19, got 25"))
        #expect(issues.contains("jobs/db.toml:7: backup.upload_concurrency: expected an integer from 1 to 64, got a floating-point number (2.5)"))
        #expect(issues.count == 4)
    }

    @Test func syntaxErrorsCarryLineAndColumnFromTOMLKit() throws {
        let issues = try check(jobs: ["db": "kind = \"backup\"\n[backup]\ndatabase = \"postgres:///db\nx = 1\n"])
        let i = try #require(issues.first)
        #expect(i.hasPrefix("jobs/db.toml:3:"))
        #expect(i.contains("TOML syntax error"))
        let f = try ConfigFixture(main: "state_dir = = 1\n")
        let issue = try #require(ConfigLoader.check(path: f.configPath).first)
        #expect(issue.kind == .syntax)
        #expect(issue.line == 1)
        #expect(issue.column != nil)
    }

    @Test func referencesMustResolve() throws {
        let issues = try check(jobs: [
            "db": "storage = \"nowhere\"\n" + ConfigFixture.backup,
            "v": "kind = \"verify\"\n[verify]\nbackup_job = \"r\"\nscratch_database_url = \"postgres:///postgres\"\n",
            "r": "kind = \"retention\"\n[retention]\nbackup_job = \"gone\"\n",
        ])
        #expect(issues.contains("jobs/db.toml:1: storage: no storage named 'nowhere' in cairn.toml (defined: local, primary)"))
        #expect(issues.contains("jobs/r.toml:3: retention.backup_job: no job named 'gone' (backup jobs: db)"))
        #expect(issues.contains("jobs/v.toml:3: verify.backup_job: job 'r' is a retention job; expected a backup job"))
        #expect(issues.count == 3)
    }

    @Test func twoBackupJobsMayNotShareAStorageAndPrefix() throws {
        let issues = try check(jobs: [
            "a": ConfigFixture.backup + "prefix = \"db\"\n",
            "b": ConfigFixture.backup + "prefix = \"db/\"\n",
            "c": ConfigFixture.backup,                                 // prefix "c": its own
            "d": "storage = \"local\"\n" + ConfigFixture.backup + "prefix = \"db\"\n",  // another storage
        ])
        #expect(issues == ["jobs/b.toml:7: [backup] prefix: job 'b' writes to the same place as job 'a' (storage primary, prefix \"db\"); give each backup job its own prefix"],
                "\(issues)")
    }

    @Test func mainFileValuesAreValidated() throws {
        let main = ConfigFixture.main
            .replacingOccurrences(of: "timezone = \"Africa/Accra\"", with: "timezone = \"Mars/Olympus\"")
            .replacingOccurrences(of: "active = \"2026-11\"", with: "active = \"2027-01\"")
            .replacingOccurrences(of: "storage = \"primary\"", with: "storage = \"secondary\"")
            .replacingOccurrences(of: "url = \"file:///var/lib/cairn/backups\"", with: "url = \"/var/lib/cairn/backups\"")
            .replacingOccurrences(of: "days = 30 }", with: "days = 0 }")
        let issues = try check(main: main)
        #expect(issues.contains("cairn.toml:2: timezone: expected an IANA time zone name like \"Africa/Accra\" or \"UTC\", got \"Mars/Olympus\""))
        #expect(issues.contains("cairn.toml:17: keys.active: key id '2027-01' is not in [keys.files] (defined: 2025-01, 2026-11)"))
        #expect(issues.contains("cairn.toml:23: defaults.storage: no storage named 'secondary' (defined: local, primary)"))
        #expect(issues.contains("cairn.toml:14: storage.local.url: write file:///var/lib/cairn/backups for a local directory"))
        #expect(issues.contains("cairn.toml:11: storage.primary.object_lock.days: expected an integer from 1 to 36500, got 0"))
        #expect(issues.count == 5)
    }

    @Test func sizesAreCheckedAndPartSizeIsAtLeast5MiB() throws {
        let issues = try check(jobs: [
            "db": ConfigFixture.backup + "part_size = \"4MiB\"\n",
            "m": "kind = \"migrate\"\n[migrate]\nsource = \"/srv/u\"\nprefix = \"media\"\nmultipart_threshold = \"lots\"\nbwlimit = \"20MiB\"\n",
        ])
        #expect(issues.contains("jobs/db.toml:7: backup.part_size: must be from 5MiB to 5GiB, got \"4MiB\""))
        #expect(issues.contains("jobs/m.toml:5: migrate.multipart_threshold: expected a size like \"16MiB\", got \"lots\""))
        #expect(issues.contains("jobs/m.toml:6: migrate.bwlimit: expected a rate like \"20MiB/s\", got \"20MiB\""))
        #expect(issues.count == 3)
    }

    @Test func migrateMappingFileIsResolvedNextToTheConfig() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: [
            "m": "kind = \"migrate\"\n[migrate]\nsource = \"/srv/u\"\nprefix = \"media/\"\nmapping_file = \"out/media.jsonl\"\ncache_control = \"public, max-age=60\"\n",
            "n": "kind = \"migrate\"\n[migrate]\nsource = \"/srv/u\"\nprefix = \"media\"\nmaping_file = \"x\"\n",
        ])
        let issues = ConfigLoader().check(path: f.configPath).map(\.description)
        #expect(issues.count == 1)
        #expect(issues.first?.contains("jobs/n.toml:5: unknown key 'maping_file'") == true)
        try f.write("jobs/n.toml", "kind = \"migrate\"\n[migrate]\nsource = \"/srv/u\"\nprefix = \"media\"\n")
        let c = try ConfigLoader.load(path: f.configPath)
        let m = try #require(c.jobs["m"]?.migrate)
        #expect(m.mappingFile == f.dir + "/out/media.jsonl")
        #expect(m.prefix == "media")
        #expect(m.cacheControl == "public, max-age=60")
        #expect(c.jobs["n"]?.migrate?.mappingFile == nil)
    }

    @Test func scheduleMustBeNonEmptyAndPassTheValidatorHook() throws {
        let empty = try check(jobs: ["db": "schedule = \"  \"\n" + ConfigFixture.backup.replacingOccurrences(of: "schedule = \"30 2 * * *\"\n", with: "")])
        #expect(empty == ["jobs/db.toml:1: schedule: must not be empty; remove the key for a job that only runs on demand"])

        let loader = ConfigLoader(scheduleValidator: { $0 == "30 2 * * *" ? nil : "expected 5 cron fields, got \"\($0)\"" })
        #expect(try check(jobs: ["db": ConfigFixture.backup], loader: loader).isEmpty)
        let bad = try check(jobs: ["db": ConfigFixture.backup.replacingOccurrences(of: "30 2 * * *", with: "every night")], loader: loader)
        #expect(bad == ["jobs/db.toml:2: schedule: expected 5 cron fields, got \"every night\""])
    }

    @Test func missingKindTableAndKeysAreReportedAtKind() throws {
        let issues = try check(jobs: [
            "db": "description = \"x\"\nkind = \"backup\"\n",
            "nokind": "schedule = \"@daily\"\n",
            "odd": "kind = \"archive\"\n",
            "mixed": ConfigFixture.backup + "[verify]\nbackup_job = \"db\"\n",
        ])
        #expect(issues.contains("jobs/db.toml:2: backup.database: required key is missing (a libpq URL such as \"postgres:///mydb?host=/var/run/postgresql\")"))
        #expect(issues.contains("jobs/nokind.toml:1: kind: required key is missing (one of \"backup\", \"verify\", \"retention\", \"migrate\", \"probe\")"))
        #expect(issues.contains("jobs/odd.toml:1: kind: expected one of \"backup\", \"verify\", \"retention\", \"migrate\", \"probe\", got \"archive\""))
        #expect(issues.contains("jobs/mixed.toml:7: verify: a [verify] table does not apply to kind = \"backup\"; use [backup]"))
        #expect(issues.count == 4, "\(issues)")
    }

    @Test func badJobFileNamesAreReported() throws {
        let issues = try check(jobs: ["Nightly": ConfigFixture.backup, "_x": ConfigFixture.backup])
        #expect(issues == [
            "jobs/Nightly.toml: job name 'Nightly' must match [a-z0-9][a-z0-9_-]* (rename the file)",
            "jobs/_x.toml: job name '_x' must match [a-z0-9][a-z0-9_-]* (rename the file)",
        ])
    }

    @Test func everyProblemInEveryFileIsReported() throws {
        let f = try ConfigFixture(main: "bogus = 1\n" + ConfigFixture.main, jobs: [
            "a": ConfigFixture.backup.replacingOccurrences(of: "\"2h\"", with: "\"2 hours\"") + "zstd_workers = 99\n",
            "b": "kind = \"retention\"\nretries = -1\n[retention]\nbackup_job = \"zzz\"\nkeep_last = 0\n",
            "c": "kind = \"backup\"\n[backup\n",
        ])
        let issues = ConfigLoader.check(path: f.configPath)
        #expect(issues.count == 7)
        #expect(Set(issues.map(\.file)) == [f.configPath, "jobs/a.toml", "jobs/b.toml", "jobs/c.toml"])
        #expect(issues.allSatisfy { $0.line != nil })

        // load quotes the first and counts the rest.
        let error = #expect(throws: CairnError.self) { try ConfigLoader.load(path: f.configPath) }
        #expect(error?.code == .config)
        #expect(error?.message.contains("and 6 more problems") == true)
        #expect(error?.message.contains("\n") == false)
    }

    @Test func mainFileSyntaxErrorStillChecksJobs() throws {
        let issues = try check(main: "state_dir = \n", jobs: ["db": ConfigFixture.backup + "bogus = 1\n"])
        #expect(issues.count == 2)
        #expect(issues[0].hasPrefix("cairn.toml:1:"))
        #expect(issues[1].hasPrefix("jobs/db.toml:7: unknown key 'bogus' in [backup]"))
    }

    @Test func explicitJobsDirMustExist() throws {
        #expect(try check(main: "jobs_dir = \"jobs\"\n" + ConfigFixture.main).isEmpty)
        let missing = try check(main: "jobs_dir = \"units\"\n" + ConfigFixture.main)
        #expect(missing == ["units: cannot read jobs directory: no such directory"])
    }
}

@Suite struct SecretsStayOutOfTheConfig {
    @Test func inlineSecretAccessKeyIsRejected() throws {
        let main = ConfigFixture.main.replacingOccurrences(of: "secret_access_key_file = \"/run/credentials/cairn.service/s3-secret\"",
                                                           with: "secret_access_key = \"wJalrXUtnFEMI/K7MDENG\"")
        let issues = try check(main: main)
        #expect(issues == ["cairn.toml:10: storage.primary.secret_access_key: secrets are not accepted inline; put the key in a file (chmod 600) and set secret_access_key_file, or set AWS_SECRET_ACCESS_KEY in the service environment"])
        #expect(!issues[0].contains("wJalr"))
    }

    @Test(arguments: [
        "postgres://app:hunter2@db.internal/marketplace",
        "postgresql://app:hunter2@/marketplace?host=/var/run/postgresql",
        "postgres:///marketplace?host=/tmp&password=hunter2",
        "host=db.internal user=app password=hunter2 dbname=marketplace",
        "host=db.internal password = 'hunter 2' dbname=marketplace",
    ])
    func passwordInDatabaseURLIsRejected(url: String) throws {
        let unit = ConfigFixture.backup.replacingOccurrences(of: "postgres:///marketplace?host=/var/run/postgresql", with: url)
        let issues = try check(jobs: ["db": unit])
        #expect(issues == ["jobs/db.toml:6: backup.database: the connection string contains a password; remove it and use password_file (chmod 600) or PGPASSFILE"])
        #expect(!issues[0].contains("hunter"))
    }

    @Test(arguments: [
        "postgres://app@db.internal:5432/marketplace",
        "postgresql:///marketplace?host=/var/run/postgresql&sslmode=disable",
        "host=/var/run/postgresql dbname=marketplace user=app",
        "host='/var/run/postgresql' dbname = marketplace",
    ])
    func databaseURLsWithoutPasswordsAreAccepted(url: String) throws {
        let unit = ConfigFixture.backup.replacingOccurrences(of: "postgres:///marketplace?host=/var/run/postgresql", with: url)
        #expect(try check(jobs: ["db": unit]).isEmpty)
    }

    @Test func notAConnectionString() throws {
        let unit = ConfigFixture.backup.replacingOccurrences(of: "postgres:///marketplace?host=/var/run/postgresql", with: "mysql://x/y")
        let issues = try check(jobs: ["db": unit])
        #expect(issues.count == 1)
        #expect(issues[0].hasPrefix("jobs/db.toml:6: backup.database: URL scheme must be postgres:// or postgresql://"))
    }
}
