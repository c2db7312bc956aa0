import Foundation
import Testing
import Core
import Crypto
import Postgres

/// A config with a file:// storage and one backup job `db` whose pg_dump is
/// a wrapper: it records its own environment (`/proc/$$/environ`) and its
/// parent's (cairn's) in `environ/`, runs `hook` (where `@STATE@` stands for
/// the state directory), then execs the real pg_dump.
struct WrappedDumpFixture {
    let dir: String
    var config: String { dir + "/cairn.toml" }
    var stateDir: String { dir + "/state" }

    init(database: String, hook: String = "") throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-hardening-\(UUID().uuidString.prefix(8))").path
        for d in ["jobs", "backups", "environ"] { try FileManager.default.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true) }
        try Data((try SecureRandom.bytes(32).hexString + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/k.key"))
        chmod(dir + "/k.key", 0o600)
        let real = try PostgresTools.locate("pg_dump")
        try """
        #!/bin/sh
        cat /proc/$$/environ > \(dir)/environ/pg_dump.$$
        cat /proc/$PPID/environ > \(dir)/environ/parent.$$
        \(hook.replacingOccurrences(of: "@STATE@", with: dir + "/state"))
        exec \(real) "$@"
        """.write(toFile: dir + "/pg_dump", atomically: true, encoding: .utf8)
        chmod(dir + "/pg_dump", 0o755)
        try """
        state_dir = "\(dir)/state"
        [storage.local]
        url = "file://\(dir)/backups"
        [keys]
        active = "k"
        [keys.files]
        k = "\(dir)/k.key"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        try """
        kind = "backup"
        [backup]
        database = "\(database)"
        pg_dump_path = "\(dir)/pg_dump"
        """.write(toFile: dir + "/jobs/db.toml", atomically: true, encoding: .utf8)
    }

    /// The recorded environments, by file name prefix ("pg_dump" or "parent").
    func environments(_ kind: String) throws -> [[String]] {
        try FileManager.default.contentsOfDirectory(atPath: dir + "/environ").filter { $0.hasPrefix(kind + ".") }.map {
            try Data(contentsOf: URL(fileURLWithPath: dir + "/environ/" + $0)).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    func manifests() -> Int {
        let e = FileManager.default.enumerator(atPath: dir + "/backups")
        var n = 0
        while let p = e?.nextObject() as? String { if p.hasSuffix(".manifest.json") { n += 1 } }
        return n
    }

    func remove() {
        try? chattr("-i", stateDir)
        try? chattr("-i", stateDir + "/cairn.sqlite")
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Runs chattr (tests run as root, where mode bits do not stop writes).
func chattr(_ flag: String, _ path: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
    p.arguments = [flag, path]
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw CairnError(.io, "chattr \(flag) \(path) failed") }
}

func mode(_ path: String) -> mode_t? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return st.st_mode & 0o7777
}

@Suite struct StateAndChildHardeningTests {
    static let cloudSecrets = [
        "AWS_ACCESS_KEY_ID": "AKIAHARDENINGTEST", "AWS_SECRET_ACCESS_KEY": "hardening/secret/key",
        "AWS_SESSION_TOKEN": "hardening-token", "CREDENTIALS_DIRECTORY": "/run/credentials/cairn.service",
        "CAIRN_HARDENING_MARKER": "1", "PGCONNECT_TIMEOUT": "17",
    ]

    @Test func pgDumpSeesNoAWSVariableThatCairnHas() async throws {
        let db = try await TestDatabase.create("env", sql: marketplaceSQL)
        defer { Task { await db.drop() } }
        let fx = try WrappedDumpFixture(database: db.url)
        defer { fx.remove() }
        let run = try await CLI.run(["run", "-c", fx.config, "db"], env: Self.cloudSecrets)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(fx.manifests() == 1)
        // cairn itself had them: the wrapper read its parent's /proc/<pid>/environ.
        let parents = try fx.environments("parent")
        #expect(!parents.isEmpty)
        for env in parents { #expect(env.contains("AWS_SECRET_ACCESS_KEY=hardening/secret/key")) }
        // pg_dump (--version and the dump itself) did not.
        let dumps = try fx.environments("pg_dump")
        #expect(dumps.count >= 2)
        for env in dumps {
            #expect(!env.contains { $0.hasPrefix("AWS_") || $0.hasPrefix("CAIRN_") || $0.hasPrefix("CREDENTIALS_DIRECTORY=") }, "\(env)")
            #expect(env.contains { $0.hasPrefix("PATH=") })
            #expect(env.contains("PGCONNECT_TIMEOUT=17"))   // libpq's own variables pass
        }
        // The dump itself ran under coreutils' stdbuf with a 1 MiB output buffer
        // (`--version` did not: it has nothing to buffer).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/stdbuf") {
            #expect(dumps.filter { $0.contains("_STDBUF_O=1048576") && $0.contains { $0.hasPrefix("LD_PRELOAD=") && $0.hasSuffix("libstdbuf.so") } }.count == 1, "\(dumps)")
        }
    }

    @Test func aRunCreatesOwnerOnlyStateFilesAndDirectories() async throws {
        let db = try await TestDatabase.create("modes", sql: "CREATE TABLE t (id int);")
        defer { Task { await db.drop() } }
        let fx = try WrappedDumpFixture(database: db.url)
        defer { fx.remove() }
        let run = try await CLI.run(["run", "-c", fx.config, "db"])
        #expect(run.status == 0, "\(run.stderr)")
        var seen: [String] = []
        let e = FileManager.default.enumerator(atPath: fx.stateDir)
        while let p = e?.nextObject() as? String {
            let full = fx.stateDir + "/" + p
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: full, isDirectory: &isDir)
            #expect(mode(full) == (isDir.boolValue ? 0o700 : 0o600), "\(p)")
            seen.append(p)
        }
        #expect(mode(fx.stateDir) == 0o700)
        #expect(Set(seen).isSuperset(of: ["cairn.sqlite", "locks", "locks/db.lock"]), "\(seen)")
    }

    @Test func aRunWhoseStartCannotBeRecordedDoesNotStart() async throws {
        let db = try await TestDatabase.create("ro", sql: "CREATE TABLE t (id int);")
        defer { Task { await db.drop() } }
        let fx = try WrappedDumpFixture(database: db.url)
        defer { fx.remove() }
        let first = try await CLI.run(["run", "-c", fx.config, "db"])
        #expect(first.status == 0, "\(first.stderr)")
        let dumpsBefore = try fx.environments("pg_dump").count
        try chattr("+i", fx.stateDir + "/cairn.sqlite")   // read-only even for root
        let second = try await CLI.run(["run", "-c", fx.config, "db"], env: ["CAIRN_LOG_LEVEL": "critical"])
        #expect(second.status == ErrorCode.io.exitStatus, "\(second.stderr)")
        #expect(second.stderr.hasPrefix("cairn: error: state database \(fx.stateDir)/cairn.sqlite: cannot record the start of db"), "\(second.stderr)")
        #expect(second.stderr.lowercased().contains("readonly"), "\(second.stderr)")
        #expect(second.stderr.split(separator: "\n").count == 1)
        #expect(try fx.environments("pg_dump").count == dumpsBefore)   // pg_dump never ran
        #expect(fx.manifests() == 1)
    }

    @Test func aRunWhoseEndCannotBeRecordedReportsItsOutcomeAndTheStateError() async throws {
        let db = try await TestDatabase.create("end", sql: "CREATE TABLE t (id int);")
        defer { Task { await db.drop() } }
        // pg_dump runs after the start is recorded: the wrapper makes the
        // state directory immutable, so the end cannot be (no journal).
        let fx = try WrappedDumpFixture(database: db.url, hook: "/usr/bin/chattr +i @STATE@")
        defer { fx.remove() }
        let run = try await CLI.run(["run", "-c", fx.config, "db"], env: ["CAIRN_LOG_LEVEL": "critical"])
        #expect(run.status == ErrorCode.io.exitStatus, "\(run.stderr)")
        #expect(run.stdout.contains("backup "), "\(run.stdout)")         // the outcome, as after any run
        #expect(fx.manifests() == 1)                                      // and the backup is complete
        #expect(run.stderr.hasPrefix("cairn: error: run of db succeeded (backup "), "\(run.stderr)")
        #expect(run.stderr.contains("but its end is not in the history: state database \(fx.stateDir)/cairn.sqlite: cannot record the end of run"), "\(run.stderr)")
        #expect(run.stderr.split(separator: "\n").count == 1)
    }
}
