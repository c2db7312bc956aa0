import Foundation
import Testing
import Core
import Crypto
import State

/// Runs the built `cairn` executable (swift build --build-tests builds it next to the tests).
struct CLI {
    static var binary: String {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            for p in [".build/debug/cairn", ".build/x86_64-unknown-linux-gnu/debug/cairn"] {
                let path = root.appendingPathComponent(p).path
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
            throw CairnError(.internal, "cairn executable not found under .build/debug (run swift build --build-tests)")
        }
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs `cairn ARGS` (or another `executable`, such as a wrapper that runs
    /// cairn) and waits for it without blocking a thread: the cooperative pool
    /// has two threads, and a test blocked in waitUntilExit() starves the others.
    static func run(_ args: [String], env extra: [String: String] = [:], executable: String? = nil) async throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try executable ?? binary)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env.merge(extra) { $1 }
        p.environment = env
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try await waitForExit(p)
        return Result(status: p.terminationStatus,
                      stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}

/// Starts `p` and waits for it to exit, suspended (no thread blocked).
func waitForExit(_ p: Process) async throws {
    let box = ExitSignal()
    p.terminationHandler = { _ in box.fire() }
    try p.run()
    await box.wait()
}

/// A one-shot signal from a callback thread to an async waiter.
final class ExitSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    private var waiter: CheckedContinuation<Void, Never>?
    func fire() {
        lock.lock()
        fired = true
        let w = waiter
        waiter = nil
        lock.unlock()
        w?.resume()
    }
    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            lock.lock()
            if fired { lock.unlock(); c.resume(); return }
            waiter = c
            lock.unlock()
        }
    }
}

@Suite struct CLITests {
    @Test func cronPrintsInstantsWithOffsetsAcrossSpringForward() async throws {
        let r = try await CLI.run(["cron", "30 2 * * *", "--tz", "America/New_York", "--from", "2025-03-08T12:00:00-05:00", "--count", "3"])
        #expect(r.status == 0)
        #expect(r.stdout == "2025-03-09T03:00:00-04:00\n2025-03-10T02:30:00-04:00\n2025-03-11T02:30:00-04:00\n")
    }

    @Test func cronRejectsABadFieldWithOneLine() async throws {
        let r = try await CLI.run(["cron", "0 25 * * *"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("hour"))
        #expect(r.stderr.contains("25"))
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test func configCheckReportsEveryProblemWithFileAndLine() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-cfg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        state_dir = "\(dir)/state"
        [storage.local]
        url = "file://\(dir)/backups"
        [keys]
        active = "k"
        [keys.files]
        k = "\(dir)/k.key"
        """.write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)
        try """
        kind = "backup"
        schedule = "0 3 * * FUNDAY"
        timeout = "soon"
        [backup]
        database = "postgres://127.0.0.1/db"
        """.write(toFile: dir + "/jobs/db.toml", atomically: true, encoding: .utf8)
        let r = try await CLI.run(["config", "check", "-c", dir + "/cairn.toml"])
        #expect(r.status == 3)
        #expect(r.stdout.contains("db.toml:2"))
        #expect(r.stdout.contains("FUNDAY"))
        #expect(r.stdout.contains("db.toml:3"))
        #expect(r.stdout.contains("timeout"))
    }

    @Test func backupListRestoreThroughTheCLI() async throws {
        let db = try await TestDatabase.create("cli", sql: marketplaceSQL)
        defer { Task { await db.drop() } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-clirun-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/backups", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gen = try await CLI.run(["key", "generate", "--out", dir + "/k.key"])
        #expect(gen.status == 0)
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/k.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        try """
        state_dir = "\(dir)/state"
        [storage.local]
        url = "file://\(dir)/backups"
        [keys]
        active = "k"
        [keys.files]
        k = "\(dir)/k.key"
        """.write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)
        try """
        kind = "backup"
        [backup]
        database = "\(db.url)"
        """.write(toFile: dir + "/jobs/db.toml", atomically: true, encoding: .utf8)
        let cfg = dir + "/cairn.toml"
        let run = try await CLI.run(["run", "-c", cfg, "db"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("backup "))
        let list = try await CLI.run(["backups", "list", "-c", cfg, "--json"])
        #expect(list.status == 0)
        let arr = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(arr.count == 1)
        #expect(arr.first?["authentication"] as? String == "authenticated")   // checked with the config's key
        let file = dir + "/out.dump"
        let restore = try await CLI.run(["restore", "-c", cfg, "latest", "--to-file", file])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(FileManager.default.fileExists(atPath: file))

        // A failing run: one line on stderr, non-zero status, no new manifest.
        try """
        kind = "backup"
        [backup]
        database = "\(try TestDatabase.url(for: "cairn_cli_missing"))"
        """.write(toFile: dir + "/jobs/bad.toml", atomically: true, encoding: .utf8)
        let bad = try await CLI.run(["run", "-c", cfg, "bad"], env: ["CAIRN_LOG_LEVEL": "critical"])
        #expect(bad.status != 0)
        #expect(bad.stderr.hasPrefix("cairn: error: "))
        #expect(bad.stderr.split(separator: "\n").count == 1)
        #expect(bad.stderr.contains("cairn_cli_missing"))
        let after = try await CLI.run(["backups", "list", "-c", cfg, "--json"])
        let arr2 = try #require(try JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as? [[String: Any]])
        #expect(arr2.count == 1)

        // Both runs are in the history, the failure with its error.
        let ok = try await CLI.run(["history", "-c", cfg, "db", "--json"])
        let okRuns = try #require(try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [[String: Any]])
        #expect(okRuns.count == 1)
        #expect(okRuns.first?["result"] as? String == "ok")
        #expect(okRuns.first?["backupID"] as? String == (arr.first?["id"] as? String))
        let failed = try await CLI.run(["history", "-c", cfg, "bad", "--json"])
        let failedRuns = try #require(try JSONSerialization.jsonObject(with: Data(failed.stdout.utf8)) as? [[String: Any]])
        #expect(failedRuns.first?["result"] as? String == "failed")
        #expect((failedRuns.first?["error"] as? String)?.contains("cairn_cli_missing") == true)

        // A run while another holds the job's lock is refused, not run twice.
        let held = try JobLock(stateDir: dir + "/state", job: "db")
        let refused = try await CLI.run(["run", "-c", cfg, "db"])
        #expect(refused.status == 13)
        #expect(refused.stderr.contains("already running"))
        withExtendedLifetime(held) {}
    }
}
