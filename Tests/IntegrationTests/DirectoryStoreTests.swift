import Foundation
import Testing
import Core
import Crypto
@testable import ObjectStore
#if canImport(Glibc)
import Glibc
#endif

/// A DirectoryStore on a fresh temporary directory, removed afterwards.
func withDirectoryStore(minimumPartSize: Int64 = 5 << 20,
                        _ body: (DirectoryStore, String) async throws -> Void) async throws {
    let root = FileManager.default.temporaryDirectory
        .appendingPathComponent("cairn-dirstore-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    try await body(DirectoryStore(root: root, minimumPartSize: minimumPartSize), root)
}

/// Every file and directory under `root`, relative, sorted.
func treeEntries(_ root: String) -> [String] {
    let e = FileManager.default.enumerator(atPath: root)
    var out: [String] = []
    while let p = e?.nextObject() as? String { out.append(p) }
    return out.sorted()
}

@Suite("DirectoryStore conforms to ObjectStore")
struct DirectoryStoreConformanceTests {
    func run(_ body: (ObjectStoreConformance) async throws -> Void) async throws {
        try await withDirectoryStore { store, _ in
            try await body(ObjectStoreConformance(store: store, prefix: "conformance/"))
        }
    }

    @Test func putGetHeadListDelete() async throws { try await run { try await $0.putGetHeadListDelete() } }
    @Test func rangeGet() async throws { try await run { try await $0.rangeGet() } }
    @Test func missingKeyIsNotFound() async throws { try await run { try await $0.missingKeyIsNotFound() } }
    @Test func oddKeysRoundTrip() async throws { try await run { try await $0.oddKeysRoundTrip() } }
    @Test func metadataRoundTrip() async throws { try await run { try await $0.metadataRoundTrip() } }
    @Test func multipartThreeParts() async throws { try await run { try await $0.multipartThreeParts() } }
    @Test func abortMultipart() async throws { try await run { try await $0.abortMultipart() } }
    @Test func listAndDeleteMany() async throws { try await run { try await $0.listAndDeleteMany(count: 2_500) } }
    @Test func largeStreamingGet() async throws { try await run { try await $0.largeStreamingGet() } }
    @Test func runAllWithAnEmptyPrefix() async throws {
        try await withDirectoryStore { store, _ in
            try await ObjectStoreConformance(store: store, prefix: "").runAll()
        }
    }
}

@Suite("DirectoryStore specifics")
struct DirectoryStoreTests {
    @Test func atomicPutLeavesNoTempFilesAndNoEmptyDirectories() async throws {
        try await withDirectoryStore { store, root in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<50 {
                    group.addTask { _ = try await store.put(key: "a/b/obj-\(i % 5)", data: ConformanceData.bytes(10_000 + i)) }
                }
                try await group.waitForAll()
            }
            let entries = treeEntries(root)
            #expect(!entries.contains { $0.contains(".tmp-") }, "\(entries)")
            #expect(try await store.list(prefix: "").map(\.key) == (0..<5).map { "a/b/obj-\($0)" })
            // Concurrent puts of one key leave a matching object and sidecar.
            for i in 0..<5 {
                let head = try #require(try await store.head(key: "a/b/obj-\(i)"))
                let data = try await store.getData(key: "a/b/obj-\(i)")
                #expect(head.etag == "\"\(Digest.md5(data).hexString)\"")
            }
            try await store.delete(keys: (0..<5).map { "a/b/obj-\($0)" })
            #expect(treeEntries(root).filter { !$0.hasPrefix(".cairn-") } == [], "empty parents are removed")
            #expect(treeEntries(root + "/.cairn-meta") == [], "empty sidecar parents are removed")
        }
    }

    @Test func failedPutLeavesNothingBehind() async throws {
        try await withDirectoryStore { store, root in
            let src = root + "-source"
            try ConformanceData.bytes(1000).write(to: URL(fileURLWithPath: src))
            defer { unlink(src) }
            // The source is shorter than the declared length.
            let e = await #expect(throws: CairnError.self) {
                _ = try await store.put(key: "x/short", body: .file(path: src, offset: 0, length: 5000), options: PutOptions())
            }
            #expect(e?.code == .io)
            #expect(e?.message.contains("x/short") == true)
            #expect(try await store.head(key: "x/short") == nil)
            #expect(!treeEntries(root).contains { $0.contains(".tmp-") }, "\(treeEntries(root))")
            // A missing source file.
            let e2 = await #expect(throws: CairnError.self) {
                _ = try await store.put(key: "y", body: .file(path: root + "/nope", offset: 0, length: 1), options: PutOptions())
            }
            #expect(e2?.code == .io)
        }
    }

    @Test(arguments: ["", "/abs", "../escape", "a/../b", "a/..", "./a", "a/./b", "a//b", "a/", "a\u{0}b",
                      ".cairn-meta/x", ".cairn-multipart", ".x.tmp-123", "dir/.obj.tmp-abc",
                      // A combining mark after "/" makes "/\u{301}" one Swift Character: still a separator on disk.
                      "../\u{301}escape", "/\u{301}abs", "a/..\u{0}", "a//\u{301}"])
    func unsafeKeysAreRejected(key: String) async throws {
        try await withDirectoryStore { store, root in
            for op in ["put", "get", "head", "delete", "multipart"] {
                let e = await #expect(throws: CairnError.self, "\(op) \(key.debugDescription)") {
                    switch op {
                    case "put": _ = try await store.put(key: key, data: Data("x".utf8))
                    case "get": _ = try await store.get(key: key, range: nil)
                    case "head": _ = try await store.head(key: key)
                    case "delete": try await store.delete(keys: [key])
                    default: _ = try await store.createMultipartUpload(key: key, options: PutOptions())
                    }
                }
                #expect(e?.code == .usage, "\(op) \(key.debugDescription): \(String(describing: e))")
            }
            #expect(treeEntries(root) == [])
        }
    }

    @Test func dotsInsideNamesAreFine() async throws {
        try await withDirectoryStore { store, root in
            let keys = ["a..b", "...", ".hidden", "x/.profile", "v1.2/..x", "a.tmp-1", "x/\u{301}starts-with-a-combining-mark/y",
                        "..\u{301}", "\u{301}/..x"]
            for k in keys { _ = try await store.put(key: k, data: Data(k.utf8)) }
            #expect(try await store.list(prefix: "").map { Array($0.key.utf8) } == ConformanceData.byteOrdered(keys).map { Array($0.utf8) })
            for k in keys { #expect(try await store.getData(key: k) == Data(k.utf8)) }
            #expect(FileManager.default.fileExists(atPath: root + "/x/\u{301}starts-with-a-combining-mark/y"))
            try await store.delete(keys: keys)
            #expect(treeEntries(root).filter { !$0.hasPrefix(".cairn-") } == [])
        }
    }

    @Test func unequalPartSizesAreRejectedAtComplete() async throws {
        try await withDirectoryStore(minimumPartSize: 1000) { store, _ in
            let key = "mp/unequal"
            let id = try await store.createMultipartUpload(key: key, options: PutOptions())
            let p1 = try await store.uploadPart(key: key, uploadId: id, partNumber: 1, body: .data(ConformanceData.bytes(2000)))
            let p2 = try await store.uploadPart(key: key, uploadId: id, partNumber: 2, body: .data(ConformanceData.bytes(3000)))
            let p3 = try await store.uploadPart(key: key, uploadId: id, partNumber: 3, body: .data(ConformanceData.bytes(500)))
            let e = await #expect(throws: CairnError.self) {
                _ = try await store.completeMultipartUpload(key: key, uploadId: id, parts: [p1, p2, p3])
            }
            #expect(e?.code == .storage)
            #expect(e?.message.contains("same size") == true, "\(String(describing: e))")

            // A last part larger than the others.
            let e2 = await #expect(throws: CairnError.self) {
                _ = try await store.completeMultipartUpload(key: key, uploadId: id, parts: [p1, p2])
            }
            #expect(e2?.message.contains("larger") == true, "\(String(describing: e2))")

            // Below the minimum part size.
            let small = try await store.uploadPart(key: key, uploadId: id, partNumber: 4, body: .data(ConformanceData.bytes(500)))
            let e3 = await #expect(throws: CairnError.self) {
                _ = try await store.completeMultipartUpload(key: key, uploadId: id, parts: [p3, small])
            }
            #expect(e3?.message.contains("EntityTooSmall") == true, "\(String(describing: e3))")

            // Wrong ETag, missing part, wrong order.
            var wrong = p1; wrong.etag = "\"00000000000000000000000000000000\""
            let e4 = await #expect(throws: CairnError.self) {
                _ = try await store.completeMultipartUpload(key: key, uploadId: id, parts: [wrong, p3])
            }
            #expect(e4?.message.contains("InvalidPart") == true)
            let e5 = await #expect(throws: CairnError.self) {
                _ = try await store.completeMultipartUpload(key: key, uploadId: id,
                    parts: [p1, CompletedPart(partNumber: 9, etag: p1.etag, size: 2000)])
            }
            #expect(e5?.message.contains("InvalidPart") == true)
            let e6 = await #expect(throws: CairnError.self) {
                _ = try await store.completeMultipartUpload(key: key, uploadId: id, parts: [p3, p1])
            }
            #expect(e6?.message.contains("InvalidPartOrder") == true)

            // The upload is still usable after refused completions; equal parts + smaller tail work.
            let p2b = try await store.uploadPart(key: key, uploadId: id, partNumber: 2, body: .data(ConformanceData.bytes(2000)))
            let info = try await store.completeMultipartUpload(key: key, uploadId: id, parts: [p1, p2b, p3])
            #expect(info.size == 4500)
            #expect(info.etag?.hasSuffix("-3\"") == true)
            #expect(try await store.listMultipartUploads(prefix: "").isEmpty)
        }
    }

    @Test func unknownUploadIdIsNoSuchUpload() async throws {
        try await withDirectoryStore { store, _ in
            for id in ["0123456789abcdef0123456789abcdef", "../../etc", ""] {
                let e = await #expect(throws: CairnError.self) {
                    _ = try await store.uploadPart(key: "k", uploadId: id, partNumber: 1, body: .data(Data("x".utf8)))
                }
                #expect(e?.code == .notFound)
                #expect(e?.message.contains("NoSuchUpload") == true)
                let e2 = await #expect(throws: CairnError.self) { try await store.abortMultipartUpload(key: "k", uploadId: id) }
                #expect(e2?.code == .notFound)
            }
            // An upload id used with another key.
            let id = try await store.createMultipartUpload(key: "k1", options: PutOptions())
            let e3 = await #expect(throws: CairnError.self) { _ = try await store.listParts(key: "k2", uploadId: id) }
            #expect(e3?.code == .notFound)
        }
    }

    @Test func internalDirectoriesAreNeverListed() async throws {
        try await withDirectoryStore { store, root in
            _ = try await store.put(key: "visible", data: Data("v".utf8), options: PutOptions(metadata: ["a": "b"]))
            let id = try await store.createMultipartUpload(key: "pending", options: PutOptions())
            _ = try await store.uploadPart(key: "pending", uploadId: id, partNumber: 1, body: .data(Data("p".utf8)))
            // A stray temp file, as a crash would leave.
            try Data("junk".utf8).write(to: URL(fileURLWithPath: root + "/.visible.tmp-deadbeef"))
            #expect(FileManager.default.fileExists(atPath: root + "/.cairn-meta/visible.json"))
            #expect(FileManager.default.fileExists(atPath: root + "/.cairn-multipart/\(id)/part-00001"))
            #expect(try await store.list(prefix: "").map(\.key) == ["visible"])
            #expect(try await store.list(prefix: ".").map(\.key) == [])
            #expect(try await store.list(prefix: ".cairn").map(\.key) == [])
            #expect(try await store.listMultipartUploads(prefix: "").map(\.key) == ["pending"])
        }
    }

    @Test func keyCannotBeObjectAndPrefix() async throws {
        try await withDirectoryStore { store, _ in
            _ = try await store.put(key: "a/b", data: Data("x".utf8))
            let e = await #expect(throws: CairnError.self) { _ = try await store.put(key: "a", data: Data("y".utf8)) }
            #expect(e?.code == .io)
            #expect(e?.message.contains("cannot write a") == true, "\(String(describing: e))")
            #expect(try await store.head(key: "a") == nil)
            await #expect(throws: CairnError.self) { _ = try await store.get(key: "a", range: nil) }
        }
    }

    @Test(.enabled(if: getuid() != 0, "root ignores directory permissions"))
    func fileSystemErrorsAreIOErrorsNamingStoreAndKey() async throws {
        try await withDirectoryStore { store, root in
            _ = try await store.put(key: "ro/first", data: Data("x".utf8))
            chmod(root + "/ro", 0o555)
            defer { chmod(root + "/ro", 0o755) }
            let e = await #expect(throws: CairnError.self) { _ = try await store.put(key: "ro/second", data: Data("y".utf8)) }
            #expect(e?.code == .io)
            #expect(e?.message == "file://\(root): cannot write ro/second: Permission denied", "\(String(describing: e))")
        }
    }

    @Test func missingRootIsNotFound() async throws {
        let store = DirectoryStore(root: "/nonexistent/cairn-\(UUID().uuidString)")
        let e = await #expect(throws: CairnError.self) { _ = try await store.put(key: "k", data: Data("x".utf8)) }
        #expect(e?.code == .notFound)
        let e2 = await #expect(throws: CairnError.self) { _ = try await store.list(prefix: "") }
        #expect(e2?.code == .notFound)
        let e3 = await #expect(throws: CairnError.self) { _ = try await store.head(key: "k") }
        #expect(e3?.code == .notFound)
    }

    @Test func urlInitialiser() throws {
        #expect(try DirectoryStore(url: "file:///srv/backups").root == "/srv/backups")
        #expect(try DirectoryStore(url: "file:///srv/backups/").displayName == "file:///srv/backups")
        #expect(try DirectoryStore(url: "file://localhost/srv/b").root == "/srv/b")
        #expect(try DirectoryStore(url: "file:///srv/my%20backups").root == "/srv/my backups")
        for bad in ["s3://bucket", "file://relative/path", "/srv/backups", "file:///x?y"] {
            #expect(throws: CairnError.self, "\(bad)") { _ = try DirectoryStore(url: bad) }
        }
    }

    @Test func metadataAndLockAreStoredInTheSidecar() async throws {
        try await withDirectoryStore { store, root in
            let until = Date(timeIntervalSince1970: 2_000_000_000)
            _ = try await store.put(key: "locked", data: Data("x".utf8),
                                    options: PutOptions(cacheControl: "max-age=60", metadata: ["Mixed-Case": "v"],
                                                        objectLock: ObjectLock(mode: .compliance, retainUntil: until)))
            let json = try String(contentsOfFile: root + "/.cairn-meta/locked.json", encoding: .utf8)
            #expect(json.contains("COMPLIANCE"))
            #expect(json.contains("max-age=60"))
            #expect(try await store.head(key: "locked")?.metadata == ["mixed-case": "v"])
        }
    }

    @Test func objectReplacedOutsideTheStoreHasNoStaleETag() async throws {
        try await withDirectoryStore { store, root in
            _ = try await store.put(key: "k", data: Data("original".utf8))
            try Data("replaced by hand".utf8).write(to: URL(fileURLWithPath: root + "/k"))
            let head = try #require(try await store.head(key: "k"))
            #expect(head.etag == nil)
            #expect(head.size == 16)
        }
    }
}

/// Shared helpers for these tests.
enum ConformanceData {
    static func bytes(_ n: Int) -> Data { ObjectStoreConformance.bytes(n, seed: UInt64(n)) }
    static func byteOrdered(_ k: [String]) -> [String] { ObjectStoreConformance.byteOrdered(k) }
}
