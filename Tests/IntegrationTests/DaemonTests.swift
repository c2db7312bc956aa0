import Core
import Crypto
import Foundation
import Jobs
import ObjectStore
import Postgres
import State
import Testing

/// A config directory for `cairn serve`: S3 storage through the strict proxy
/// under a fresh prefix, a key, a secret file, and job units.
struct DaemonFixture {
    let dir: String
    let prefix: String
    var config: String { dir + "/cairn.toml" }
    var stateDir: String { dir + "/state" }
    var socket: String { dir + "/cairn.sock" }

    init(daemon: String = "", cluster: String = "", prefix: String = TestEnv.uniquePrefix("serve")) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-serve-\(UUID().uuidString.prefix(8))").path
        self.prefix = prefix
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        try Data((try SecureRandom.bytes(32).hexString + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/k.key"))
        chmod(dir + "/k.key", 0o600)
        try Data(try TestEnv.secretKey.utf8).write(to: URL(fileURLWithPath: dir + "/s3secret"))
        chmod(dir + "/s3secret", 0o600)
        try """
        state_dir = "\(dir)/state"
        timezone = "UTC"
        [storage.s3]
        url = "s3://\(try TestEnv.bucket)/\(prefix)"
        endpoint = "\(try TestEnv.proxyEndpoint)"
        region = "us-east-1"
        path_style = true
        access_key_id = "\(try TestEnv.accessKey)"
        secret_access_key_file = "\(dir)/s3secret"
        [keys]
        active = "k"
        [keys.files]
        k = "\(dir)/k.key"
        [daemon]
        socket = "\(dir)/cairn.sock"
        \(daemon)
        \(cluster.isEmpty ? "" : "[cluster]\n" + cluster)
        """.write(toFile: config, atomically: true, encoding: .utf8)
    }

    func writeJob(_ name: String, _ text: String) throws {
        try text.write(toFile: dir + "/jobs/\(name).toml", atomically: true, encoding: .utf8)
    }

    func history(_ job: String) throws -> [RunRecord] {
        try StateStore(stateDir: stateDir).history(job: job, limit: 1000)
    }

    func store() throws -> S3Store { try TestEnv.s3(prefix: "") }

    /// Keys under this fixture's prefix.
    func objects() async throws -> [String] {
        try await store().list(prefix: prefix).map(\.key)
    }

    /// Removes the directory, unless CAIRN_TEST_KEEP is set (to read the daemons' logs afterwards).
    func remove() {
        if ProcessInfo.processInfo.environment["CAIRN_TEST_KEEP"] != nil { return }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// `cairn serve` as a child process.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String

    /// `wrapper`: a command that runs `cairn serve …` (its arguments follow).
    /// `command`: other cairn arguments than `serve -c CONFIG` (such as a `run`).
    init(config: String, env extra: [String: String] = [:], logPath: String, wrapper: [String] = [], command: [String]? = nil) throws {
        self.logPath = logPath
        let serve = command ?? ["serve", "-c", config, "--log-level", "info"]
        if let first = wrapper.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(wrapper.dropFirst()) + [try CLI.binary] + serve
        } else {
            process.executableURL = URL(fileURLWithPath: try CLI.binary)
            process.arguments = serve
        }
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        env.merge(extra) { $1 }
        process.environment = env
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the exit; nil if it has not come within `timeout` seconds
    /// × `TestPatience.factor` (a hang guard, not a speed requirement).
    func waitExit(timeout: Double) async -> Int32? {
        guard await eventually(timeout, { !self.process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A test NOTIFY_SOCKET: a datagram socket that collects sd_notify messages.
final class NotifyListener: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var _messages: [String] = []

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8)).sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let b = Array(path.utf8)
            raw.copyBytes(from: b)
            raw[b.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw CairnError(.io, "bind \(path): \(errnoString())") }
        let sock = self.fd
        Thread { [weak self] in
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(sock, &buf, buf.count, 0)
                if n <= 0 { return }
                guard let self else { return }
                self.lock.lock()
                self._messages.append(String(decoding: buf[0..<n], as: UTF8.self))
                self.lock.unlock()
            }
        }.start()
    }

    var messages: [String] { lock.lock(); defer { lock.unlock() }; return _messages }

    func waitFor(_ timeout: Double, _ predicate: (String) -> Bool) async -> Bool {
        await eventually(timeout) { self.messages.contains(where: predicate) }
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd); unlink(path) }
}


/// A database whose dump does not compress: `rows` × 64 KiB of random bytes.
func randomBytesSQL(mib: Int) -> String {
    """
    CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL);
    INSERT INTO blobs SELECT g, decode(string_agg(md5(random()::text || g::text || s::text), ''), 'hex')
      FROM generate_series(1, \(mib * 16)) g, generate_series(1, 4096) s GROUP BY g;
    """
}

/// A backup job in multipart (5 MiB parts, one at a time) whose part 2 the
/// proxy holds for `hangSeconds` once, and `cairn serve` running it.
func startWithHungUpload(_ fx: DaemonFixture, db: TestDatabase, jobKeys: String, hangSeconds: Double) async throws -> (ProxyControl, DaemonProcess) {
    try fx.writeJob("db", """
    kind = "backup"
    \(jobKeys)
    [backup]
    database = "\(db.url)"
    part_size = "5MiB"
    upload_concurrency = 1
    """)
    let proxy = try ProxyControl()
    try await proxy.inject(.init(method: "PUT", path_contains: fx.prefix, query_contains: "partNumber=2", action: "delay", seconds: hangSeconds))
    let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log")
    #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) })
    return (proxy, daemon)
}

@Suite(.serialized) struct DaemonTests {
    @Test func serveRunsOnScheduleAnswersTheSocketReloadsAndStops() async throws {
        let db = try await TestDatabase.create("serve", sql: marketplaceSQL)
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture(daemon: "stop_grace_period = \"30s\"")
        defer { fx.remove() }
        let job = """
        kind = "backup"
        schedule = "*/2 * * * * *"
        overlap = "queue"
        [backup]
        database = "\(db.url)"
        """
        try fx.writeJob("db", job)
        let notify = try NotifyListener()
        let daemon = try DaemonProcess(config: fx.config, env: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"],
                                       logPath: fx.dir + "/serve.log")

        #expect(await notify.waitFor(20) { $0.contains("READY=1") && $0.contains("STATUS=") }, "no READY=1: \(daemon.log)")
        #expect(notify.messages.contains { $0.contains("STATUS=next: db at ") })
        // WATCHDOG_USEC=1 s: pings every half second.
        #expect(await notify.waitFor(5) { $0 == "WATCHDOG=1" })

        // Scheduled runs happen on their own, at the cron instants.
        #expect(try await eventually(30) { try fx.history("db").filter { $0.trigger == "schedule" && $0.result == .ok }.count >= 2 },
                "no scheduled runs: \(daemon.log)")
        for r in try fx.history("db") where r.trigger == "schedule" {
            let at = try #require(r.scheduledAt)
            #expect(Int(at.timeIntervalSince1970) % 2 == 0 && at.timeIntervalSince1970 == at.timeIntervalSince1970.rounded())
            #expect(r.startedAt >= at)
        }

        // cairn run --wait goes through the socket and exits with the run's result.
        let manual = try await CLI.run(["run", "-c", fx.config, "db", "--wait"])
        #expect(manual.status == 0, "\(manual.stderr)")
        #expect(manual.stdout.contains("cairn serve started run") || manual.stdout.contains("queued run"))
        #expect(manual.stdout.contains("backup ") && manual.stdout.contains("dumped"))
        // (overlap = queue: served by a new run, or by the run already queued after the current one.)
        #expect(try fx.history("db").filter { $0.result == .ok }.count >= 3)

        // cairn status asks the daemon.
        let status = try await CLI.run(["status", "-c", fx.config, "--json"])
        #expect(status.status == 0)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]])
        #expect(parsed.first?["state"] as? String != nil)

        // SIGHUP with a broken config: reported, the old one kept, scheduling goes on.
        try fx.writeJob("db", job + "\nnot_a_key = 1\n")
        let before = try fx.history("db").count
        daemon.signal(SIGHUP)
        #expect(await notify.waitFor(10) { $0.contains("RELOADING=1") && $0.contains("MONOTONIC_USEC=") })
        #expect(await notify.waitFor(10) { $0.contains("reload failed") })
        #expect(await eventually(10) { daemon.log.contains("reload failed; keeping the previous configuration") })
        #expect(daemon.log.contains("not_a_key"))
        #expect(try await eventually(15) { try fx.history("db").count >= before + 2 }, "scheduling stopped after a failed reload")
        // A good reload takes effect: the job is now on demand only.
        try fx.writeJob("db", job.replacingOccurrences(of: "schedule = \"*/2 * * * * *\"\n", with: ""))
        daemon.signal(SIGHUP)
        #expect(await eventually(10) { daemon.log.contains("configuration reloaded") })

        daemon.signal(SIGTERM)
        let status0 = await daemon.waitExit(timeout: 40)
        #expect(status0 == 0, "\(daemon.log)")
        #expect(notify.messages.contains { $0.contains("STOPPING=1") })
        #expect(!FileManager.default.fileExists(atPath: fx.socket))
        // Every run ended recorded, none left "running".
        #expect(try fx.history("db").allSatisfy { $0.result != .running })
        // Every request the daemon's runs made passed the strict proxy's rules.
        #expect(try await ProxyControl().violations(containing: fx.prefix).isEmpty)
        // No socket: cairn run falls back to running in-process.
        let local = try await CLI.run(["run", "-c", fx.config, "db"])
        #expect(local.status == 0, "\(local.stderr)")
        #expect(!local.stdout.contains("cairn serve"))
    }

    /// SIGTERM while a scheduled backup is mid-upload: the daemon waits out the
    /// grace period, cancels the run, which aborts its multipart upload and
    /// writes no manifest, and exits 0. Meanwhile `cairn run` of the same job is
    /// refused (overlap = skip), through the daemon and in-process, and the
    /// instants that came while it ran are recorded as skipped.
    @Test func sigtermDuringABackupAbortsTheUploadAndExitsZero() async throws {
        let db = try await TestDatabase.create("sigterm", sql: randomBytesSQL(mib: 12))
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture(daemon: "stop_grace_period = \"2s\"")
        defer { fx.remove() }
        let (proxy, daemon) = try await startWithHungUpload(fx, db: db, jobKeys: "schedule = \"*/2 * * * * *\"", hangSeconds: 60)

        #expect(try await eventually(30) { try await proxy.log(pathContaining: fx.prefix).contains { $0.part_number == 2 } },
                "the backup never reached part 2: \(daemon.log)")

        // Overlap: refused by the daemon, and in-process (the daemon holds the job lock).
        let again = try await CLI.run(["run", "-c", fx.config, "db"])
        #expect(again.status == 13, "\(again.stdout) \(again.stderr)")
        #expect(again.stderr.contains("already running"))
        let local = try await CLI.run(["run", "-c", fx.config, "db", "--local"])
        #expect(local.status == 13)

        // The next instant comes while the run hangs: recorded as skipped.
        #expect(try await eventually(10) { try fx.history("db").contains { $0.result == .skipped } })

        // The upload hangs for 60 s: only the grace period (2 s) ends the run before then.
        daemon.signal(SIGTERM)
        let status = await daemon.waitExit(timeout: 30)
        #expect(status == 0, "\(daemon.log)")
        #expect(daemon.log.contains("stop grace period over"))

        let all = try fx.history("db")
        let runs = all.filter { $0.result != .skipped }
        #expect(runs.count == 1)
        #expect(runs.first?.result == .cancelled && runs.first?.trigger == "schedule")
        // Instants that came while it ran: skipped, with the reason.
        #expect(all.contains { $0.result == .skipped && ($0.error ?? "").contains("still running") })
        // No manifest, and the multipart upload was aborted (possibly just after exit: the abort is detached).
        #expect(try await fx.objects().allSatisfy { !$0.hasSuffix(".manifest.json") })
        #expect(try await eventually(10) {
            try await fx.store().listMultipartUploads(prefix: fx.prefix).isEmpty
        }, "multipart upload left behind")
        #expect(try await proxy.log(pathContaining: fx.prefix).contains { $0.method == "DELETE" && ($0.query ?? "").contains("uploadId") })
    }

    /// A job's timeout cancels it like a stop would (upload aborted), records
    /// it as failed with "timed out", and retries it.
    @Test func timeoutCancelsARunAndRetries() async throws {
        let db = try await TestDatabase.create("timeout", sql: randomBytesSQL(mib: 7))
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { fx.remove() }
        // The timeout is long enough for an unhindered backup of this database
        // on a loaded machine (a few seconds alone; 4 s plus 8 s of S3 listings
        // seen with the suite and two busy loops beside it), and far shorter
        // than the hung upload.
        let (_, daemon) = try await startWithHungUpload(fx, db: db, jobKeys: "timeout = \"30s\"\nretries = 1\nretry_backoff = \"1s\"", hangSeconds: 300)
        let run = try await CLI.run(["run", "-c", fx.config, "db", "--wait"])
        // The first attempt times out; the retry (no delay this time) succeeds.
        #expect(run.status == 0, "\(run.stderr) \(daemon.log)")
        #expect(run.stderr.contains("attempt 2"))
        let runs = try fx.history("db").sorted { $0.id < $1.id }
        #expect(runs.map(\.result) == [.failed, .ok], "\(daemon.log)")
        #expect(runs.first?.error?.contains("timed out after 30s") == true)
        #expect(runs.map(\.attempt) == [1, 2])
        let manifests = try await fx.objects().filter { $0.hasSuffix(".manifest.json") }
        #expect(manifests.count == 1)
        #expect(try await eventually(10) { try await fx.store().listMultipartUploads(prefix: fx.prefix).isEmpty })
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 20) == 0)
    }

    /// `cairn serve` runs its tasks on its own pool (CooperativePool), so
    /// that libdispatch never starts a non-overcommit worker ("…-qos"
    /// threads): the first one arms libdispatch's 1 Hz workqueue monitor,
    /// which would wake the idle daemon every second for ever (issue 15).
    /// A backup through the socket (progress ticker, S3 retries' sleeps,
    /// blocking pool, signal sources) must leave no such thread behind.
    @Test func theDaemonRunsItsTasksOnItsOwnPool() async throws {
        let db = try await TestDatabase.create("pool", sql: marketplaceSQL)
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        [backup]
        database = "\(db.url)"
        """)
        // A migration twice: its checkpoint database is kept open between runs
        // (closing it would have libdispatch dispose GRDB's queue on a worker).
        let src = fx.dir + "/uploads"
        try FileManager.default.createDirectory(atPath: src + "/a", withIntermediateDirectories: true)
        for i in 0..<5 { try testData(500 * (i + 1), seed: UInt64(i)).write(to: URL(fileURLWithPath: src + "/a/f\(i).bin")) }
        try fx.writeJob("media", """
        kind = "migrate"
        [migrate]
        source = "\(src)"
        prefix = "media/"
        """)
        let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log")
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) })
        for job in ["db", "media", "media"] {
            let run = try await CLI.run(["run", "-c", fx.config, job, "--wait"])
            #expect(run.status == 0, "\(job): \(run.stderr) \(daemon.log)")
        }
        #expect(try fx.history("media").count == 2)
        let status = try await CLI.run(["status", "-c", fx.config])
        #expect(status.status == 0, "\(status.stderr)")
        let threads = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/task")) ?? []).map {
            ((try? String(contentsOfFile: "/proc/\(daemon.pid)/task/\($0)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
        }
        #expect(threads.filter { $0.hasPrefix("cairn-pool-") }.count >= 2, "\(threads)")
        #expect(!threads.contains { $0.hasSuffix("-qos") }, "libdispatch worker threads: \(threads)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 20) == 0)
    }

    /// After downtime the latest missed instant runs once at start-up (catch_up), recorded as such.
    @Test func startUpCatchesUpTheLatestMissedRunOnce() async throws {
        let db = try await TestDatabase.create("catchup", sql: marketplaceSQL)
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        schedule = "* * * * *"
        catch_up = "10m"
        [backup]
        database = "\(db.url)"
        """)
        // The last scheduled run was 5 minutes ago: 4 or 5 instants were missed.
        let state = try StateStore(stateDir: fx.stateDir)
        let minute = floor(Date().timeIntervalSince1970 / 60) * 60
        let last = Date(timeIntervalSince1970: minute - 300)
        let id = try state.start(job: "db", trigger: "schedule", scheduledAt: last, at: last)
        try state.finish(id: id, result: .ok, at: last.addingTimeInterval(1))
        let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log")
        #expect(try await eventually(30) { try fx.history("db").contains { $0.trigger == "catch-up" && $0.result == .ok } }, "\(daemon.log)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 30) == 0)
        let catchUps = try fx.history("db").filter { $0.trigger == "catch-up" }
        #expect(catchUps.count == 1)
        let at = try #require(catchUps.first?.scheduledAt)
        // The latest minute that had passed at start-up, not an older one.
        #expect(at.timeIntervalSince1970 >= minute && at.timeIntervalSince1970.truncatingRemainder(dividingBy: 60) == 0, "\(at)")
    }

    /// A migrate job run by the daemon on demand: `cairn run JOB --wait` through the socket.
    @Test func theDaemonRunsAMigrateJob() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        let src = fx.dir + "/uploads"
        try FileManager.default.createDirectory(atPath: src + "/2026/11", withIntermediateDirectories: true)
        let names = ["2026/11/a.jpg", "2026/11/b c+d%.png", "2026/readme.txt", "top.pdf"]
        for (i, n) in names.enumerated() { try testData(1000 * (i + 1), seed: UInt64(i)).write(to: URL(fileURLWithPath: src + "/" + n)) }
        try fx.writeJob("media", """
        kind = "migrate"
        [migrate]
        source = "\(src)"
        prefix = "media/"
        """)
        let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log")
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) })
        let run = try await CLI.run(["run", "-c", fx.config, "media", "--wait"])
        #expect(run.status == 0, "\(run.stderr) \(daemon.log)")
        let keys = Set(try await fx.objects())
        #expect(keys == Set(names.map { fx.prefix + "media/" + $0 }), "\(keys)")
        let h = try fx.history("media")
        #expect(h.first?.result == .ok && h.first?.bytes == 10_000)
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 20) == 0)
    }

    @Test func serveRefusesABrokenConfigBeforeStarting() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        schedule = "61 * * * *"
        [backup]
        database = "postgres:///x"
        """)
        let r = try await CLI.run(["serve", "-c", fx.config])
        #expect(r.status == 3)
        #expect(r.stderr.contains("jobs/db.toml") && r.stderr.contains("61"))
        #expect(!FileManager.default.fileExists(atPath: fx.socket))
    }

    @Test func serveLeavesAFileThatIsNotASocketAtTheSocketPathAlone() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        [backup]
        database = "postgres:///x"
        """)
        try Data("not a socket\n".utf8).write(to: URL(fileURLWithPath: fx.socket))
        let r = try await CLI.run(["serve", "-c", fx.config])
        #expect(r.status == ErrorCode.config.exitStatus, "\(r.stderr)")
        #expect(r.stderr.contains("control socket path \(fx.socket) is a regular file, not a socket"), "\(r.stderr)")
        #expect(try String(contentsOfFile: fx.socket, encoding: .utf8) == "not a socket\n")

        // A symbolic link there is not followed nor removed, and neither is its target.
        try FileManager.default.removeItem(atPath: fx.socket)
        try Data("target\n".utf8).write(to: URL(fileURLWithPath: fx.dir + "/target"))
        try FileManager.default.createSymbolicLink(atPath: fx.socket, withDestinationPath: fx.dir + "/target")
        let l = try await CLI.run(["serve", "-c", fx.config])
        #expect(l.status == ErrorCode.config.exitStatus, "\(l.stderr)")
        #expect(l.stderr.contains("is a symbolic link, not a socket"), "\(l.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: fx.socket) == fx.dir + "/target")
        #expect(try String(contentsOfFile: fx.dir + "/target", encoding: .utf8) == "target\n")
    }

    @Test func serveReplacesASocketNobodyAnswersOn() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        [backup]
        database = "postgres:///x"
        """)
        // A socket left by a daemon that died: bound, never listened on, its
        // process gone. Only a daemon listening on a new one answers `status`.
        let stale = Process()
        stale.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        stale.arguments = ["-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", fx.socket]
        try await waitForExit(stale)
        var before = stat()
        #expect(lstat(fx.socket, &before) == 0 && before.st_mode & S_IFMT == S_IFSOCK)
        let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log")
        #expect(await eventually(20) {
            let s = try? await CLI.run(["status", "-c", fx.config, "--json"])
            return s?.status == 0 && s?.stdout.contains("\"state\"") == true
        }, "\(daemon.log)")
        var after = stat()   // (the inode number proves nothing: a freed one is reused)
        #expect(lstat(fx.socket, &after) == 0 && after.st_mode & S_IFMT == S_IFSOCK)
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 20) == 0)
    }

    /// The run succeeds but its end cannot be recorded (pg_dump's wrapper
    /// makes the state directory immutable, so SQLite has no journal): the
    /// daemon says so, `cairn run --wait` prints the outcome and exits with
    /// the state error's status, and the next run does not start.
    @Test func aDaemonRunWhoseEndCannotBeRecordedIsReportedWithTheStateError() async throws {
        let db = try await TestDatabase.create("serve_ro", sql: "CREATE TABLE t (id int);")
        defer { Task { await db.drop() } }
        let fx = try DaemonFixture()
        defer { try? chattr("-i", fx.stateDir); fx.remove() }
        try """
        #!/bin/sh
        /usr/bin/chattr +i \(fx.stateDir)
        exec \(try PostgresTools.locate("pg_dump")) "$@"
        """.write(toFile: fx.dir + "/pg_dump", atomically: true, encoding: .utf8)
        chmod(fx.dir + "/pg_dump", 0o755)
        try fx.writeJob("db", """
        kind = "backup"
        [backup]
        database = "\(db.url)"
        pg_dump_path = "\(fx.dir)/pg_dump"
        """)
        let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log")
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) }, "\(daemon.log)")

        let run = try await CLI.run(["run", "-c", fx.config, "db", "--wait"])
        #expect(run.status == ErrorCode.io.exitStatus, "\(run.stderr)")
        #expect(run.stdout.contains("backup "), "\(run.stdout)")
        #expect(run.stderr.contains("run succeeded, but its end is not in the history: state database \(fx.stateDir)/cairn.sqlite: cannot record the end of run"), "\(run.stderr)")
        #expect(await eventually(10) { daemon.log.contains("run finished but not recorded") }, "\(daemon.log)")

        let next = try await CLI.run(["run", "-c", fx.config, "db", "--wait"])
        #expect(next.status == ErrorCode.io.exitStatus, "\(next.stderr)")
        #expect(next.stderr.contains("cannot record the start of db"), "\(next.stderr)")

        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 20) == 0, "\(daemon.log)")
    }

    @Test func aSecondDaemonOnTheSameSocketIsRefused() async throws {
        let fx = try DaemonFixture()
        defer { fx.remove() }
        try fx.writeJob("db", """
        kind = "backup"
        [backup]
        database = "postgres:///x"
        """)
        let first = try DaemonProcess(config: fx.config, logPath: fx.dir + "/1.log")
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) })
        let second = try await CLI.run(["serve", "-c", fx.config])
        #expect(second.status == 13)
        #expect(second.stderr.contains("another cairn serve is running"))
        first.signal(SIGTERM)
        #expect(await first.waitExit(timeout: 20) == 0)
    }

    /// Two daemons share one lock database and one job on a seconds-level
    /// schedule. One is killed with SIGKILL in the middle of a backup; the
    /// other takes that instant over. Every instant runs to completion exactly
    /// once across both: one row per instant in the cluster runs table, all ok,
    /// no gaps, and exactly one manifest per instant.
    @Test func twoDaemonsRunEachInstantExactlyOnceAlsoWhenOneIsKilled() async throws {
        let db = try await TestDatabase.create("cluster", sql: randomBytesSQL(mib: 6))
        let lockDB = try await TestDatabase.create("lock", sql: "SELECT 1;")
        defer { Task { await db.drop(); await lockDB.drop() } }
        let prefix = TestEnv.uniquePrefix("cluster")
        let job = """
        kind = "backup"
        schedule = "*/5 * * * * *"
        [backup]
        database = "\(db.url)"
        part_size = "5MiB"
        """
        let a = try DaemonFixture(daemon: "stop_grace_period = \"30s\"", cluster: "lock_database = \"\(lockDB.url)\"\nnode = \"node-a\"", prefix: prefix)
        let b = try DaemonFixture(daemon: "stop_grace_period = \"30s\"", cluster: "lock_database = \"\(lockDB.url)\"\nnode = \"node-b\"", prefix: prefix)
        defer { a.remove(); b.remove() }
        try a.writeJob("db", job)
        try b.writeJob("db", job)
        let da = try DaemonProcess(config: a.config, logPath: a.dir + "/serve.log")
        let dbn = try DaemonProcess(config: b.config, logPath: b.dir + "/serve.log")
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: a.socket) && FileManager.default.fileExists(atPath: b.socket) })

        // Let both run a few instants (two finished), then kill A while it is in the middle of a backup.
        #expect(try await eventually(60) {
            let c = try await PGConnection.connect(lockDB.url)
            let n = try? await c.queryValue("SELECT count(*) FROM cairn_cluster_runs WHERE job = 'db' AND finished_at IS NOT NULL")
            await c.close()
            return (n.flatMap { Int($0) } ?? 0) >= 2
        }, "no instants ran: \(da.log) \(dbn.log)")
        // A is in the middle of the backup of an instant that B waits for (B is
        // not busy with a run of its own, which would make it skip that instant).
        let midBackup = await eventually(60) {
            let lines = da.log.split(separator: "\n")
            guard let last = lines.last(where: { $0.contains("logger=cairn.backup msg=\"backup") || $0.contains("run finished") || $0.contains("run failed") }),
                  last.contains("backup started"),
                  let started = lines.last(where: { $0.contains("run started") }),
                  let at = started.split(separator: " ").first(where: { $0.hasPrefix("scheduled_at=") }), at != "scheduled_at=-"
            else { return false }
            return dbn.log.split(separator: "\n").contains { $0.contains("waiting for this instant's run on another cluster node") && $0.contains(at) }
        }
        #expect(midBackup, "node A never ran a backup: \(da.log)")
        da.signal(SIGKILL)
        _ = await da.waitExit(timeout: 10)
        // B takes the instant over, then runs at least one instant after it.
        let goneOn = try await eventually(90) {
            let c = try await PGConnection.connect(lockDB.url)
            let n = try await c.queryValue("""
                SELECT count(*) FROM cairn_cluster_runs r WHERE job = 'db' AND trigger = 'schedule' AND node = 'node-b'
                  AND finished_at IS NOT NULL AND scheduled_at > (SELECT max(scheduled_at) FROM cairn_cluster_runs
                    WHERE job = 'db' AND trigger = 'schedule' AND attempt = 2 AND finished_at IS NOT NULL)
                """)
            await c.close()
            return (n.flatMap { Int($0) } ?? 0) >= 1
        }
        #expect(goneOn, "node B did not take over and go on: \(dbn.log)")
        dbn.signal(SIGTERM)
        #expect(await dbn.waitExit(timeout: 40) == 0, "\(dbn.log)")

        let conn = try await PGConnection.connect(lockDB.url)
        let rows = try await conn.query("""
            SELECT extract(epoch FROM scheduled_at)::bigint, node, attempt, result, finished_at IS NOT NULL
            FROM cairn_cluster_runs WHERE job = 'db' AND trigger = 'schedule' ORDER BY scheduled_at
            """)
        await conn.close()
        let instants = rows.map { Int($0[0]!)! }
        #expect(instants.count >= 3, "too few runs: \(rows)")
        // No gaps: every instant from the first to the last ran exactly once,
        // unless the node alive then was still busy with the previous instant
        // (the take-over runs late) and skipped it by the overlap policy, and
        // said so in its history.
        let overlapSkips = try (a.history("db") + b.history("db"))
            .filter { $0.result == .skipped && ($0.error ?? "").contains("overlap") }
            .compactMap { $0.scheduledAt.map { Int($0.timeIntervalSince1970) } }
        let covered = (Set(instants).union(overlapSkips)).filter { $0 >= instants.first! && $0 <= instants.last! }.sorted()
        #expect(Set(instants).count == instants.count, "duplicates: \(instants)")
        #expect(zip(covered, covered.dropFirst()).allSatisfy { $1 - $0 == 5 }, "gaps: ran \(instants), skipped \(overlapSkips)")
        // Every instant finished ok; the one A was running when killed was taken over by B as attempt 2.
        #expect(rows.allSatisfy { $0[3] == "ok" && $0[4] == "t" }, "\(rows)")
        #expect(rows.contains { $0[1] == "node-b" && $0[2] == "2" }, "no take-over: \(rows)\nA: \(da.log)")
        // Both took part (which node wins each race is up to PostgreSQL): A at least ran the instant it was killed in.
        #expect(da.log.contains("backup started") && rows.contains { $0[1] == "node-b" })
        #expect(try await ProxyControl().violations(containing: prefix).isEmpty)
        // Exactly one complete backup per instant.
        let manifests = try await a.objects().filter { $0.hasSuffix(".manifest.json") }
        #expect(manifests.count == rows.count, "\(manifests.count) manifests for \(rows.count) instants")
        // Every multipart upload was completed or aborted: one cut by the kill was
        // aborted by B's next run (which held the job's lock).
        #expect(try await a.store().listMultipartUploads(prefix: prefix).isEmpty)
        let log = try await ProxyControl().log(pathContaining: prefix)
        // A CompleteMultipartUpload that reached S3 just as A was killed counts
        // as completed (client_gone in the proxy log): its data object exists,
        // but no manifest names it, so it is not a backup.
        let created = log.filter { $0.method == "POST" && ($0.query ?? "").hasPrefix("uploads") && $0.status == 200 }.count
        let completed = Set(log.filter { $0.method == "POST" && $0.status == 200 }.compactMap(\.upload_id)).count
        let aborted = Set(log.filter { $0.method == "DELETE" && $0.status == 204 }.compactMap(\.upload_id)).count
        #expect(created > 0 && created == completed + aborted, "created \(created), completed \(completed), aborted \(aborted)")
        if aborted > 0 { #expect(dbn.log.contains("aborted an unfinished upload left by an interrupted run")) }
        // Each node recorded the instants the other ran as skipped, never as its own run.
        let okA = try a.history("db").filter { $0.result == .ok }.compactMap(\.scheduledAt)
        let okB = try b.history("db").filter { $0.result == .ok }.compactMap(\.scheduledAt)
        #expect(Set(okA).isDisjoint(with: Set(okB)))
        #expect(okA.count + okB.count == rows.count)
    }
}

@Suite struct BackupLayoutTests {
    @Test func onlyBackupDataUnderThePrefixCountsAsStale() {
        #expect(BackupLayout.isBackupData("db/20261127T153210Z-d3273f34.dump.zst.aes", prefix: "db"))
        #expect(BackupLayout.isBackupData("db/20261127T153210Z-d3273f34.globals.sql.zst.aes", prefix: "db"))
        #expect(BackupLayout.isBackupData("20261127T153210Z-d3273f34.dump.zst.aes", prefix: ""))
        #expect(!BackupLayout.isBackupData("db/20261127T153210Z-d3273f34.manifest.json", prefix: "db"))
        #expect(!BackupLayout.isBackupData("db/sub/20261127T153210Z-d3273f34.dump.zst.aes", prefix: "db"))
        #expect(!BackupLayout.isBackupData("uploads/2026/11/big-video.mp4", prefix: ""))
        #expect(!BackupLayout.isBackupData("dbx/20261127T153210Z-d3273f34.dump.zst.aes", prefix: "db"))
        #expect(!BackupLayout.isBackupData("db/x20261127T153210Z-d3273f34.dump.zst.aes", prefix: "db"))
        #expect(BackupLayout.backupID(ofData: "db/20261127T153210Z-d3273f34.globals.sql.zst.aes", prefix: "db") == "20261127T153210Z-d3273f34")
        #expect(BackupLayout.backupID(ofManifest: "db/20261127T153210Z-d3273f34.manifest.json", prefix: "db") == "20261127T153210Z-d3273f34")
        #expect(BackupLayout.backupID(ofManifest: "db/20261127T153210Z-d3273f34.dump.zst.aes", prefix: "db") == nil)
        #expect(BackupLayout.backupID(ofManifest: "db/sub/20261127T153210Z-d3273f34.manifest.json", prefix: "db") == nil)
    }
}

/// A test database with the marketplace schema and a fixture whose job `db`
/// backs it up (with the globals).
func backupFixture(_ tag: String) async throws -> (TestDatabase, DaemonFixture) {
    let db = try await TestDatabase.create(tag, sql: marketplaceSQL)
    let fx = try DaemonFixture()
    try fx.writeJob("db", """
    kind = "backup"
    [backup]
    database = "\(db.url)"
    include_globals = true
    """)
    return (db, fx)
}

/// What interrupted runs left under a backup job's prefix (an unfinished
/// multipart upload, a completed data object no manifest names) is removed by
/// the job's next run; complete backups and anything that is not backup data
/// are left alone.
@Suite struct InterruptedRunCleanUpTests {
    @Test func theNextRunRemovesUnfinishedUploadsAndDataWithoutAManifest() async throws {
        let (db, fx) = try await backupFixture("cleanup")
        defer { Task { await db.drop() }; fx.remove() }
        let first = try await CLI.run(["run", "-c", fx.config, "db"])
        #expect(first.status == 0, "\(first.stderr)")
        let complete = Set(try await fx.objects())
        #expect(complete.filter { $0.hasSuffix(".manifest.json") }.count == 1 && complete.count == 3, "\(complete)")

        let store = try fx.store()
        let dir = fx.prefix + "db/"
        let orphanDump = dir + "20260101T000000Z-0badf00d.dump.zst.aes"
        let orphanGlobals = dir + "20260101T000000Z-0badf00d.globals.sql.zst.aes"
        for k in [orphanDump, orphanGlobals] { _ = try await store.put(key: k, data: Data("half a backup".utf8)) }
        let cut = dir + "20260101T000001Z-0badf00e.dump.zst.aes"
        let uploadId = try await store.createMultipartUpload(key: cut, options: PutOptions())
        _ = try await store.uploadPart(key: cut, uploadId: uploadId, partNumber: 1, body: .data(Data(count: 1000)))
        let unrelated = [dir + "README.txt", dir + "old/20260101T000000Z-0badf00d.dump.zst.aes", fx.prefix + "20260101T000000Z-0badf00d.dump.zst.aes"]
        for k in unrelated { _ = try await store.put(key: k, data: Data("keep".utf8)) }

        let second = try await CLI.run(["run", "-c", fx.config, "db", "--log-level", "notice"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("aborted an unfinished upload left by an interrupted run"), "\(second.stderr)")
        #expect(second.stderr.contains("deleted backup data that no manifest names"), "\(second.stderr)")
        let after = Set(try await fx.objects())
        #expect(after.isSuperset(of: complete), "a complete backup was touched")
        #expect(after.isSuperset(of: Set(unrelated)), "something that is not backup data was deleted")
        #expect(!after.contains(orphanDump) && !after.contains(orphanGlobals))
        #expect(after.filter { $0.hasSuffix(".manifest.json") }.count == 2)
        #expect(after.count == complete.count + 3 + unrelated.count)
        #expect(try await store.listMultipartUploads(prefix: dir).isEmpty)
    }

    /// A run that fails after its data objects are complete (here S3 refuses
    /// the manifest) deletes them itself: a failed run leaves nothing behind.
    @Test func aRunThatCannotWriteItsManifestDeletesItsData() async throws {
        let (db, fx) = try await backupFixture("nomanifest")
        defer { Task { await db.drop() }; fx.remove() }
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: fx.prefix + "db/", path_suffix: ".manifest.json", action: "status",
                                     status: 403, code: "AccessDenied"))
        defer { Task { try? await proxy.clearFaults(pathContaining: fx.prefix) } }
        let run = try await CLI.run(["run", "-c", fx.config, "db", "--log-level", "info"])
        #expect(run.status == ErrorCode.storageAuth.exitStatus, "\(run.stderr)")
        #expect(run.stderr.contains("manifest.json"), "\(run.stderr)")
        #expect(run.stderr.contains("deleted the data of the failed backup"), "\(run.stderr)")
        #expect(try await fx.objects().isEmpty)
        let log = try await proxy.log(pathContaining: fx.prefix)
        // (A small database: each object is a single PUT.)
        #expect(log.filter { $0.method == "PUT" && $0.path.hasSuffix(".zst.aes") && $0.status == 200 }.count == 2,
                "the dump and the globals were stored before the manifest was refused: \(log.map { "\($0.method) \($0.path) \($0.status ?? 0)" })")
    }
}

/// cairn.service's sandbox, applied without systemd: `cairn serve` runs as an
/// unprivileged user with no capabilities and no new privileges, under the
/// unit's system call filter (@system-service minus @privileged and
/// @resources, EPERM otherwise), MemoryDenyWriteExecute and
/// RestrictAddressFamilies, built by scripts/testservers/syscall-filter-exec.py
/// from `systemd-analyze syscall-filter` through libseccomp, as systemd
/// builds them. A backup (pg_dump, pg_dumpall) and a migration run in it.
@Suite struct HardenedDaemonTests {
    static var launcher: String { SystemdUnitTests.repoRoot + "/scripts/testservers/syscall-filter-exec.py" }

    @Test func theUnitDeclaresTheSandboxTheTestApplies() throws {
        let lines = Set(try SystemdUnitTests.unitText.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        for l in ["SystemCallFilter=@system-service", "SystemCallFilter=~@privileged @resources", "SystemCallErrorNumber=EPERM",
                  "MemoryDenyWriteExecute=true", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "NoNewPrivileges=true",
                  "CapabilityBoundingSet=", "User=cairn"] {
            #expect(lines.contains(l), "cairn.service no longer says \(l): update the launcher and this test")
        }
    }

    @Test func backupAndMigrationRunInsideTheUnitsSandbox() async throws {
        // The filter works: setpriority (@resources) is refused.
        let probe = try await CLI.run(["-c", "renice -n 0 $$"], executable: "/bin/sh")
        #expect(probe.status == 0)
        let filtered = try await CLI.run([Self.launcher, "/bin/sh", "-c", "renice -n 0 $$"], executable: "/usr/bin/python3")
        #expect(filtered.status != 0 && filtered.stderr.contains("Operation not permitted"), "\(filtered.stderr)")

        let (db, fx) = try await backupFixture("sandbox")
        defer { Task { await db.drop() }; fx.remove() }
        let src = fx.dir + "/uploads"
        try FileManager.default.createDirectory(atPath: src + "/2026", withIntermediateDirectories: true)
        for i in 0..<5 { try testData(3000 + i, seed: UInt64(i)).write(to: URL(fileURLWithPath: src + "/2026/f\(i).jpg")) }
        try fx.writeJob("media", """
        kind = "migrate"
        [migrate]
        source = "\(src)"
        prefix = "media"
        """)
        // Everything the daemon owns belongs to the unprivileged user (as
        // StateDirectory= and the credentials would).
        let chown = try await CLI.run(["-R", "nobody:nogroup", fx.dir], executable: "/bin/chown")
        #expect(chown.status == 0)
        let daemon = try DaemonProcess(config: fx.config, logPath: fx.dir + "/serve.log", wrapper: [
            "/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--bounding-set=-all",
            "--inh-caps=-all", "--no-new-privs", "/usr/bin/python3", Self.launcher,
        ])
        #expect(await eventually(20) { FileManager.default.fileExists(atPath: fx.socket) }, "\(daemon.log)")
        let backup = try await CLI.run(["run", "-c", fx.config, "db", "--wait"])
        #expect(backup.status == 0, "\(backup.stderr)\n\(daemon.log)")
        let migrate = try await CLI.run(["run", "-c", fx.config, "media", "--wait"])
        #expect(migrate.status == 0, "\(migrate.stderr)\n\(daemon.log)")
        daemon.signal(SIGTERM)
        #expect(await daemon.waitExit(timeout: 30) == 0, "\(daemon.log)")

        let objects = try await fx.objects()
        #expect(objects.filter { $0.hasSuffix(".manifest.json") }.count == 1)
        #expect(objects.filter { $0.contains("/media/2026/") }.count == 5)
        let history = try fx.history("db") + fx.history("media")
        #expect(history.count == 2 && history.allSatisfy { $0.result == .ok }, "\(history)")
        // Nothing in the log about refused calls (libdispatch's setpriority
        // is refused silently; SQLite's fchown is only tried by root).
        #expect(!daemon.log.contains("not permitted") && !daemon.log.contains("BUG"), "\(daemon.log)")
    }
}
