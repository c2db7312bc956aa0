import Config
import Foundation
import Testing
@testable import Scheduler

@Suite struct DaemonPolicyTests {
    /// Every kind is scheduled like the others (verify and retention included); disabled units are not.
    @Test func everyKindIsScheduled() throws {
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
        try "kind = \"verify\"\nschedule = \"0 4 * * 0\"\n[verify]\nbackup_job = \"db\"\nscratch_database_url = \"postgres://127.0.0.1/postgres\"\n"
            .write(toFile: dir + "/jobs/check.toml", atomically: true, encoding: .utf8)
        try "kind = \"retention\"\nschedule = \"15 5 * * *\"\nenabled = false\n[retention]\nbackup_job = \"db\"\n"
            .write(toFile: dir + "/jobs/prune.toml", atomically: true, encoding: .utf8)
        let config = try Daemon.loader.load(path: dir + "/cairn.toml")
        let policies = Dictionary(uniqueKeysWithValues: try Daemon.policies(config).map { ($0.name, $0) })
        #expect(policies["db"]?.enabled == true)
        #expect(policies["check"]?.enabled == true)
        #expect(policies["prune"]?.enabled == false)
        let planner = Planner(policies: Array(policies.values), maxConcurrent: 1, now: Date(), seed: 1)
        #expect(Set(planner.upcoming.map(\.job)) == ["db", "check"])
    }
}
