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
        #expect(applied == ["v1-files-parts", "v2-generation-mapping-stamp"])
    }

    @Test func everyChangeToTheFilesBumpsTheGenerationAndReadsDoNot() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CheckpointStore(stateDir: dir, job: "media")
        let g0 = try store.generation()
        try store.put(row("a.jpg", state: .done))
        let g1 = try store.generation()
        #expect(g1 > g0)
        // reads change nothing
        _ = try store.allFiles()
        _ = try store.quickRows(from: "a", to: "z", keyPrefix: "media/")
        var done: [CheckpointStore.DoneRow] = []
        #expect(try store.forEachDone { done.append($0) } == g1)
        #expect(done == [CheckpointStore.DoneRow(path: "a.jpg", key: "media/a.jpg", size: 10, sha256: "ab", contentType: "image/jpeg")])
        #expect(try store.generation() == g1)
        // an update (same row again), a part, another row: each bumps it
        try store.put(row("a.jpg", state: .done))
        let g2 = try store.generation()
        #expect(g2 > g1)
        try store.put(row("big.mp4", state: .uploading, uploadId: "U1"))
        let g3 = try store.generation()
        #expect(g3 > g2)
        #expect(try store.addPart("big.mp4", uploadId: "U1", CheckpointPart(partNumber: 1, etag: "\"p1\"", size: 5)))
        #expect(try store.generation() > g3)
        // and survives reopening
        let g4 = try store.generation()
        #expect(try CheckpointStore(stateDir: dir, job: "media").generation() == g4)
    }

    @Test func quickRowsReadTheRangeWithTheUnchangedTestsColumns() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CheckpointStore(stateDir: dir, job: "media")
        try store.put(row("a/1.jpg", state: .done))
        try store.put(row("a/2.jpg", state: .failed))
        var other = row("a/3.jpg", state: .done)
        other.key = "elsewhere/a/3.jpg"
        try store.put(other)
        try store.put(row("b/é.jpg", state: .done))
        try store.put(row("c.jpg", state: .done))
        // byte order: "a/…" < "b/é.jpg" < "c.jpg"; the range is inclusive
        let q = try store.quickRows(from: "a/1.jpg", to: "b/é.jpg", keyPrefix: "media/")
        #expect(Set(q.keys) == ["a/1.jpg", "a/2.jpg", "a/3.jpg", "b/é.jpg"])
        #expect(q["a/1.jpg"] == CheckpointStore.QuickRow(size: 10, mtimeNs: 1_700_000_000_123_456_789, doneAtKey: true))
        #expect(q["a/2.jpg"]?.doneAtKey == false)   // not done
        #expect(q["a/3.jpg"]?.doneAtKey == false)   // done, but at another key
        #expect(q["b/é.jpg"]?.doneAtKey == true)
        #expect(try store.quickRows(from: "a/1.jpg", to: "b/é.jpg", keyPrefix: "other/")["a/1.jpg"]?.doneAtKey == false)
    }

    @Test func theMappingStampRoundTripsAndIsReplaced() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CheckpointStore(stateDir: dir, job: "media")
        #expect(try store.mappingStamp() == nil)
        // device and inode are unsigned: the high bit survives the signed column
        let file = FileIdentity(device: UInt64.max - 1, inode: 1 << 63, size: 123, mtimeNs: 1_700_000_000_000_000_001, ctimeNs: 1_700_000_000_000_000_002)
        let s = MappingStamp(path: "/m/map.jsonl", generation: 42, basis: "mapping-v1\ns3\ncairn/\nhttp://x/b/cairn/", entries: 7, file: file)
        try store.setMappingStamp(s)
        #expect(try CheckpointStore(stateDir: dir, job: "media").mappingStamp() == s)
        var t = s
        t.generation = 43
        t.path = "/m/other.jsonl"
        try store.setMappingStamp(t)
        #expect(try store.mappingStamp() == t)
        // recording the stamp is not a change of the files
        #expect(try store.generation() == 0)
    }

    @Test func aMappingStampIsCurrentOnlyForTheSameFileRowsAndBasis() {
        let file = FileIdentity(device: 1, inode: 2, size: 3, mtimeNs: 4, ctimeNs: 5)
        let s = MappingStamp(path: "/m/map.jsonl", generation: 9, basis: "B", entries: 1, file: file)
        #expect(s.isCurrent(path: "/m/map.jsonl", generation: 9, basis: "B", onDisk: file))
        #expect(!s.isCurrent(path: "/m/map.jsonl", generation: 9, basis: "B", onDisk: nil))          // missing
        #expect(!s.isCurrent(path: "/m/other.jsonl", generation: 9, basis: "B", onDisk: file))      // another path
        #expect(!s.isCurrent(path: "/m/map.jsonl", generation: 10, basis: "B", onDisk: file))       // rows changed
        #expect(!s.isCurrent(path: "/m/map.jsonl", generation: 9, basis: "C", onDisk: file))        // storage address changed
        for changed in [FileIdentity(device: 9, inode: 2, size: 3, mtimeNs: 4, ctimeNs: 5),
                        FileIdentity(device: 1, inode: 9, size: 3, mtimeNs: 4, ctimeNs: 5),
                        FileIdentity(device: 1, inode: 2, size: 9, mtimeNs: 4, ctimeNs: 5),
                        FileIdentity(device: 1, inode: 2, size: 3, mtimeNs: 9, ctimeNs: 5),
                        FileIdentity(device: 1, inode: 2, size: 3, mtimeNs: 4, ctimeNs: 9)] {
            #expect(!s.isCurrent(path: "/m/map.jsonl", generation: 9, basis: "B", onDisk: changed), "\(changed)")
        }
    }

    @Test func fileIdentityIsOfTheRegularFileItselfNotASymlink() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let f = dir + "/f"
        try Data("abc".utf8).write(to: URL(fileURLWithPath: f))
        let id = try #require(FileIdentity.of(path: f))
        #expect(id.size == 3)
        #expect(symlink(f, dir + "/l") == 0)
        #expect(FileIdentity.of(path: dir + "/l") == nil)
        #expect(FileIdentity.of(path: dir) == nil)
        #expect(FileIdentity.of(path: dir + "/missing") == nil)
    }
}
