import Foundation
import Testing
@testable import Config

@Suite struct VerifyUnitConfig {
    func issues(_ verify: String, backupDatabase: String = "postgres:///marketplace?host=/var/run/postgresql") throws -> [String] {
        let backup = ConfigFixture.backup.replacingOccurrences(of: "postgres:///marketplace?host=/var/run/postgresql", with: backupDatabase)
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: ["db": backup, "v": verify])
        return ConfigLoader().check(path: f.configPath).map { $0.description.replacingOccurrences(of: f.dir + "/", with: "") }
    }

    @Test func checksAreStringsOrNamedTablesAndRestoreJobsDefaultsToOne() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: ["db": ConfigFixture.backup, "v": """
            kind = "verify"
            [verify]
            backup_job = "db"
            scratch_database_url = "postgres:///postgres?host=/var/run/postgresql"
            checks = [
              "SELECT count(*) > 0 FROM users",
              { name = "no negative totals", sql = "SELECT count(*) = 0 FROM orders WHERE total < 0" },
            ]
            """])
        let v = try #require(try ConfigLoader.load(path: f.configPath).jobs["v"]?.verify)
        #expect(v.checks == [VerifyCheck(name: "SELECT count(*) > 0 FROM users", sql: "SELECT count(*) > 0 FROM users"),
                             VerifyCheck(name: "no negative totals", sql: "SELECT count(*) = 0 FROM orders WHERE total < 0")])
        #expect(v.restoreJobs == 1)
        #expect(v.backupID == nil)
    }

    @Test func restoreJobsIsRead() throws {
        let f = try ConfigFixture(main: ConfigFixture.main, jobs: ["db": ConfigFixture.backup, "v": """
            kind = "verify"
            [verify]
            backup_job = "db"
            scratch_database_url = "host=db2.internal dbname=postgres"
            restore_jobs = 4
            """])
        #expect(try ConfigLoader.load(path: f.configPath).jobs["v"]?.verify?.restoreJobs == 4)
    }

    @Test func badChecksAndRestoreJobsAreReportedWithTheirLine() throws {
        let found = try issues("""
            kind = "verify"
            [verify]
            backup_job = "db"
            scratch_database_url = "postgres:///postgres"
            restore_jobs = 0
            checks = [{ name = "x" }, 3, { sql = "SELECT true", when = "always" }]
            """)
        #expect(found.contains { $0.hasPrefix("jobs/v.toml:5: verify.restore_jobs:") }, "\(found)")
        #expect(found.contains("jobs/v.toml:6: verify.checks: item 1: a table needs sql = \"a query returning one true value\""), "\(found)")
        #expect(found.contains { $0.hasPrefix("jobs/v.toml:6: verify.checks: item 2 is an integer") }, "\(found)")
        #expect(found.contains("jobs/v.toml:6: verify.checks: item 3: unknown key 'when' (a check has name and sql)"), "\(found)")
    }

    @Test func scratchURLNamingTheBackedUpDatabaseIsRefused() throws {
        // The same database through a URL with a socket directory, and as keywords on the default port.
        for scratch in ["postgres:///marketplace?host=/var/run/postgresql",
                        "host=/var/run/postgresql port=5432 dbname=marketplace",
                        "postgres://cairn@localhost/marketplace"] {
            let found = try issues("""
                kind = "verify"
                [verify]
                backup_job = "db"
                scratch_database_url = "\(scratch)"
                """)
            #expect(found.count == 1, "\(scratch): \(found)")
            #expect(found.first?.hasPrefix("jobs/v.toml:4: verify.scratch_database_url: names the database that backup job 'db' backs up") == true, "\(found)")
        }
        // Remote server with a port, named the same in both.
        let remote = try issues("""
            kind = "verify"
            [verify]
            backup_job = "db"
            scratch_database_url = "postgresql://verify@DB1.internal:6432/app"
            """, backupDatabase: "host=db1.internal port=6432 dbname=app")
        #expect(remote.count == 1 && remote[0].contains("scratch_database_url: names the database"), "\(remote)")
    }

    @Test func anotherDatabaseOrServerIsAccepted() throws {
        for scratch in ["postgres:///postgres?host=/var/run/postgresql",
                        "postgres://db2.internal/marketplace",
                        "postgres:///marketplace?host=/var/run/postgresql&port=5433",
                        "host=/var/run/postgresql"] {   // no database named: libpq's default, not known to be the same
            let found = try issues("""
                kind = "verify"
                [verify]
                backup_job = "db"
                scratch_database_url = "\(scratch)"
                """)
            #expect(found.isEmpty, "\(scratch): \(found)")
        }
    }

    @Test func connectionTargetsParse() {
        let u = ConnectionString.target("postgresql://u@%2Fvar%2Frun%2Fpostgresql:5433/my%20db?sslmode=disable")
        #expect(u == .init(host: "/var/run/postgresql", port: "5433", dbname: "my db"))
        let k = ConnectionString.target("host='/tmp' dbname = 'a b' port=6000")
        #expect(k == .init(host: "/tmp", port: "6000", dbname: "a b"))
        let v6 = ConnectionString.target("postgres://[::1]:5432/x")
        #expect(v6?.normalizedHost == "local")
    }
}
