import Core
import Foundation
import State
import Testing

/// Every way of running a job goes through one executor (lock, claim,
/// history, timeout, observers): `cairn run` in-process and the daemon
/// record the same rows; a local run honours the unit's timeout; a killed
/// run does not stay "running".
@Suite(.serialized) struct RunPathTests {
    /// A backup whose part 2 the proxy delays for five minutes: the unit's
    /// 10 s timeout ends a `cairn run` without a daemon, recorded as timed
    /// out, its multipart upload aborted.
    @Test func aLocalRunEndsAtTheUnitsTimeout() async throws {
        let db = try await TestDatabase.create("localtimeout", sql: randomBytesSQL(mib: 7))
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        timeout = "10s"
        [backup]
        database = "\(db.url)"
        part_size = "5MiB"
        upload_concurrency = 1
        """)
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: fx.prefix, query_contains: "partNumber=2", action: "delay", seconds: 300))
        let run = try await CLI.run(["run", "-c", fx.config, "db", "--local"])
        #expect(run.status == ErrorCode.timeout.exitStatus, "\(run.stderr)")
        #expect(run.stderr.contains("timed out after 10s"), "\(run.stderr)")
        let runs = try fx.history("db")
        #expect(runs.count == 1)
        #expect(runs.first?.result == .failed)
        #expect(runs.first?.error?.contains("timed out after 10s") == true, "\(runs)")
        // Stopped at its timeout, not when the delayed part came back (a hang guard, not a speed requirement).
        #expect((runs.first?.duration ?? 999) < 200)
        #expect(try await eventually(10) { try await fx.store().listMultipartUploads(prefix: fx.prefix).isEmpty })
        #expect(try await fx.objects().filter { $0.hasSuffix(".manifest.json") }.isEmpty)
    }

    /// `cairn run` killed with SIGKILL mid-run: the next `cairn history`
    /// (no daemon anywhere) shows the run as interrupted, not running.
    @Test func aKilledLocalRunShowsAsInterruptedInTheNextHistory() async throws {
        let db = try await TestDatabase.create("killedrun", sql: randomBytesSQL(mib: 7))
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        [backup]
        database = "\(db.url)"
        part_size = "5MiB"
        upload_concurrency = 1
        """)
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: fx.prefix, query_contains: "partNumber=2", action: "delay", seconds: 300))
        let run = try DaemonProcess(config: fx.config, logPath: fx.dir + "/run.log", command: ["run", "-c", fx.config, "db", "--local"])
        // Mid-run: its row says running and the delayed part has reached the proxy.
        #expect(try await eventually(60) {
            try await proxy.log(pathContaining: fx.prefix).contains { ($0.query ?? "").contains("partNumber=2") }
        }, "\(run.log)")
        #expect(try fx.history("db").first?.result == .running)
        run.signal(SIGKILL)
        #expect(await run.waitExit(timeout: 20) != nil)

        let history = try await CLI.run(["history", "-c", fx.config, "db", "--json"])
        #expect(history.status == 0, "\(history.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(rows.first?["result"] as? String == "failed", "\(history.stdout)")
        #expect((rows.first?["error"] as? String)?.hasPrefix("interrupted") == true, "\(history.stdout)")
    }

    /// The same verify unit run by `cairn run` (in-process) and by `cairn
    /// serve` (`cairn run --wait` through the socket): the same history rows
    /// (each verifies the newest backup not yet verified).
    @Test func cliAndDaemonRunsOfAVerifyUnitRecordTheSameRows() async throws {
        let db = try await TestDatabase.create("samerows", sql: marketplaceSQL)
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        [backup]
        database = "\(db.url)"
        """)
        try fx.writeJob("check", """
        kind = "verify"
        [verify]
        backup_job = "db"
        scratch_database_url = "\(try TestDatabase.admin())"
        """)
        for _ in 0..<2 {
            let backup = try await CLI.run(["run", "-c", fx.config, "db", "--local"])
            #expect(backup.status == 0, "\(backup.stderr)")
        }
        let local = try await CLI.run(["run", "-c", fx.config, "check", "--local"])
        #expect(local.status == 0, "\(local.stderr)")
        let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log")
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) }, "\(daemon.log)")
        let served = try await CLI.run(["run", "-c", fx.config, "check", "--wait"])
        #expect(served.status == 0, "\(served.stderr) \(daemon.log)")
        #expect(served.stdout.contains("cairn serve started run"))
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 30) == 0)

        let runs = try fx.history("check").sorted { $0.id < $1.id }
        try #require(runs.count == 2)
        for r in runs {
            #expect(r.trigger == "manual" && r.result == .ok && r.attempt == 1 && r.error == nil && r.scheduledAt == nil)
            #expect(r.backupID != nil && r.finishedAt != nil)
        }
        // Each verified one of the two backups: the newest first, then the other.
        let backups = Set(try fx.history("db").compactMap(\.backupID))
        #expect(Set(runs.compactMap(\.backupID)) == backups)
        // Both logged by the executor's observer, one line each for start and end.
        #expect(daemon.log.contains("msg=\"run started\"") && daemon.log.contains("msg=\"run finished\"") && daemon.log.contains("job=check"))
    }

    /// `config check` lists what each kind needs (from `JobKind.needs`);
    /// `--preflight` checks it as `cairn serve` would, naming the job.
    @Test func configCheckListsWhatEachKindNeedsAndPreflightsIt() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", "kind = \"backup\"\n[backup]\ndatabase = \"postgres://127.0.0.1/x\"\n")
        try fx.writeJob("prune", "kind = \"retention\"\n[retention]\nbackup_job = \"db\"\n")
        try fx.writeJob("media", "kind = \"migrate\"\n[migrate]\nsource = \"/srv\"\nprefix = \"media\"\n")
        let check = try await CLI.run(["config", "check", "-c", fx.config, "--preflight"])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        let lines = check.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("db ") && $0.contains("backup") && $0.contains("needs storage, the active key, PostgreSQL: ok") }, "\(check.stdout)")
        #expect(lines.contains { $0.contains("prune") && $0.contains("needs storage, keys (read), a backup job: ok") }, "\(check.stdout)")
        #expect(lines.contains { $0.contains("media") && $0.hasSuffix("needs storage: ok") }, "\(check.stdout)")
        // The key file is gone: the jobs that need keys fail their preflight, the migration does not.
        try FileManager.default.removeItem(atPath: fx.dir + "/k.key")
        let broken = try await CLI.run(["config", "check", "-c", fx.config, "--preflight"])
        #expect(broken.status != 0)
        #expect(broken.stderr.hasPrefix("cairn: preflight: job db: cannot open key file \(fx.dir)/k.key"), "\(broken.stderr)")
        #expect(broken.stdout.split(separator: "\n").contains { $0.contains("media") && $0.hasSuffix(": ok") })
        #expect(!broken.stdout.split(separator: "\n").contains { $0.contains("prune") && $0.hasSuffix(": ok") })
    }
}
