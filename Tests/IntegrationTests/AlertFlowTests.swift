import Core
import Foundation
import GRDB
import State
import Testing

/// Alerts end to end through the one run path and the daemon: real
/// receivers (scripts/testservers/alert_receiver.py), real PostgreSQL and S3.
@Suite(.serialized) struct AlertFlowTests {
    /// A DaemonFixture with a webhook channel `hook` to the receiver under `/hook/SCOPE`.
    struct Fixture {
        let fx: DaemonFixture
        let rx: AlertReceiver
        let scope: String
        let secrets: SecretDir
        var hookPath: String { "/hook/\(scope)" }

        init(remindEvery: String = "24h") throws {
            fx = try DaemonFixture()
            rx = try AlertReceiver()
            scope = "flow-\(UUID().uuidString.prefix(8).lowercased())"
            secrets = try SecretDir()
            let secret = try secrets.write("hook-secret", "flow-secret\n")
            let config = try String(contentsOfFile: fx.config, encoding: .utf8)
            try (config + """

            [alerts]
            remind_every = "\(remindEvery)"
            [alerts.hook]
            type = "webhook"
            url = "\(rx.base)\(hookPath)"
            secret_file = "\(secret)"
            """).write(toFile: fx.config, atomically: true, encoding: .utf8)
        }

        /// The webhook deliveries received so far: (event, job, message).
        func received() async throws -> [(event: String, job: String, message: String)] {
            try await rx.requests(under: hookPath).filter { $0.status == 200 }.map {
                let j = $0.json
                return (j["event"] as? String ?? "", j["job"] as? String ?? "", j["message"] as? String ?? "")
            }
        }

        func alertStatus() async throws -> [[String: Any]] {
            let r = try await CLI.run(["alert", "status", "-c", fx.config, "--json"])
            return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]) ?? []
        }
    }

    /// A job fails while every channel is down: its result is recorded
    /// unchanged and on time; the delivery waits in the queue (visible in
    /// `cairn alert status`), survives a daemon restart, and arrives when the
    /// receiver is back; the next success sends one recovery notice.
    @Test func deliveriesWaitForDownChannelsAcrossARestartAndTheRecoveryFollows() async throws {
        let db = try await TestDatabase.create("alertflow", sql: "CREATE TABLE t AS SELECT 1 AS id")
        defer { Task { await db.drop() } }
        let f = try Fixture()
        defer { f.fx.remove() }
        try f.fx.writeJob("db", "kind = \"backup\"\nalerts = [\"hook\"]\n[backup]\ndatabase = \"postgres://127.0.0.1:1/nothing\"\n")
        try await f.rx.fail(f.hookPath, status: 503)               // the receiver is down (answers 503) until cleared

        var daemon = try DaemonProcess(config: f.fx.config, logPath: f.fx.dir + "/serve.log")
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: f.fx.socket) }, "\(daemon.log)")
        let run = try await CLI.run(["run", "-c", f.fx.config, "db", "--wait"])
        #expect(run.status == ErrorCode.database.exitStatus, "\(run.stderr)")
        // The job's result is in the history at once, whatever the channel does.
        let failed = try #require(try f.fx.history("db").first)
        #expect(failed.result == .failed && failed.finishedAt != nil)
        // Attempted, refused by the receiver, queued.
        #expect(try await eventually(20) {
            try await f.alertStatus().contains { $0["status"] as? String == "pending" && ($0["attempts"] as? Int ?? 0) >= 1 && $0["event"] as? String == "failed" }
        }, "\(daemon.log)")
        #expect(try await f.received().isEmpty)
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 30) == 0)

        // The receiver comes back; a restarted daemon delivers what was queued.
        try await f.rx.clearFail(f.hookPath)
        daemon = try DaemonProcess(config: f.fx.config, logPath: f.fx.dir + "/serve2.log")
        #expect(try await eventually(30) { try await f.received().contains { $0.event == "failed" && $0.job == "db" } }, "\(daemon.log)")
        let failure = try #require(try await f.received().first)
        #expect(failure.message.hasPrefix("backup failed: "), "\(failure.message)")
        // The tail of the run's log travels with the alert (the daemon's lines naming the job).
        let body = try #require(try await f.rx.requests(under: f.hookPath).first { $0.status == 200 }?.json)
        let tail = try #require(body["log_tail"] as? String, "\(body)")
        #expect(tail.contains("msg=\"backup started\"") && tail.contains("msg=\"run failed\"") && tail.contains("job=db"), "\(tail)")
        #expect(try await eventually(10) { try await f.alertStatus().contains { $0["status"] as? String == "delivered" } })

        // Fixed: the next run succeeds, one recovery notice; a second success sends nothing more.
        try f.fx.writeJob("db", "kind = \"backup\"\nalerts = [\"hook\"]\n[backup]\ndatabase = \"\(db.url)\"\n")
        daemon.signal(SIGHUP)
        #expect(await eventually(10) { daemon.log.contains("msg=\"configuration reloaded\"") }, "\(daemon.log)")
        for _ in 0..<2 {
            let ok = try await CLI.run(["run", "-c", f.fx.config, "db", "--wait"])
            #expect(ok.status == 0, "\(ok.stderr)")
        }
        #expect(try await eventually(20) { try await f.received().contains { $0.event == "recovered" } }, "\(daemon.log)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 30) == 0)
        #expect(try await f.received().map(\.event) == ["failed", "recovered"])
    }

    /// A scheduled instant passes while the daemon is down: the restarted
    /// daemon alerts it as missed (once).
    @Test func aRunMissedWhileTheDaemonWasDownIsAlertedAfterTheRestart() async throws {
        let db = try await TestDatabase.create("alertmiss", sql: "CREATE TABLE t (id int);")
        defer { Task { await db.drop() } }
        let f = try Fixture()
        defer { f.fx.remove() }
        try f.fx.writeJob("db", "kind = \"backup\"\nschedule = \"*/2 * * * * *\"\nalerts = [\"hook\"]\n[backup]\ndatabase = \"\(db.url)\"\n")
        let first = try DaemonProcess(config: f.fx.config, logPath: f.fx.dir + "/serve.log")
        #expect(try await eventually(30) { try f.fx.history("db").contains { $0.trigger == "schedule" && $0.result == .ok } }, "\(first.log)")
        first.signal(SIGTERM)
        #expect(await first.waitExit(timeout: 30) == 0)
        let stopped = Date()
        // Down past at least one instant (every 2 s): wait for the clock, not for a process.
        #expect(await eventually(10) { Date().timeIntervalSince(stopped) > 2.5 })
        let second = try DaemonProcess(config: f.fx.config, logPath: f.fx.dir + "/serve2.log")
        #expect(try await eventually(30) { try await f.received().contains { $0.event == "missed" && $0.job == "db" } }, "\(second.log)")
        let missed = try await f.received().filter { $0.event == "missed" }
        #expect(missed.count == 1 && missed[0].message.contains("did not start"), "\(missed)")
        second.signal(SIGTERM)
        #expect(await second.waitExit(timeout: 30) == 0)
    }

    /// The newest successful backup older than `stale_after`: a stale alert
    /// (the last success comes from the history: this one was made an hour ago).
    @Test func aStaleBackupIsAlerted() async throws {
        let db = try await TestDatabase.create("alertstale", sql: "CREATE TABLE t (id int);")
        defer { Task { await db.drop() } }
        let f = try Fixture()
        defer { f.fx.remove() }
        try f.fx.writeJob("db", "kind = \"backup\"\nalerts = [\"hook\"]\nstale_after = \"30m\"\n[backup]\ndatabase = \"\(db.url)\"\n")
        let made = try await CLI.run(["run", "-c", f.fx.config, "db", "--local"])
        #expect(made.status == 0, "\(made.stderr)")
        // That backup ran an hour ago, as far as the history knows.
        let queue = try DatabaseQueue(path: f.fx.stateDir + "/cairn.sqlite")
        let hourAgo = Date().addingTimeInterval(-3600)
        try await queue.write { db in
            try db.execute(sql: "UPDATE runs SET started_at = ?, finished_at = ? WHERE job = 'db'", arguments: [hourAgo, hourAgo])
            try db.execute(sql: "DELETE FROM alert_state")
        }
        let daemon = try DaemonProcess(config: f.fx.config, logPath: f.fx.dir + "/serve.log")
        #expect(try await eventually(30) { try await f.received().contains { $0.event == "stale" && $0.job == "db" } }, "\(daemon.log)")
        let stale = try #require(try await f.received().first { $0.event == "stale" })
        #expect(stale.message.contains("(stale_after 30m)"), "\(stale.message)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 30) == 0)
    }

    /// A probe of an endpoint that fails twice (fail_after = 2): one alert
    /// after the second failure, a recovery notice after the next success;
    /// each run's latency in the history. Run by `cairn run` (no daemon): the
    /// bounded first attempt delivers.
    @Test func aProbeAlertsAfterFailAfterAndRecovers() async throws {
        let f = try Fixture()
        defer { f.fx.remove() }
        let target = "/ping/probe-\(f.scope)"
        try f.fx.writeJob("web", """
        kind = "probe"
        alerts = ["hook"]
        [probe]
        url = "\(f.rx.base)\(target)"
        body_contains = "OK"
        fail_after = 2
        """)
        let up = try await CLI.run(["run", "-c", f.fx.config, "web"])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("answered 200 in "), "\(up.stdout)")
        try await f.rx.fail(target, status: 503, count: 2)
        let down1 = try await CLI.run(["run", "-c", f.fx.config, "web"])
        #expect(down1.status == ErrorCode.network.exitStatus && down1.stderr.contains("answered HTTP 503, expected 200"), "\(down1.stderr)")
        #expect(try await f.received().isEmpty)                 // one failure: below fail_after
        let down2 = try await CLI.run(["run", "-c", f.fx.config, "web"])
        #expect(down2.status == ErrorCode.network.exitStatus)
        #expect(try await f.received().map(\.event) == ["probe_failed"])
        let back = try await CLI.run(["run", "-c", f.fx.config, "web"])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try await f.received().map(\.event) == ["probe_failed", "probe_recovered"])
        let runs = try f.fx.history("web")
        #expect(runs.count == 4)
        #expect(runs.filter { $0.result == .ok }.allSatisfy { ($0.latency ?? -1) >= 0 })
        let history = try await CLI.run(["history", "-c", f.fx.config, "web"])
        #expect(history.stdout.split(separator: "\n").filter { $0.contains(" ok ") && $0.contains("latency ") && $0.hasSuffix(" ms") }.count == 2,
                "\(history.stdout)")
    }
}
