import Core
import Foundation
import Testing
@testable import Jobs

@Suite struct SpoolSpaceChecks {
    @Test func aSpoolLargerThanTheFreeSpaceIsRefusedBeforeAByteIsWritten() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let free = try SpoolSpace.available(dir)
        #expect(free > 0)
        do {
            try SpoolSpace.require(free + 1, in: dir)
            Issue.record("expected refusal")
        } catch let e as CairnError {
            #expect(e.code == .io && e.message.contains("restore_jobs = 1"))
        }
        try SpoolSpace.require(1 << 20, in: dir)   // a MiB (and the 64 MiB margin) fits
        #expect(throws: CairnError.self) { _ = try SpoolSpace.available("/nonexistent-\(UUID())") }
    }
}
