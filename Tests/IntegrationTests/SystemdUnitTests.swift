import Config
import Core
import Foundation
import Testing

/// The shipped systemd files (systemd/) and scripts/install. These need the
/// systemd tools (`systemd-analyze`, `systemd-sysusers`, `systemd-tmpfiles`),
/// not a running systemd: every check works offline on files.
@Suite struct SystemdUnitTests {
    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    struct Output { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ executable: String, _ args: [String], env extra: [String: String] = [:]) async throws -> Output {
        let r = try await CLI.run(args, env: extra, executable: executable)
        return Output(status: r.status, stdout: r.stdout, stderr: r.stderr)
    }

    static func tempDir(_ tag: String) throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-\(tag)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static func mode(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_mode) & 0o7777
    }

    static func owner(_ path: String) -> (uid: UInt32, gid: UInt32)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid)
    }

    /// Runs `systemd-analyze verify` on `unitText` saved as cairn.service with
    /// ExecStart pointing at the built binary (verify checks that it exists).
    /// Returns the problems: a non-zero exit, and every stderr line.
    static func verify(unitText: String) async throws -> [String] {
        let dir = try tempDir("unit")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let unit = unitText.replacingOccurrences(of: "/usr/local/bin/cairn", with: try CLI.binary)
        try unit.write(toFile: dir + "/cairn.service", atomically: true, encoding: .utf8)
        let r = try await run("/usr/bin/systemd-analyze", ["verify", dir + "/cairn.service"], env: ["SYSTEMD_LOG_COLOR": "0"])
        var problems = r.stderr.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        if r.status != 0 { problems.append("systemd-analyze verify exited with status \(r.status)") }
        return problems
    }

    static var unitText: String { get throws { try String(contentsOfFile: repoRoot + "/systemd/cairn.service", encoding: .utf8) } }

    @Test func serviceUnitPassesSystemdAnalyzeVerify() async throws {
        let problems = try await Self.verify(unitText: Self.unitText)
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test func verifyCatchesATypoedDirectiveOrSection() async throws {
        // Proves the check above would fail: systemd-analyze exits 0 for these but complains on stderr.
        let typo = try Self.unitText.replacingOccurrences(of: "ProtectHome=true", with: "ProtectHom=true")
        let problems = try await Self.verify(unitText: typo)
        #expect(problems.contains { $0.contains("Unknown key") && $0.contains("ProtectHom") }, "\(problems)")
        let section = try Self.unitText.replacingOccurrences(of: "[Install]", with: "[Instal]")
        #expect(try await Self.verify(unitText: section).contains { $0.contains("Unknown section") }, "section typo")
    }

    @Test func serviceUnitHasTheRequiredSettings() async throws {
        let lines = Set(try Self.unitText.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        for required in [
            "Type=notify", "ExecStart=/usr/local/bin/cairn serve --config /etc/cairn/cairn.toml", "ExecReload=/bin/kill -HUP $MAINPID",
            "WatchdogSec=60", "Restart=on-failure", "KillMode=mixed", "TimeoutStopSec=330", "User=cairn", "Group=cairn",
            "StateDirectory=cairn", "RuntimeDirectory=cairn", "RuntimeDirectoryMode=0750", "ProtectSystem=strict", "ProtectHome=true",
            "PrivateTmp=true", "NoNewPrivileges=true", "CapabilityBoundingSet=", "UMask=0077",
            "LoadCredential=backup-key:/etc/cairn/keys/backup.key", "LoadCredential=s3-secret:/etc/cairn/s3-secret",
            "Environment=SWIFT_BACKTRACE=enable=no",   // see SystemdContainerTests: the watchdog's SIGABRT must end the daemon
        ] {
            #expect(lines.contains(required), "cairn.service lacks \(required)")
        }
        // The grace period the daemon gets must fit in TimeoutStopSec.
        #expect(DaemonConfig().stopGracePeriod < .seconds(330))
    }

    @Test func sysusersAndTmpfilesCreateTheUserAndDirectories() async throws {
        let root = try Self.tempDir("root")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        let su = try await Self.run("/usr/bin/systemd-sysusers", ["--root=\(root)", Self.repoRoot + "/systemd/cairn.sysusers.conf"])
        #expect(su.status == 0, "\(su.stderr)")
        let passwd = try String(contentsOfFile: root + "/etc/passwd", encoding: .utf8)
        let entry = try #require(passwd.split(separator: "\n").first { $0.hasPrefix("cairn:") }).split(separator: ":", omittingEmptySubsequences: false)
        #expect(entry[5] == "/var/lib/cairn" && entry[4] == "Cairn backup daemon")
        let uid = try #require(UInt32(entry[2])), gid = try #require(UInt32(entry[3]))

        // Config files copied in without the group (a package, --destdir): tmpfiles gives them group cairn, keeps their mode.
        try FileManager.default.createDirectory(atPath: root + "/etc/cairn/jobs", withIntermediateDirectories: true)
        for f in ["/etc/cairn/cairn.toml", "/etc/cairn/jobs/db.toml"] {
            FileManager.default.createFile(atPath: root + f, contents: Data("x".utf8), attributes: [.posixPermissions: 0o640])
        }
        let tf = try await Self.run("/usr/bin/systemd-tmpfiles", ["--root=\(root)", "--create", Self.repoRoot + "/systemd/cairn.tmpfiles.conf"])
        #expect(tf.status == 0, "\(tf.stderr)")
        #expect(Self.mode(root + "/etc/cairn") == 0o750)
        #expect(Self.mode(root + "/etc/cairn/jobs") == 0o750)
        #expect(Self.mode(root + "/etc/cairn/keys") == 0o700)
        #expect(Self.mode(root + "/var/lib/cairn") == 0o700)
        if geteuid() == 0 {   // only root can chown
            #expect(Self.owner(root + "/etc/cairn").map { $0.uid == 0 && $0.gid == gid } == true)
            #expect(Self.owner(root + "/etc/cairn/keys").map { $0.uid == 0 && $0.gid == 0 } == true)
            #expect(Self.owner(root + "/var/lib/cairn").map { $0.uid == uid && $0.gid == gid } == true)
            for f in ["/etc/cairn/cairn.toml", "/etc/cairn/jobs/db.toml"] {
                #expect(Self.owner(root + f).map { $0.uid == 0 && $0.gid == gid } == true, "\(f)")
                #expect(Self.mode(root + f) == 0o640, "\(f)")
            }
        }
    }

    @Test func installScriptLaysOutFilesAndNeverOverwritesOperatorConfig() async throws {
        let dest = try Self.tempDir("destdir")
        defer { try? FileManager.default.removeItem(atPath: dest) }
        let script = Self.repoRoot + "/scripts/install"
        let args = ["--destdir", dest, "--binary", try CLI.binary]
        let first = try await Self.run(script, args)
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")

        let expected: [(String, Int)] = [
            ("/usr/local/bin/cairn", 0o755),
            ("/etc/systemd/system/cairn.service", 0o644),
            ("/usr/lib/sysusers.d/cairn.conf", 0o644),
            ("/usr/lib/tmpfiles.d/cairn.conf", 0o644),
            ("/usr/local/share/doc/cairn/OPERATIONS.md", 0o644),
            ("/usr/local/share/man/man1/cairn.1", 0o644),
            ("/usr/local/share/bash-completion/completions/cairn", 0o644),
            ("/etc/cairn", 0o750),
            ("/etc/cairn/jobs", 0o750),
            ("/etc/cairn/keys", 0o700),
            ("/etc/cairn/cairn.toml", 0o640),
            ("/etc/cairn/jobs/marketplace-db.toml", 0o640),
            ("/etc/cairn/jobs/uploads-migrate.toml", 0o640),
        ]
        for (path, mode) in expected {
            #expect(Self.mode(dest + path) == mode, "\(path): \(Self.mode(dest + path).map { String($0, radix: 8) } ?? "missing")")
        }
        #expect(FileManager.default.contentsEqual(atPath: dest + "/usr/local/bin/cairn", andPath: try CLI.binary))
        #expect(try String(contentsOfFile: dest + "/usr/local/share/bash-completion/completions/cairn", encoding: .utf8).contains("restore"))
        #expect(FileManager.default.contentsEqual(atPath: dest + "/etc/cairn/cairn.toml", andPath: Self.repoRoot + "/systemd/cairn.toml"))

        // The installed example configuration loads.
        let issues = ConfigLoader.check(path: dest + "/etc/cairn/cairn.toml")
        #expect(issues.isEmpty, "\(issues.map(\.description))")

        // The operator edits the config and removes a job; a second install keeps both.
        let edited = "# edited by the operator\n" + (try String(contentsOfFile: dest + "/etc/cairn/cairn.toml", encoding: .utf8))
        try edited.write(toFile: dest + "/etc/cairn/cairn.toml", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dest + "/etc/cairn/jobs/uploads-migrate.toml")
        let second = try await Self.run(script, args)
        #expect(second.status == 0, "\(second.stdout)\n\(second.stderr)")
        #expect(try String(contentsOfFile: dest + "/etc/cairn/cairn.toml", encoding: .utf8) == edited)
        #expect(!FileManager.default.fileExists(atPath: dest + "/etc/cairn/jobs/uploads-migrate.toml"))
        #expect(second.stdout.contains("keeping existing"))
        #expect(Self.mode(dest + "/usr/local/bin/cairn") == 0o755)
    }

    @Test func installScriptHonoursPrefixAndDryRun() async throws {
        let dest = try Self.tempDir("destdir")
        defer { try? FileManager.default.removeItem(atPath: dest) }
        let script = Self.repoRoot + "/scripts/install"
        let dry = try await Self.run(script, ["--destdir", dest, "--binary", try CLI.binary, "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("would run: install -m 0755"))
        let left = try FileManager.default.contentsOfDirectory(atPath: dest)
        #expect(left.isEmpty, "dry run wrote \(left)")

        let r = try await Self.run(script, ["--destdir", dest, "--binary", try CLI.binary, "--prefix", "/opt/cairn"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.mode(dest + "/opt/cairn/bin/cairn") == 0o755)
        let unit = try String(contentsOfFile: dest + "/etc/systemd/system/cairn.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/opt/cairn/bin/cairn serve --config /etc/cairn/cairn.toml"))
        #expect(!unit.contains("/usr/local/"))

        let bad = try await Self.run(script, ["--destdir", dest, "--no-build", "--binary", "/nonexistent/cairn"])
        #expect(bad.status != 0 && bad.stderr.contains("no executable at /nonexistent/cairn"))
    }
}
