import Foundation
import GRDB
import State
import Testing

/// cairn.service runs as its own user under `ProtectProc=invisible`: /proc
/// shows it no process of another user. A `cairn run` by root, still
/// running, must not be marked interrupted when the daemon (or any other
/// unprivileged cairn) opens the state; a run whose process is gone still is.
/// Reproduced without systemd: a private mount namespace with its own
/// `/proc` mounted `hidepid=invisible`, and `cairn status` run as nobody in it.
@Suite struct HiddenProcessTests {
    static let tools = ["/usr/bin/unshare", "/usr/bin/setpriv", "/bin/chown"]
    static let missing: String? = {
        if geteuid() != 0 { return "not root (mounting a private /proc needs root)" }
        return tools.first { !FileManager.default.isExecutableFile(atPath: $0) }.map { "\($0) is not installed (util-linux)" }
    }()
    static let skipNote = Comment(rawValue: "SKIPPED, NOT PASSED — a run hidden by hidepid=invisible was not tested: " + (missing ?? ""))

    @Test(.enabled(if: missing == nil, skipNote))
    func aRootRunHiddenFromProcIsNotMarkedInterruptedByAnUnprivilegedCairn() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-hidden-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "state_dir = \"\(dir)/state\"\njobs_dir = \"jobs\"\n".write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)

        // Two runs "in progress": one by this process (root, alive), one by a
        // process that has exited (its pid is free: kill(pid, 0) says ESRCH).
        let state = try StateStore(stateDir: dir + "/state")
        let live = try state.start(job: "db", trigger: "manual")
        let gone = try state.start(job: "db", trigger: "manual")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let me = try #require(ProcessIdentity.current)
        let exited = ProcessIdentity(bootID: me.bootID, pid: child.processIdentifier, startTicks: me.startTicks)
        try await DatabaseQueue(path: dir + "/state/cairn.sqlite").write { db in
            try db.execute(sql: "UPDATE runs SET process = ? WHERE id = ?", arguments: [exited.description, gone])
        }
        #expect(try await CLI.run(["-R", "nobody:nogroup", dir], executable: "/bin/chown").status == 0)

        // As nobody, with this process hidden from its /proc.
        let script = """
            mount -t proc -o hidepid=invisible proc /proc || exit 90
            setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c 'test ! -e /proc/\(getpid())' || exit 91
            exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$0" status -c "$1"
            """
        let r = try await CLI.run(["-m", "/bin/sh", "-c", script, try CLI.binary, dir + "/cairn.toml"], executable: "/usr/bin/unshare")
        try #require(r.status == 0, "exit \(r.status): \(r.stderr)")

        // Read as stored (opening a StateStore here, as root, would mark dead runs itself).
        let rows = try await DatabaseQueue(path: dir + "/state/cairn.sqlite").read { db in
            try Row.fetchAll(db, sql: "SELECT id, result, error FROM runs").map { ($0["id"] as Int64, $0["result"] as String, $0["error"] as String?) }
        }
        let byID = Dictionary(uniqueKeysWithValues: rows.map { ($0.0, ($0.1, $0.2)) })
        #expect(byID[gone]?.0 == "failed" && byID[gone]?.1?.hasPrefix("interrupted") == true,
                "nobody's cairn did not mark the run of the exited process: \(rows)")
        #expect(byID[live]?.0 == "running", "the hidden live run was marked: \(rows)")
    }
}
