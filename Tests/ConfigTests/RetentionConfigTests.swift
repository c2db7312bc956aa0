import Core
import Foundation
import Testing
@testable import Config

/// `[retention]`: the rules and their defaults.
@Suite struct RetentionConfigTests {
    @Test func defaultsComeFromTheDefaultsTableAndTheDocumentedValues() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: [
            "db": ConfigFixture.backup,
            "ret": "kind = \"retention\"\n[retention]\nbackup_job = \"db\"\n",
        ])
        let c = try ConfigLoader.load(path: f.configPath)
        // [defaults] retention_days = 14 in the fixture; keep_last defaults to 7; no GFS rule; not a dry run.
        #expect(c.jobs["ret"]?.retention == RetentionSpec(backupJob: "db", keepDays: 14, keepLast: 7))
    }

    @Test func withoutADefaultsTableKeepDaysIsThirty() throws {
        let main = ConfigFixture.main.replacingOccurrences(of: "retention_days = 14\n", with: "")
        let f = try ConfigFixture(main: main, jobs: [
            "db": ConfigFixture.backup,
            "ret": "kind = \"retention\"\n[retention]\nbackup_job = \"db\"\n",
        ])
        #expect(try ConfigLoader.load(path: f.configPath).jobs["ret"]?.retention?.keepDays == 30)
    }

    @Test func everyRuleIsRead() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: [
            "db": ConfigFixture.backup,
            "ret": """
            kind = "retention"
            [retention]
            backup_job = "db"
            keep_days = 10
            keep_last = 2
            keep_daily = 14
            keep_weekly = 8
            keep_monthly = 12
            dry_run = true
            """,
        ])
        let r = try #require(try ConfigLoader.load(path: f.configPath).jobs["ret"]?.retention)
        #expect(r == RetentionSpec(backupJob: "db", keepDays: 10, keepLast: 2, keepDaily: 14, keepWeekly: 8, keepMonthly: 12, dryRun: true))
        #expect(r.description == "backup_job=db keep_days=10 keep_last=2 keep_daily=14 keep_weekly=8 keep_monthly=12 dry_run")
    }

    @Test func countsBelowOneAreRefusedWithTheirLine() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: [
            "db": ConfigFixture.backup,
            "ret": "kind = \"retention\"\n[retention]\nbackup_job = \"db\"\nkeep_weekly = 0\nkeep_last = -1\n",
        ])
        let issues = ConfigLoader().check(path: f.configPath).map { $0.description.replacingOccurrences(of: f.dir + "/", with: "") }
        #expect(issues.count == 2)
        #expect(issues.contains { $0.hasPrefix("jobs/ret.toml:4: retention.keep_weekly") })
        #expect(issues.contains { $0.hasPrefix("jobs/ret.toml:5: retention.keep_last") })
    }

    @Test func theExampleUnitLoadsAsItIs() throws {
        let c = try ConfigLoader.load(path: ShippedExamples.repoRoot + "/examples/cairn.toml")
        let job = try #require(c.jobs["marketplace-retention"])
        #expect(job.retention == RetentionSpec(backupJob: "marketplace-db", keepDays: 30, keepLast: 7, dryRun: false))
        #expect(job.timeZone.identifier == "Africa/Accra")
    }
}
