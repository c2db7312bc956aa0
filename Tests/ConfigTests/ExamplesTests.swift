import Foundation
import Testing
@testable import Config

@Suite struct ShippedExamples {
    static var repoRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }   // Tests/ConfigTests/ExamplesTests.swift
        return url.path
    }

    @Test func exampleConfigurationLoadsWithoutIssues() throws {
        let path = Self.repoRoot + "/examples/cairn.toml"
        let issues = ConfigLoader.check(path: path)
        #expect(issues.isEmpty, "\(issues.map(\.description))")
        let c = try ConfigLoader.load(path: path)
        #expect(c.jobs.keys.sorted() == ["marketplace-db", "marketplace-retention", "marketplace-verify", "uploads-migrate"])
        #expect(c.storages["local"]?.location == .directory(path: "/var/lib/cairn/backups"))
        #expect(c.jobs["marketplace-db"]?.schedule == "30 2 * * *")
        #expect(c.jobs["marketplace-db"]?.timeZone.identifier == "Africa/Accra")
        #expect(c.jobs["marketplace-db"]?.backup?.database == "postgres:///marketplace?host=/var/run/postgresql")
        #expect(c.jobs["marketplace-retention"]?.retention?.keepDays == 30)
        #expect(c.jobs["marketplace-retention"]?.retention?.keepLast == 7)
        #expect(c.jobs["uploads-migrate"]?.enabled == false)
        #expect(c.jobs["uploads-migrate"]?.migrate?.source == "/srv/marketplace/uploads")
        #expect(c.jobs["uploads-migrate"]?.migrate?.prefix == "media")
        #expect(c.jobs["marketplace-verify"]?.storage == "local")
    }

    @Test func theCommentedS3ExampleIsValidToo() throws {
        // Uncommenting the R2 block (and switching the default to it) must give a valid config.
        let text = try String(contentsOfFile: Self.repoRoot + "/examples/cairn.toml", encoding: .utf8)
        var lines: [String] = []
        var inBlock = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# [storage.r2]") { inBlock = true }
            if inBlock && line.isEmpty { inBlock = false }
            if inBlock && line.hasPrefix("# ") && !line.hasPrefix("# # ") { lines.append(String(line.dropFirst(2))) }
            else { lines.append(String(line)) }
        }
        let main = lines.joined(separator: "\n").replacingOccurrences(of: "storage = \"local\"", with: "storage = \"r2\"")
        let f = try ConfigFixture(main: main)
        let issues = ConfigLoader.check(path: f.configPath)
        #expect(issues.isEmpty, "\(issues.map(\.description))")
        let c = try ConfigLoader.load(path: f.configPath)
        #expect(c.storages["r2"]?.location == .s3(bucket: "marketplace-backups", prefix: "cairn"))
        #expect(c.defaults.storage == "r2")
    }
}
