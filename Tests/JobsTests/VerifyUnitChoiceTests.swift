import Config
import Core
import Foundation
import Testing
@testable import Jobs

@Suite struct VerifyUnitChoices {
    func config(_ jobs: [String: String]) throws -> (CairnConfig, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-vchoice-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        try "state_dir = \"\(dir)/state\"\n[storage.local]\nurl = \"file://\(dir)/b\"\n[keys]\nactive = \"k\"\n[keys.files]\nk = \"\(dir)/k.key\"\n"
            .write(toFile: dir + "/cairn.toml", atomically: true, encoding: .utf8)
        for (name, text) in jobs { try text.write(toFile: dir + "/jobs/\(name).toml", atomically: true, encoding: .utf8) }
        return (try ConfigLoader.load(path: dir + "/cairn.toml"), dir)
    }
    let backup = "kind = \"backup\"\n[backup]\ndatabase = \"postgres:///x\"\n"
    func verify(_ of: String) -> String { "kind = \"verify\"\n[verify]\nbackup_job = \"\(of)\"\nscratch_database_url = \"postgres:///postgres\"\n" }

    @Test func aVerifyUnitABackupJobVerifiedByOneOrTheOnlyUnit() throws {
        let (c, dir) = try config(["a": backup, "b": backup, "va": verify("a"), "vb1": verify("b"), "vb2": verify("b")])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try VerifyUnitChoice.choose("vb1", in: c).name == "vb1")
        #expect(try VerifyUnitChoice.choose("a", in: c).name == "va")
        #expect(throws: CairnError.self) { try VerifyUnitChoice.choose("b", in: c) }     // two units verify b
        #expect(throws: CairnError.self) { try VerifyUnitChoice.choose(nil, in: c) }     // three units
        #expect(throws: CairnError.self) { try VerifyUnitChoice.choose("nope", in: c) }
        let (one, dir2) = try config(["a": backup, "va": verify("a")])
        defer { try? FileManager.default.removeItem(atPath: dir2) }
        #expect(try VerifyUnitChoice.choose(nil, in: one).name == "va")
        do {
            _ = try VerifyUnitChoice.choose("b", in: c)
        } catch let e as CairnError {
            #expect(e.code == .usage && e.message.contains("vb1, vb2"))
        }
    }
}
