import Config
import Foundation
import Testing
@testable import Scheduler

@Suite struct RetentionSchedulingTests {
    /// A retention unit with a schedule is scheduled like a backup.
    @Test func retentionUnitsAreScheduled() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-ret-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        state_dir = "\(dir)/state"
        [storage.local]
        url = "file://\(dir)/b"
        [keys]
        active = "k"
        [keys.files]
        k = "\(dir)/k.key"
        """.write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)
        try "kind = \"backup\"\n[backup]\ndatabase = \"postgres:///x\"\n".write(toFile: dir + "/jobs/db.toml", atomically: true, encoding: .utf8)
        try "kind = \"retention\"\nschedule = \"15 5 * * *\"\n[retention]\nbackup_job = \"db\"\n"
            .write(toFile: dir + "/jobs/db-retention.toml", atomically: true, encoding: .utf8)
        let config = try Daemon.loader.load(path: dir + "/cairn.toml")
        let policies = try Daemon.policies(config)
        #expect(policies.first { $0.name == "db-retention" }?.enabled == true)
        let planner = Planner(policies: policies, maxConcurrent: 1, now: Date(), seed: 1)
        #expect(planner.upcoming.map(\.job) == ["db-retention"])
    }
}
