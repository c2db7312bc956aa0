import Foundation
import Testing
import Core
import GRDB
@testable import State

@Suite struct CheckpointTests {
    func row(_ path: String, state: CheckpointFile.State = .pending, uploadId: String? = nil) -> CheckpointFile {
        CheckpointFile(path: path, size: 10, mtimeNs: 1_700_000_000_123_456_789, sha256: "ab", md5: "cd", state: state,
                       uploadId: uploadId, partSize: uploadId == nil ? nil : 5 << 20, key: "media/" + path,
                       etag: nil, contentType: "image/jpeg", error: nil, updatedAt: Date(timeIntervalSince1970: 1_800_000_000))
    }

    @Test func rowsRoundTripAndSurviveReopening() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CheckpointStore(stateDir: dir, job: "media")
        #expect(store.path == dir + "/migrate/media.sqlite")
        var a = row("a b+c%#?é.jpg", state: .done)
        a.etag = "\"e1\""
        try store.put(a)
        try store.put(row("x/y.png", state: .failed))
        let again = try CheckpointStore(stateDir: dir, job: "media")
        let all = try again.allFiles()
        #expect(all.count == 2)
        #expect(all["a b+c%#?é.jpg"] == a)
        #expect(try again.files(in: .done).map(\.path) == ["a b+c%#?é.jpg"])
        #expect(try again.counts() == [.done: 1, .failed: 1])
        // replacing keeps one row per path
        a.state = .failed
        try again.put(a)
        #expect(try again.counts() == [.failed: 2])
    }

    @Test func partsBelongToTheirUploadAndAreForgottenWhenItChanges() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CheckpointStore(stateDir: dir, job: "media")
        try store.put(row("big.mp4", state: .uploading, uploadId: "U1"))
        #expect(try store.addPart("big.mp4", uploadId: "U1", CheckpointPart(partNumber: 2, etag: "\"p2\"", size: 5)))
        #expect(try store.addPart("big.mp4", uploadId: "U1", CheckpointPart(partNumber: 1, etag: "\"p1\"", size: 5)))
        // a part of an upload the row no longer has is not recorded
        #expect(try store.addPart("big.mp4", uploadId: "OLD", CheckpointPart(partNumber: 3, etag: "\"x\"", size: 5)) == false)
        #expect(try store.parts("big.mp4").map(\.partNumber) == [1, 2])
        // same upload id: parts stay (a failure recorded on the row keeps the upload resumable)
        var failed = row("big.mp4", state: .failed, uploadId: "U1")
        failed.error = "UploadPart: SlowDown"
        try store.put(failed)
        #expect(try store.parts("big.mp4").count == 2)
        try store.retainParts("big.mp4", [2])
        #expect(try store.parts("big.mp4").map(\.partNumber) == [2])
        // a new upload id (or none) forgets the old parts
        try store.put(row("big.mp4", state: .uploading, uploadId: "U2"))
        #expect(try store.parts("big.mp4").isEmpty)
    }

    @Test func usesWALAndNamedMigrations() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try CheckpointStore(stateDir: dir, job: "media")
        let q = try DatabaseQueue(path: dir + "/migrate/media.sqlite")
        let (mode, applied) = try q.read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"),
             try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"))
        }
        #expect(mode == "wal")
        #expect(applied == ["v1-files-parts"])
    }
}
