import Config
import Foundation
import Testing
@testable import Scheduler

@Suite struct DaemonPolicyTests {
    /// Jobs of a kind this version cannot run are not scheduled (instead of failing at every instant).
    @Test func unrunnableKindsAreNotScheduled() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-pol-\(UUID().uuidString.prefix(8))").path
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
        try "kind = \"backup\"\nschedule = \"0 3 * * *\"\n[backup]\ndatabase = \"postgres:///x\"\n"
            .write(toFile: dir + "/jobs/db.toml", atomically: true, encoding: .utf8)
        // Retention units do not run yet (verify units do).
        try "kind = \"retention\"\nschedule = \"0 4 * * 0\"\n[retention]\nbackup_job = \"db\"\n"
            .write(toFile: dir + "/jobs/check.toml", atomically: true, encoding: .utf8)
        let config = try Daemon.loader.load(path: dir + "/cairn.toml")
        let policies = Dictionary(uniqueKeysWithValues: try Daemon.policies(config).map { ($0.name, $0) })
        #expect(policies["db"]?.enabled == true)
        #expect(policies["check"]?.enabled == false)
        let planner = Planner(policies: Array(policies.values), maxConcurrent: 1, now: Date(), seed: 1)
        #expect(planner.upcoming.map(\.job) == ["db"])
    }
}
