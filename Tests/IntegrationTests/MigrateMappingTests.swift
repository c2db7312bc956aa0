import Foundation
import Testing
import Core
import Config
import State
@testable import Jobs

/// The mapping file is rewritten only when something it depends on changed:
/// the checkpoint's rows, the file itself (deleted, replaced, edited) or its path.
@Suite struct MigrateMappingTests {
    func job(_ fx: MigrateFixture, mapping: String) throws -> MigrateJob {
        let spec = MigrateSpec(source: fx.src, prefix: "media", concurrency: 4, multipartThreshold: 8 << 20, partSize: 5 << 20)
        var j = MigrateJob(name: "media", spec: spec, store: try fx.store(), stateDir: fx.stateDir, objectLock: nil)
        j.mappingFile = mapping
        return j
    }

    func lines(_ path: String) throws -> [MappingEntry] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(MappingEntry.self, from: Data($0.utf8))
        }
    }

    @Test func mappingFileIsRewrittenOnlyWhenItOrTheRowsChanged() async throws {
        let fx = try MigrateFixture(tag: "mapfile")
        defer { fx.remove() }
        let paths = try fx.smallTree(12, seed: 21)
        let map = fx.dir + "/out/map.jsonl"
        let first = try await job(fx, mapping: map).run()
        #expect(first.uploaded == 12 && first.mappingEntries == 12 && first.mappingFile == map)
        let text = try String(contentsOfFile: map, encoding: .utf8)
        #expect(try lines(map).map(\.path) == paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        let written = try #require(FileIdentity.of(path: map))

        // a true no-op: the file is left alone (same inode, mtime and ctime), the report still names it
        let noop = try await job(fx, mapping: map).run()
        #expect(noop.unchanged == 12 && noop.uploaded == 0)
        #expect(noop.mappingFile == map && noop.mappingEntries == 12)
        #expect(FileIdentity.of(path: map) == written)

        // deleted: written again, same lines
        #expect(unlink(map) == 0)
        let afterDelete = try await job(fx, mapping: map).run()
        #expect(afterDelete.mappingEntries == 12)
        #expect(try String(contentsOfFile: map, encoding: .utf8) == text)
        let rewritten = try #require(FileIdentity.of(path: map))

        // edited in place (same inode, a line added): rewritten
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: map))
        try h.seekToEnd()
        try h.write(contentsOf: Data("{\"path\":\"forged\"}\n".utf8))
        try h.close()
        #expect(FileIdentity.of(path: map)?.inode == rewritten.inode)
        _ = try await job(fx, mapping: map).run()
        #expect(try String(contentsOfFile: map, encoding: .utf8) == text)

        // replaced by a symlink: replaced by the file again, the symlink's target untouched
        let decoy = fx.dir + "/decoy"
        try Data("decoy".utf8).write(to: URL(fileURLWithPath: decoy))
        #expect(unlink(map) == 0 && symlink(decoy, map) == 0)
        _ = try await job(fx, mapping: map).run()
        #expect(FileIdentity.of(path: map) != nil)   // a regular file again
        #expect(try String(contentsOfFile: map, encoding: .utf8) == text)
        #expect(try String(contentsOfFile: decoy, encoding: .utf8) == "decoy")

        // a source file changed: uploaded again, the file rewritten with its new size
        let before = try #require(FileIdentity.of(path: map))
        try fx.write(paths[3], testData(3000, seed: 999))
        let changed = try await job(fx, mapping: map).run()
        #expect(changed.uploaded == 1 && changed.unchanged == 11)
        #expect(FileIdentity.of(path: map) != before)
        #expect(try lines(map).first { $0.path == paths[3] }?.size == 3000)
        let settled = try #require(FileIdentity.of(path: map))
        _ = try await job(fx, mapping: map).run()
        #expect(FileIdentity.of(path: map) == settled)

        // another path for the mapping file (--mapping): written there
        let other = fx.dir + "/other.jsonl"
        let moved = try await job(fx, mapping: other).run()
        #expect(moved.mappingFile == other && moved.mappingEntries == 12)
        #expect(try String(contentsOfFile: other, encoding: .utf8) == String(contentsOfFile: map, encoding: .utf8))

        // writing the mapping file on request (`writeMappingFile`) always rewrites it
        let otherWritten = try #require(FileIdentity.of(path: other))
        #expect(try await job(fx, mapping: other).writeMappingFile() == 12)
        #expect(FileIdentity.of(path: other) != otherWritten)
    }
}
