import Foundation
import Testing
import Core
@testable import State

func tempStateDir() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("cairn-state-\(UUID().uuidString)").path
}

@Suite struct StateTests {
    @Test func recordsRunsAndReadsHistoryNewestFirst() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try StateStore(stateDir: dir)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let a = try s.start(job: "db", trigger: "manual", at: t0)
        try s.finish(id: a, result: .ok, bytes: 123, backupID: "B1", at: t0.addingTimeInterval(5))
        let b = try s.start(job: "db", trigger: "schedule", scheduledAt: t0.addingTimeInterval(60), at: t0.addingTimeInterval(61))
        try s.finish(id: b, result: .failed, error: "pg_dump exited with status 1", at: t0.addingTimeInterval(62))
        _ = try s.start(job: "other", trigger: "manual", at: t0)
        let h = try s.history(job: "db")
        #expect(h.map(\.id) == [b, a])
        #expect(h[0].result == .failed)
        #expect(h[0].error == "pg_dump exited with status 1")
        #expect(h[1].bytes == 123)
        #expect(h[1].backupID == "B1")
        #expect(h[1].duration == 5)
        let latest = try s.latestRuns()
        #expect(latest["db"]?.id == b)
        #expect(latest["other"]?.result == .running)
        #expect(try s.history(job: "db", limit: 1).count == 1)
    }

    @Test func historySurvivesReopeningAndMigrationsAreIdempotent() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let id = try StateStore(stateDir: dir).start(job: "db", trigger: "manual")
        let again = try StateStore(stateDir: dir)
        #expect(try again.history(job: "db").map(\.id) == [id])
    }

    @Test func aJobLockIsExclusive() throws {
        let dir = tempStateDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var first: JobLock? = try JobLock(stateDir: dir, job: "db")
        #expect(first != nil)
        do {
            _ = try JobLock(stateDir: dir, job: "db")
            Issue.record("expected the lock to be held")
        } catch let e as CairnError {
            #expect(e.code == .busy)
        }
        _ = try JobLock(stateDir: dir, job: "other")
        first = nil
        _ = try JobLock(stateDir: dir, job: "db")
    }

    @Test func anUnwritableStateDirIsAClearError() throws {
        do {
            _ = try StateStore(stateDir: "/proc/cairn-no-such-dir")
            Issue.record("expected an error")
        } catch let e as CairnError {
            #expect(e.code == .io)
            #expect(e.message.contains("/proc/cairn-no-such-dir"))
        }
    }
}
