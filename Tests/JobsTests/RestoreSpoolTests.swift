import Core
import Foundation
import Testing
@testable import Jobs

@Suite struct RestoreSpoolChecks {
    private func scratchDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        return dir
    }

    @Test func writesTheStreamToAPrivateFileThatRemoveDeletes() async throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try RestoreSpool(directory: dir, id: "20261205T120000Z-abcd", size: 3 << 20, remedy: "r")
        #expect(spool.path.hasPrefix(dir + "/cairn-restore-20261205T120000Z-abcd-"))
        let ch = ByteChannel(capacity: 1 << 20)
        let parts = (0..<3).map { i in Data(repeating: UInt8(i + 1), count: (1 << 20) + i) }
        async let written: Void = spool.write(ch)
        for p in parts { try await ch.send(p) }
        ch.finish()
        try await written
        #expect(try Data(contentsOf: URL(fileURLWithPath: spool.path)) == parts.reduce(Data(), +))
        let mode = try FileManager.default.attributesOfItem(atPath: spool.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        spool.remove()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test func aStreamThatFailsCancelsTheWriteAndRemoveLeavesNothing() async throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try RestoreSpool(directory: dir, id: "x", size: 1, remedy: "r")
        let ch = ByteChannel(capacity: 1 << 20)
        let written = Task { try await spool.write(ch) }
        try await ch.send(Data(repeating: 7, count: 1000))
        ch.finish(throwing: CairnError(.integrity, "tag mismatch"))
        let error = await #expect(throws: CairnError.self) { try await written.value }
        #expect(error?.code == .integrity)
        spool.remove()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test func aSpoolLargerThanTheFreeSpaceIsRefusedWithTheRemedyBeforeAFileIsMade() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let free = try SpoolSpace.available(dir)
        do {
            _ = try RestoreSpool(directory: dir, id: "x", size: free + 1, remedy: "restore without --jobs to stream")
            Issue.record("expected refusal")
        } catch let e as CairnError {
            #expect(e.code == .io && e.message.hasSuffix(": restore without --jobs to stream"), "\(e.message)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
