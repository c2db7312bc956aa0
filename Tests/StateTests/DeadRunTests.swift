import Foundation
import GRDB
import Testing
@testable import State

/// A run whose process is gone (SIGKILL, crash, reboot) is marked
/// interrupted by whichever process opens the state next.
@Suite struct DeadRunTests {
    func tempDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("cairn-dead-\(UUID().uuidString.prefix(8))").path
    }

    @Test func processIdentityTellsALiveProcessFromAGoneOne() throws {
        let me = try #require(ProcessIdentity.current)
        #expect(me.isAlive)
        #expect(ProcessIdentity(me.description) == me)
        var reused = me
        reused.startTicks += 1               // the same pid, started at another time: another process
        #expect(!reused.isAlive)
        var rebooted = me
        rebooted.bootID = "00000000-0000-0000-0000-000000000000"
        #expect(!rebooted.isAlive)
        // A process that ran and ended.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        let child = ProcessIdentity.of(pid: p.processIdentifier)
        p.waitUntilExit()
        if let child { #expect(!child.isAlive) }   // (nil when it ended before /proc was read: gone either way)
        #expect(ProcessIdentity("garbage") == nil)
    }

    /// The daemon runs under `ProtectProc=invisible`: a root `cairn run` has no
    /// /proc entry it can read, but is not gone.
    @Test func aProcessHiddenFromProcIsNotTakenForGone() throws {
        // What /proc shows decides when it shows the pid.
        #expect(ProcessIdentity.isAlive(recorded: 7, seen: 7, probe: { Issue.record("probed"); return ESRCH }))
        #expect(!ProcessIdentity.isAlive(recorded: 7, seen: 8, probe: { Issue.record("probed"); return 0 }))
        // No /proc entry: kill(pid, 0) decides.
        #expect(!ProcessIdentity.isAlive(recorded: 7, seen: nil, probe: { ESRCH }))
        #expect(ProcessIdentity.isAlive(recorded: 7, seen: nil, probe: { EPERM }))   // another user's process, hidden
        #expect(ProcessIdentity.isAlive(recorded: 7, seen: nil, probe: { 0 }))
        // The real probe: this process exists, a reaped child does not.
        #expect(ProcessIdentity.signalProbe(pid: getpid()) == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        let pid = p.processIdentifier
        p.waitUntilExit()
        #expect(ProcessIdentity.signalProbe(pid: pid) == ESRCH)
        // pid 1 (init, root's): exists whatever this process may signal.
        #expect(ProcessIdentity.signalProbe(pid: 1) != ESRCH)
    }

    @Test func runsOfGoneProcessesAreMarkedInterruptedOnOpen() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = try StateStore(stateDir: dir)
        let live = try state.start(job: "db", trigger: "manual")          // this process: alive
        let gone = try state.start(job: "db", trigger: "manual")
        let legacy = try state.start(job: "db", trigger: "manual")
        var dead = try #require(ProcessIdentity.current)
        dead.startTicks += 1
        let queue = try DatabaseQueue(path: dir + "/cairn.sqlite")
        try queue.write { db in
            try db.execute(sql: "UPDATE runs SET process = ? WHERE id = ?", arguments: [dead.description, gone])
            try db.execute(sql: "UPDATE runs SET process = NULL WHERE id = ?", arguments: [legacy])
        }
        let reopened = try StateStore(stateDir: dir)
        let runs = Dictionary(uniqueKeysWithValues: try reopened.history(job: "db").map { ($0.id, $0) })
        #expect(runs[live]?.result == .running)
        #expect(runs[gone]?.result == .failed)
        #expect(runs[gone]?.error?.hasPrefix("interrupted") == true)
        #expect(runs[gone]?.finishedAt != nil)
        #expect(runs[legacy]?.result == .running)        // no process recorded: left to markInterrupted under the job's lock
        #expect(try reopened.markInterrupted(job: "db") == 2)
    }
}
