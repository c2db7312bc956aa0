import Core
import Foundation
import Testing

/// `metrics_file` (node_exporter's textfile collector) and `cairn status`
/// carry the same per-job figures; status exits 1 when a job's last run
/// failed; history shows the attempt and the backup id.
@Suite struct MetricsAndStatusTests {
    /// Parses a Prometheus text file with the prometheus_client package's own
    /// parser: "name{job=…} value" per sample, or the parser's error.
    func parsePrometheus(_ path: String) async throws -> (status: Int32, samples: [String: Double], stderr: String) {
        let script = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
            for s in fam.samples:
                print(f"{s.name}|{s.labels.get('job')}|{s.value}")
        """
        // python3 from PATH: the interpreter scripts/setup installed the package for.
        let r = try await CLI.run(["-c", "exec python3 \"$@\"", "sh", "-c", script, path], executable: "/bin/sh")
        var samples: [String: Double] = [:]
        for line in r.stdout.split(separator: "\n") {
            let p = line.split(separator: "|").map(String.init)
            if p.count == 3, let v = Double(p[2]) { samples["\(p[0]){\(p[1])}"] = v }
        }
        return (r.status, samples, r.stderr)
    }

    @Test func metricsFileStatusAndHistoryCarryTheFigures() async throws {
        let db = try await TestDatabase.create("metrics", sql: marketplaceSQL)
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { fx.remove() }
        let metrics = fx.dir + "/textfile/cairn.prom"
        try FileManager.default.createDirectory(atPath: fx.dir + "/textfile", withIntermediateDirectories: true)
        let config = try String(contentsOfFile: fx.config, encoding: .utf8)
        try ("metrics_file = \"\(metrics)\"\n" + config).write(toFile: fx.config, atomically: true, encoding: .utf8)
        try fx.writeJob("db", "kind = \"backup\"\n[backup]\ndatabase = \"\(db.url)\"\n")
        try fx.writeJob("bad", "kind = \"backup\"\n[backup]\ndatabase = \"postgres://127.0.0.1:1/nothing\"\n")
        try fx.writeJob("check", "kind = \"verify\"\n[verify]\nbackup_job = \"db\"\nscratch_database_url = \"\(try TestDatabase.admin())\"\n")

        let ok = try await CLI.run(["run", "-c", fx.config, "db", "--local"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let after1 = try await parsePrometheus(metrics)
        #expect(after1.status == 0, "\(after1.stderr)")
        #expect(after1.samples["cairn_job_last_run_success{db}"] == 1)
        #expect(after1.samples["cairn_job_last_run_success{bad}"] == nil)        // never ran: no sample
        let verified = try await CLI.run(["run", "-c", fx.config, "check", "--local"])
        #expect(verified.status == 0, "\(verified.stderr)")
        let failed = try await CLI.run(["run", "-c", fx.config, "bad", "--local"])
        #expect(failed.status == ErrorCode.database.exitStatus)

        let m = try await parsePrometheus(metrics)
        #expect(m.status == 0, "\(m.stderr)")
        #expect(m.samples["cairn_job_last_run_success{db}"] == 1)
        #expect(m.samples["cairn_job_last_run_success{bad}"] == 0)
        #expect((m.samples["cairn_job_last_run_bytes{db}"] ?? 0) > 0)
        #expect((m.samples["cairn_job_last_run_duration_seconds{db}"] ?? -1) >= 0)
        let lastSuccess = try #require(m.samples["cairn_job_last_success_timestamp_seconds{db}"])
        #expect(abs(lastSuccess - Date().timeIntervalSince1970) < 3600)
        #expect(m.samples["cairn_job_last_success_timestamp_seconds{bad}"] == nil)
        #expect((m.samples["cairn_backup_newest_age_seconds{db}"] ?? -1) >= 0)
        // The verification: its restore time (RTO) and the verified backup's age (RPO proof), for both jobs.
        #expect((m.samples["cairn_verify_last_restore_seconds{check}"] ?? -1) > 0)
        let provedAge = try #require(m.samples["cairn_backup_newest_verified_age_seconds{db}"])
        #expect(provedAge >= 0 && provedAge < 3600)
        #expect(m.samples["cairn_backup_newest_verified_age_seconds{check}"] == provedAge || abs((m.samples["cairn_backup_newest_verified_age_seconds{check}"] ?? -1) - provedAge) < 5)
        // Written atomically: no temporary file is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: fx.dir + "/textfile") == ["cairn.prom"])

        let status = try await CLI.run(["status", "-c", fx.config, "--json"])
        #expect(status.status == 1, "a failed last run makes status exit 1: \(status.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
        let dbRow = try #require(rows.first { $0["job"] as? String == "db" })
        let figures = try #require(dbRow["figures"] as? [String: Any])
        #expect(figures["lastResult"] as? String == "ok")
        #expect((figures["newestBackupAgeSeconds"] as? Double ?? -1) >= 0)
        #expect(figures["lastSuccessAt"] != nil)
        let text = try await CLI.run(["status", "-c", fx.config])
        #expect(text.status == 1)
        #expect(text.stdout.contains("LAST SUCCESS (UTC)") && text.stdout.contains("BACKUP AGE"))

        let history = try await CLI.run(["history", "-c", fx.config, "db"])
        let backupID = try #require(try fx.history("db").first?.backupID)
        #expect(history.stdout.contains("TRY") && history.stdout.contains(backupID), "\(history.stdout)")

        // Once the failing job succeeds (here: removed), status is 0 again.
        try FileManager.default.removeItem(atPath: fx.dir + "/jobs/bad.toml")
        #expect(try await CLI.run(["status", "-c", fx.config]).status == 0)
    }
}
