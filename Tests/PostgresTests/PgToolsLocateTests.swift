import Core
import Foundation
@testable import Postgres
import Testing

/// `PostgresTools.locate`: Debian's pg_wrapper in PATH is replaced by the
/// newest versioned binary; anything else in PATH is used as it is.
@Suite struct PgToolsLocateTests {
    /// A scratch tree: `base/<v>/bin/pg_dump` for each version, a fake
    /// `share/postgresql-common/pg_wrapper`, and `bin/` for PATH.
    struct Tree {
        let root: String
        var base: String { root + "/lib/postgresql" }
        var bin: String { root + "/bin" }

        init(versions: [String]) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("locate-\(UUID().uuidString)").path
            let fm = FileManager.default
            try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/share/postgresql-common", withIntermediateDirectories: true)
            try Self.executable(root + "/share/postgresql-common/pg_wrapper")
            for v in versions {
                try fm.createDirectory(atPath: "\(root)/lib/postgresql/\(v)/bin", withIntermediateDirectories: true)
                try Self.executable("\(root)/lib/postgresql/\(v)/bin/pg_dump")
            }
        }

        static func executable(_ path: String) throws {
            try "#!/bin/sh\nexit 0\n".write(toFile: path, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    @Test func theWrapperInPathGivesTheNewestVersionedBinary() throws {
        let t = try Tree(versions: ["9.6", "13", "15", "README"])
        defer { t.remove() }
        try FileManager.default.createSymbolicLink(atPath: t.bin + "/pg_dump",
                                                   withDestinationPath: "../share/postgresql-common/pg_wrapper")
        #expect(PostgresTools.isDebianWrapper(t.bin + "/pg_dump"))
        let found = try PostgresTools.locate("pg_dump", configured: nil, searchPath: t.bin, base: t.base)
        #expect(found == t.base + "/15/bin/pg_dump")
    }

    @Test func anotherProgramInPathIsUsedAsItIs() throws {
        let t = try Tree(versions: ["15"])
        defer { t.remove() }
        try Tree.executable(t.bin + "/pg_dump")
        #expect(!PostgresTools.isDebianWrapper(t.bin + "/pg_dump"))
        #expect(try PostgresTools.locate("pg_dump", configured: nil, searchPath: t.bin, base: t.base) == t.bin + "/pg_dump")
    }

    @Test func theWrapperWithoutVersionedBinariesIsKept() throws {
        let t = try Tree(versions: [])
        defer { t.remove() }
        try FileManager.default.createSymbolicLink(atPath: t.bin + "/pg_dump",
                                                   withDestinationPath: "../share/postgresql-common/pg_wrapper")
        #expect(try PostgresTools.locate("pg_dump", configured: nil, searchPath: t.bin, base: t.base) == t.bin + "/pg_dump")
    }

    @Test func notInPathFallsBackToVersionedThenFails() throws {
        let t = try Tree(versions: ["13", "16"])
        defer { t.remove() }
        #expect(try PostgresTools.locate("pg_dump", configured: nil, searchPath: t.bin, base: t.base) == t.base + "/16/bin/pg_dump")
        let error = #expect(throws: CairnError.self) {
            try PostgresTools.locate("pg_restore", configured: nil, searchPath: t.bin, base: t.base)
        }
        #expect(error?.message.contains("pg_restore not found in PATH") == true)
    }

    @Test func aConfiguredPathWinsEvenOverTheWrapper() throws {
        let t = try Tree(versions: ["15"])
        defer { t.remove() }
        try FileManager.default.createSymbolicLink(atPath: t.bin + "/pg_dump",
                                                   withDestinationPath: "../share/postgresql-common/pg_wrapper")
        #expect(try PostgresTools.locate("pg_dump", configured: t.bin + "/pg_dump", searchPath: t.bin, base: t.base) == t.bin + "/pg_dump")
    }
}
