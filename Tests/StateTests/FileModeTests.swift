import Foundation
import Testing
import Core
import GRDB
@testable import State

func mode(_ path: String) -> mode_t? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return st.st_mode & 0o7777
}

/// Files and directories Cairn creates are its own: 0600 and 0700, whatever the umask.
@Suite struct FileModeTests {
    @Test func stateDatabaseLocksAndMissingParentsAreOwnerOnly() throws {
        let root = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let dir = root + "/var/lib/cairn"
        let store = try StateStore(stateDir: dir)
        let id = try store.start(job: "db", trigger: "manual")
        try store.finish(id: id, result: .ok)
        let lock = try JobLock(stateDir: dir, job: "db")
        for d in [root, root + "/var", root + "/var/lib", dir, dir + "/locks"] { #expect(mode(d) == 0o700, "\(d)") }
        for f in [dir + "/cairn.sqlite", dir + "/locks/db.lock"] { #expect(mode(f) == 0o600, "\(f)") }
        withExtendedLifetime(lock) {}
    }

    @Test func checkpointDatabaseAndItsWALFilesAreOwnerOnly() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CheckpointStore(stateDir: dir, job: "media")
        let path = CheckpointStore.path(stateDir: dir, job: "media")
        #expect(mode(dir) == 0o700)
        #expect(mode(dir + "/migrate") == 0o700)
        #expect(mode(path) == 0o600)
        // The connection is open: WAL mode keeps -wal and -shm next to the database.
        #expect(mode(path + "-wal") == 0o600)
        #expect(mode(path + "-shm") == 0o600)
        withExtendedLifetime(store) {}
    }

    @Test func anExistingDirectoryKeepsItsMode() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o750)
        _ = try StateStore(stateDir: dir)
        #expect(mode(dir) == 0o750)
        #expect(mode(dir + "/cairn.sqlite") == 0o600)
    }

    /// Root ignores permission bits: an immutable state directory (chattr +i)
    /// stops the journal SQLite needs for every write.
    @Test func aWriteThatFailsIsAStateErrorWithTheSQLiteCause() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try StateStore(stateDir: dir)
        let id = try store.start(job: "db", trigger: "manual")
        try chattr("+i", dir)
        defer { try? chattr("-i", dir) }
        do {
            try store.finish(id: id, result: .ok)
            Issue.record("expected the write to fail")
        } catch let e as CairnError {
            #expect(e.code == .io)
            #expect(e.message == "state database \(dir)/cairn.sqlite: cannot record the end of run \(id)")
            let cause = try #require(e.cause as? DatabaseError)
            #expect(cause.resultCode == .SQLITE_CANTOPEN || cause.resultCode == .SQLITE_READONLY || cause.resultCode == .SQLITE_IOERR)
        }
    }
}

/// Runs chattr (tests run as root, where mode bits do not stop writes).
func chattr(_ flag: String, _ path: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
    p.arguments = [flag, path]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw CairnError(.io, "chattr \(flag) \(path) failed") }
}
