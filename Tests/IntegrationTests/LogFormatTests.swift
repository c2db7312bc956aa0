import Core
import Foundation
import Testing

/// Log lines: logfmt by default, JSON on request; under systemd (stderr is
/// the journal) a priority prefix and no timestamp, so `journalctl -p err`
/// finds failed runs.
@Suite struct LogFormatTests {
    func failingJob(_ fx: DaemonFixture) throws {
        // Nothing listens on port 1: the backup fails at once.
        try fx.writeJob("db", "kind = \"backup\"\n[backup]\ndatabase = \"postgres://127.0.0.1:1/nothing\"\n")
    }

    @Test func underTheJournalFailedRunsCarryTheErrorPriorityAndNoTimestamp() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try failingJob(fx)
        let logPath = fx.dir + "/serve.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        var st = stat()
        try #require(stat(logPath, &st) == 0)
        let daemon = try DaemonProcess(config: fx.config, env: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"], logPath: logPath)
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) }, "\(daemon.log)")
        let run = try await CLI.run(["run", "-c", fx.config, "db", "--wait"])
        #expect(run.status == ErrorCode.database.exitStatus, "\(run.stderr)")
        #expect(await eventually(10) { daemon.log.contains("msg=\"run failed\"") }, "\(daemon.log)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 30) == 0)
        let lines = daemon.log.split(separator: "\n").map(String.init)
        let failed = try #require(lines.first { $0.contains("msg=\"run failed\"") })
        #expect(failed.hasPrefix("<3>level=error logger=cairn.scheduler msg=\"run failed\""), "\(failed)")
        #expect(failed.contains(" job=db ") && failed.contains(" run="))
        #expect(lines.allSatisfy { $0.range(of: #"^<[0-7]>level="#, options: .regularExpression) != nil }, "\(daemon.log)")
        #expect(!daemon.log.contains("time="))
        #expect(lines.contains { $0.hasPrefix("<5>level=notice logger=cairn.scheduler msg=\"run started\"") })
    }

    @Test func jsonLinesParseAndLogfmtIsTheDefault() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try failingJob(fx)
        let json = try await CLI.run(["run", "-c", fx.config, "db", "--local", "--log-format", "json", "--log-level", "info"],
                                     env: ["JOURNAL_STREAM": ""])
        #expect(json.status == ErrorCode.database.exitStatus)
        let records = json.stderr.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
        #expect(!records.isEmpty && records.allSatisfy { $0 != nil }, "\(json.stderr)")
        let started = try #require(records.compactMap { $0 }.first { $0["msg"] == "run started" })
        #expect(started["level"] == "info" && started["logger"] == "cairn.run" && started["job"] == "db" && started["time"] != nil)
        // The command's own error stays one plain line.
        #expect(json.stderr.split(separator: "\n").last?.hasPrefix("cairn: error: ") == true, "\(json.stderr)")

        let logfmt = try await CLI.run(["run", "-c", fx.config, "db", "--local", "--log-level", "info"])
        let line = try #require(logfmt.stderr.split(separator: "\n").first { $0.contains("msg=\"run started\"") })
        #expect(line.range(of: #"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info logger=cairn.run msg="run started" "#,
                           options: .regularExpression) != nil, "\(line)")
        let bad = try await CLI.run(["run", "-c", fx.config, "db", "--log-format", "xml"])
        #expect(bad.status == ErrorCode.usage.exitStatus && bad.stderr.contains("--log-format must be logfmt or json"))
    }
}
