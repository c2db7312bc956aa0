import Core
import Foundation
import Testing
@testable import Config

@Suite struct DaemonAndClusterConfig {
    @Test func defaultsWithoutTheTables() throws {
        let f = try ConfigFixture(main: ConfigFixture.main)
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.daemon == DaemonConfig())
        #expect(c.daemon.maxConcurrentJobs == 2 && c.daemon.stopGracePeriod == .seconds(300) && c.daemon.watchdog)
        #expect(c.cluster == nil)
    }

    @Test func readsDaemonAndCluster() throws {
        let f = try ConfigFixture(main: ConfigFixture.main + """

        [daemon]
        socket = "/run/cairn-test/c.sock"
        max_concurrent_jobs = 4
        stop_grace_period = "90s"
        watchdog = false

        [cluster]
        lock_database = "postgres://cairn@locks.internal/cairn_locks?sslmode=verify-full"
        password_file = "lock-db-password"
        node = "backup-1"
        """)
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.daemon.socket == "/run/cairn-test/c.sock")
        #expect(c.daemon.maxConcurrentJobs == 4)
        #expect(c.daemon.stopGracePeriod == .seconds(90))
        #expect(c.daemon.watchdog == false)
        #expect(c.daemon.socketPath(stateDir: c.stateDir, env: ["RUNTIME_DIRECTORY": "/run/other"]) == "/run/cairn-test/c.sock")
        let cluster = try #require(c.cluster)
        #expect(cluster.lockDatabase.hasPrefix("postgres://cairn@locks.internal/"))
        #expect(cluster.passwordFile == f.dir + "/lock-db-password")     // relative to cairn.toml
        #expect(cluster.node == "backup-1")
    }

    @Test func badValuesAreReportedWithFileAndLine() throws {
        let f = try ConfigFixture(main: ConfigFixture.main + """

        [daemon]
        socket = "relative.sock"
        max_concurrent_jobs = 0
        stop_grace = "1m"

        [cluster]
        lock_database = "postgres://cairn:hunter2@locks/cairn_locks"
        """)
        let issues = ConfigLoader.check(path: f.configPath).map(\.description)
        #expect(issues.contains { $0.contains("cairn.toml:") && $0.contains("socket") && $0.contains("absolute path") })
        #expect(issues.contains { $0.contains("max_concurrent_jobs") })
        #expect(issues.contains { $0.contains("stop_grace") })
        #expect(issues.contains { $0.contains("lock_database") && $0.contains("password") })
        #expect(!issues.joined().contains("hunter2"))
    }

    @Test func socketPathFollowsRuntimeDirectoryThenStateDir() {
        let d = DaemonConfig()
        #expect(d.socketPath(stateDir: "/var/lib/cairn", env: ["RUNTIME_DIRECTORY": "/run/cairn"]) == "/run/cairn/cairn.sock")
        #expect(d.socketPath(stateDir: "/var/lib/cairn", env: ["RUNTIME_DIRECTORY": "/run/a:/run/b"]) == "/run/a/cairn.sock")
        if !FileManager.default.fileExists(atPath: "/run/cairn") {
            #expect(d.socketPath(stateDir: "/srv/state", env: [:]) == "/srv/state/cairn.sock")
        }
    }
}
