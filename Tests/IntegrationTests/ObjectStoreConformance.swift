import Foundation
import Testing
import Core
import Crypto
import ObjectStore

/// Behaviour every `ObjectStore` must share, whatever is behind it (S3, R2,
/// moto, a directory). Each method works under its own sub-prefix of `prefix`
/// and deletes what it wrote, so the methods can run in any order, and
/// against a shared bucket.
///
/// Usage: `try await ObjectStoreConformance(store: s, prefix: "conformance-\(UUID())/").runAll()`
/// or one method per `@Test`.
struct ObjectStoreConformance: Sendable {
    let store: any ObjectStore
    /// Where the suite writes; should end with `/` and be unique per run.
    let prefix: String
    /// Check the exact S3 multipart ETag (MD5 of the part MD5s, `-N`), not only its shape.
    var expectsS3MultipartETag = true
    /// Check that a multipart upload's `Initiated` time is now. moto answers a
    /// fixed 2010 date for every upload, so its suite turns this off.
    var checksInitiatedTime = true

    init(store: any ObjectStore, prefix: String, expectsS3MultipartETag: Bool = true, checksInitiatedTime: Bool = true) {
        self.store = store
        self.prefix = prefix
        self.expectsS3MultipartETag = expectsS3MultipartETag
        self.checksInitiatedTime = checksInitiatedTime
    }

    static let MiB = 1 << 20

    func runAll() async throws {
        try await putGetHeadListDelete()
        try await rangeGet()
        try await missingKeyIsNotFound()
        try await oddKeysRoundTrip()
        try await metadataRoundTrip()
        try await multipartThreeParts()
        try await abortMultipart()
        try await listAndDeleteMany(count: 2_500)
        try await largeStreamingGet()
    }

    // MARK: - helpers

    /// Deterministic pseudo-random bytes (xorshift64*), fast enough for tens of MiB.
    static func bytes(_ count: Int, seed: UInt64) -> Data {
        var d = Data(count: count)
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        d.withUnsafeMutableBytes { raw in
            let words = count / 8
            let p = raw.baseAddress!
            for i in 0..<words {
                x ^= x >> 12; x ^= x << 25; x ^= x >> 27
                p.storeBytes(of: x &* 0x2545_F491_4F6C_DD1D, toByteOffset: i * 8, as: UInt64.self)
            }
            for i in (words * 8)..<count { p.storeBytes(of: UInt8(truncatingIfNeeded: i &* 31), toByteOffset: i, as: UInt8.self) }
        }
        return d
    }

    static func quotedMD5(_ d: Data) -> String { "\"\(Digest.md5(d).hexString)\"" }

    static func byteOrdered(_ keys: [String]) -> [String] {
        keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    func listedKeys(under p: String) async throws -> [String] {
        try await store.list(prefix: p).map(\.key)
    }

    /// Keys as bytes: Swift's `String ==` treats canonically equivalent strings (NFC "é" and
    /// NFD "e\u{301}") as equal, but S3 keys are byte strings.
    static func utf8Keys(_ keys: [String]) -> [[UInt8]] { keys.map { Array($0.utf8) } }

    func readAll(_ dl: ObjectDownload) async throws -> Data {
        var out = Data()
        for try await chunk in dl.body { out.append(chunk) }
        return out
    }

    /// Expects `body` to throw a CairnError with `code`; returns it.
    @discardableResult
    func expectError(_ code: ErrorCode, sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () async throws -> Void) async -> CairnError? {
        do {
            try await body()
            Issue.record("expected a CairnError(.\(code)), nothing was thrown", sourceLocation: sourceLocation)
            return nil
        } catch let e as CairnError {
            #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
            return e
        } catch {
            Issue.record("expected a CairnError(.\(code)), got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    // MARK: - behaviours

    /// put returns the MD5 ETag; head, get and list agree; overwrite; `.file` bodies; empty objects; delete.
    func putGetHeadListDelete() async throws {
        let p = prefix + "basic/"
        let key = p + "hello.txt"
        let data = Data("hello, cairn\n".utf8)

        let put = try await store.put(key: key, data: data)
        #expect(put.key == key)
        #expect(put.size == Int64(data.count))
        #expect(put.etag == Self.quotedMD5(data))

        let head = try #require(try await store.head(key: key))
        #expect(head.size == Int64(data.count))
        #expect(head.etag == Self.quotedMD5(data))
        #expect(head.lastModified != nil)

        #expect(try await store.getData(key: key) == data)

        let listed = try await store.list(prefix: p)
        #expect(listed.map(\.key) == [key])
        #expect(listed.first?.size == Int64(data.count))
        #expect(listed.first?.etag == Self.quotedMD5(data))

        // Overwrite.
        let data2 = Self.bytes(70_000, seed: 2)
        let put2 = try await store.put(key: key, data: data2)
        #expect(put2.etag == Self.quotedMD5(data2))
        #expect(try await store.head(key: key)?.etag == Self.quotedMD5(data2))
        #expect(try await store.getData(key: key) == data2)

        // A `.file` body: a slice of a local file.
        let local = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-conformance-\(UUID().uuidString)")
        let fileData = Self.bytes(3 * Self.MiB + 123, seed: 3)
        try fileData.write(to: local)
        defer { try? FileManager.default.removeItem(at: local) }
        let slice = fileData.subdata(in: 1000..<(1000 + 2 * Self.MiB + 7))
        let key2 = p + "from-file.bin"
        let put3 = try await store.put(key: key2, body: .file(path: local.path, offset: 1000, length: Int64(slice.count)), options: PutOptions())
        #expect(put3.size == Int64(slice.count))
        #expect(put3.etag == Self.quotedMD5(slice))
        #expect(try await store.getData(key: key2) == slice)

        // Empty object.
        let key3 = p + "empty"
        let put4 = try await store.put(key: key3, data: Data())
        #expect(put4.etag == Self.quotedMD5(Data()))
        #expect(try await store.head(key: key3)?.size == 0)
        #expect(try await store.getData(key: key3) == Data())

        #expect(try await listedKeys(under: p) == Self.byteOrdered([key, key2, key3]))

        try await store.delete(keys: [key, key2, key3])
        #expect(try await store.head(key: key) == nil)
        #expect(try await listedKeys(under: p) == [])
    }

    /// Ranged GETs: closed, open-ended, single byte, end past the object; a start past the end fails.
    func rangeGet() async throws {
        let key = prefix + "range/object.bin"
        let data = Self.bytes(1000, seed: 4)
        _ = try await store.put(key: key, data: data)

        func get(_ r: ByteRange) async throws -> Data {
            try await readAll(store.get(key: key, range: r))
        }
        #expect(try await get(ByteRange(start: 0, end: 9)) == data.subdata(in: 0..<10))
        #expect(try await get(ByteRange(start: 10, end: 19)) == data.subdata(in: 10..<20))
        #expect(try await get(ByteRange(start: 500, end: 500)) == data.subdata(in: 500..<501))
        #expect(try await get(ByteRange(start: 990)) == data.subdata(in: 990..<1000))
        #expect(try await get(ByteRange(start: 995, end: 5000)) == data.subdata(in: 995..<1000))
        #expect(try await get(ByteRange(start: 0)) == data)
        // info.size is the whole object's size, also for a range
        let ranged = try await store.get(key: key, range: ByteRange(start: 10, end: 19))
        #expect(ranged.info.size == 1000)
        _ = try await readAll(ranged)
        await #expect(throws: (any Error).self) {
            _ = try await get(ByteRange(start: 1000))
        }

        try await store.delete(keys: [key])
    }

    /// A missing key: get throws `.notFound` naming the key, head is nil, delete is fine.
    func missingKeyIsNotFound() async throws {
        let key = prefix + "missing/no such object.bin"
        let e = await expectError(.notFound) { _ = try await store.get(key: key, range: nil) }
        if let e { #expect(e.message.contains(key), "message should name the key: \(e.message)") }
        await expectError(.notFound) { _ = try await store.get(key: key, range: ByteRange(start: 0, end: 10)) }
        #expect(try await store.head(key: key) == nil)
        try await store.delete(keys: [key])
        #expect(try await listedKeys(under: prefix + "missing/") == [])
    }

    /// Keys with characters that need escaping somewhere (URLs, signatures, file names) round-trip exactly,
    /// and listings are in UTF-8 byte order.
    func oddKeysRoundTrip() async throws {
        let p = prefix + "odd/"
        let names = [
            "with space.txt",
            "plus+sign",
            "percent%20literal%",
            "hash#fragment",
            "question?mark",
            "amp&and=equals",
            "photos/été 2024/ñandú+1%.jpg",
            "emoji/🦤 dodo 🎉.bin",
            "tilde~star*(parens)!'",
            "semicolon;colon:comma,",
            "brackets[]{}<>|^`\"\\",
            "nested/deep/a/b/c/d.txt",
            "中文/文件.txt",
        ]
        var expected: [String] = []
        for (i, n) in names.enumerated() {
            let key = p + n
            let data = Data("object \(i): \(n)".utf8)
            let put = try await store.put(key: key, data: data)
            #expect(put.etag == Self.quotedMD5(data), "\(key)")
            let head = try await store.head(key: key)
            #expect(head?.size == Int64(data.count), "\(key)")
            #expect(try await store.getData(key: key) == data, "\(key)")
            #expect(try await listedKeys(under: key) == [key], "list with the key itself as prefix: \(key)")
            expected.append(key)
        }
        #expect(Self.utf8Keys(try await listedKeys(under: p)) == Self.utf8Keys(Self.byteOrdered(expected)))
        #expect(try await listedKeys(under: p + "photos/été") == [p + "photos/été 2024/ñandú+1%.jpg"])

        // Unicode normalisation forms are different keys (S3 compares bytes): NFC "é" is C3 A9,
        // NFD "e\u{301}" is 65 CC 81. Byte order differs from Swift's String order (which
        // compares normalised forms): cafe\u{301}x < caf\u{E9}a in bytes, not as Strings.
        let n = p + "norm/"
        let forms = ["caf\u{E9}", "cafe\u{301}", "caf\u{E9}a", "cafe\u{301}x", "cafez"]
        for f in forms { _ = try await store.put(key: n + f, data: Data(Array(f.utf8))) }
        #expect(Self.utf8Keys(try await listedKeys(under: n)) ==
                Self.utf8Keys(["cafez", "cafe\u{301}", "cafe\u{301}x", "caf\u{E9}", "caf\u{E9}a"].map { n + $0 }))
        for f in forms {
            #expect(try await store.getData(key: n + f) == Data(Array(f.utf8)), "\(Array(f.utf8))")
            let under = Self.byteOrdered(forms.filter { $0.utf8.starts(with: f.utf8) }).map { n + $0 }
            #expect(Self.utf8Keys(try await listedKeys(under: n + f)) == Self.utf8Keys(under), "\(Array(f.utf8))")
        }
        expected += forms.map { n + $0 }

        // Byte order, not file-system walk order: "a-" (0x2D) < "a." (0x2E) < "a/" (0x2F) < "a0" < "aZ" < "a_" < "ab" < "aé".
        let q = p + "order/"
        let orderNames = ["a/b", "a-b", "a.b", "a0", "aZ", "a_", "ab", "aé", "a/a/z", "b"]
        for n in orderNames { _ = try await store.put(key: q + n, data: Data(n.utf8)) }
        let ordered = try await listedKeys(under: q)
        #expect(Self.utf8Keys(ordered) == Self.utf8Keys(Self.byteOrdered(orderNames.map { q + $0 })))
        #expect(Self.utf8Keys(ordered) == Self.utf8Keys(["a-b", "a.b", "a/a/z", "a/b", "a0", "aZ", "a_", "ab", "aé", "b"].map { q + $0 }))
        expected += orderNames.map { q + $0 }

        try await store.delete(keys: expected)
        for key in expected { #expect(try await store.head(key: key) == nil, "\(key)") }
        #expect(try await listedKeys(under: p) == [])
    }

    /// Content type and user metadata set on put and on multipart create are visible on head and get.
    func metadataRoundTrip() async throws {
        let p = prefix + "meta/"
        let key = p + "with-metadata.json"
        let options = PutOptions(contentType: "application/x-cairn-test", cacheControl: "no-store",
                                 metadata: ["job": "nightly", "db-name": "app_production", "format-version": "1"])
        _ = try await store.put(key: key, body: .data(Data("{}".utf8)), options: options)
        let head = try #require(try await store.head(key: key))
        #expect(head.contentType == "application/x-cairn-test")
        #expect(head.metadata == ["job": "nightly", "db-name": "app_production", "format-version": "1"])
        let dl = try await store.get(key: key, range: nil)
        #expect(dl.info.contentType == "application/x-cairn-test")
        #expect(dl.info.metadata["job"] == "nightly")
        #expect(try await readAll(dl) == Data("{}".utf8))

        // Metadata given at multipart creation ends up on the object.
        let mkey = p + "multipart-with-metadata.bin"
        let id = try await store.createMultipartUpload(key: mkey, options: options)
        let part = try await store.uploadPart(key: mkey, uploadId: id, partNumber: 1, body: .data(Data("tiny".utf8)))
        _ = try await store.completeMultipartUpload(key: mkey, uploadId: id, parts: [part])
        let mhead = try #require(try await store.head(key: mkey))
        #expect(mhead.contentType == "application/x-cairn-test")
        #expect(mhead.metadata["db-name"] == "app_production")

        try await store.delete(keys: [key, mkey])
    }

    /// 2 × 5 MiB + 1 MiB: parts listed before completion, S3 multipart ETag, content read back.
    func multipartThreeParts() async throws {
        let key = prefix + "multipart/three parts.bin"
        let sizes = [5 * Self.MiB, 5 * Self.MiB, 1 * Self.MiB]
        let parts = sizes.enumerated().map { Self.bytes($1, seed: 100 + UInt64($0)) }
        let whole = parts.reduce(into: Data()) { $0.append($1) }

        let id = try await store.createMultipartUpload(key: key, options: PutOptions())
        #expect(!id.isEmpty)
        #expect(try await store.listMultipartUploads(prefix: prefix + "multipart/").contains { $0.uploadId == id && $0.key == key })

        // Upload out of order and concurrently, as the pipeline does.
        let completed = try await withThrowingTaskGroup(of: CompletedPart.self) { group in
            for i in [2, 0, 1] {
                group.addTask { try await store.uploadPart(key: key, uploadId: id, partNumber: i + 1, body: .data(parts[i])) }
            }
            var out: [CompletedPart] = []
            for try await c in group { out.append(c) }
            return out.sorted { $0.partNumber < $1.partNumber }
        }
        #expect(completed.map(\.partNumber) == [1, 2, 3])
        for (i, c) in completed.enumerated() {
            #expect(c.etag == Self.quotedMD5(parts[i]), "part \(i + 1)")
        }

        let listed = try await store.listParts(key: key, uploadId: id)
        #expect(listed.map(\.partNumber) == [1, 2, 3])
        #expect(listed.map(\.size) == sizes.map(Int64.init))
        #expect(listed.map(\.etag) == completed.map(\.etag))
        #expect(try await store.head(key: key) == nil, "not visible before completion")

        let info = try await store.completeMultipartUpload(key: key, uploadId: id, parts: completed)
        let etag = try #require(info.etag)
        #expect(etag.hasPrefix("\"") && etag.hasSuffix("-3\""), "\(etag)")
        if expectsS3MultipartETag {
            let md5s = parts.reduce(into: Data()) { $0.append(Digest.md5($1)) }
            #expect(etag == "\"\(Digest.md5(md5s).hexString)-3\"")
        }
        let head = try #require(try await store.head(key: key))
        #expect(head.size == Int64(whole.count))
        #expect(head.etag == etag)
        let back = try await readAll(store.get(key: key, range: nil))
        #expect(back.count == whole.count)
        #expect(Digest.sha256(back) == Digest.sha256(whole))
        #expect(try await !store.listMultipartUploads(prefix: prefix + "multipart/").contains { $0.uploadId == id })

        try await store.delete(keys: [key])
    }

    /// An aborted upload disappears from listMultipartUploads and its parts are gone.
    func abortMultipart() async throws {
        let p = prefix + "abort/"
        let key = p + "aborted.bin"
        let before = Date().addingTimeInterval(-300)
        let id = try await store.createMultipartUpload(key: key, options: PutOptions())
        _ = try await store.uploadPart(key: key, uploadId: id, partNumber: 1, body: .data(Self.bytes(1000, seed: 7)))

        let uploads = try await store.listMultipartUploads(prefix: p)
        let mine = try #require(uploads.first { $0.uploadId == id })
        #expect(mine.key == key)
        let initiated = try #require(mine.initiated)
        if checksInitiatedTime {
            #expect(initiated > before && initiated < Date().addingTimeInterval(300))
        }
        #expect(try await store.listMultipartUploads(prefix: prefix + "elsewhere/").isEmpty)

        try await store.abortMultipartUpload(key: key, uploadId: id)
        #expect(try await !store.listMultipartUploads(prefix: p).contains { $0.uploadId == id })
        let e = await expectError(.notFound) { _ = try await store.listParts(key: key, uploadId: id) }
        if let e { #expect(e.message.contains("NoSuchUpload"), "\(e.message)") }
        #expect(try await store.head(key: key) == nil)
        #expect(try await listedKeys(under: p) == [])
    }

    /// Many small objects put with bounded concurrency; list returns exactly them in order (across
    /// S3 pages of 1000); one delete call removes all (S3 batches of 1000).
    func listAndDeleteMany(count: Int) async throws {
        let p = prefix + "many/"
        // Some nesting, and names whose byte order differs from numeric order.
        let keys = (0..<count).map { i in p + "group-\(i % 7)/item-\(i)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                let key = keys[next]
                next += 1
                group.addTask { _ = try await store.put(key: key, data: Data(key.utf8)) }
            }
            for _ in 0..<min(16, keys.count) { add() }
            while try await group.next() != nil {
                if next < keys.count { add() }
            }
        }
        let listed = try await store.list(prefix: p)
        #expect(listed.count == count)
        #expect(listed.map(\.key) == Self.byteOrdered(keys))
        #expect(listed.allSatisfy { $0.size == Int64($0.key.utf8.count) })
        #expect(try await listedKeys(under: p + "group-3/").count == keys.filter { $0.hasPrefix(p + "group-3/") }.count)

        try await store.delete(keys: keys)
        #expect(try await listedKeys(under: p) == [])
    }

    /// A 20 MiB object streams back through the bounded channel intact, and the store does not
    /// buffer far beyond the channel's capacity while the reader is slow.
    func largeStreamingGet() async throws {
        let key = prefix + "large/twenty-mib.bin"
        let data = Self.bytes(20 * Self.MiB, seed: 20)
        let put = try await store.put(key: key, data: data)
        #expect(put.etag == Self.quotedMD5(data))

        let dl = try await store.get(key: key, range: nil)
        #expect(dl.info.size == Int64(data.count))
        let hasher = Hasher(.sha256)
        var total = 0
        var first = true
        var largestChunk = 0
        while let chunk = try await dl.body.receive() {
            hasher.update(chunk)
            total += chunk.count
            largestChunk = max(largestChunk, chunk.count)
            if first {
                first = false
                // Stall the reader: the producer must stop at the channel's bound.
                try await Task.sleep(for: .milliseconds(300))
                #expect(dl.body.bufferedBytes <= dl.body.capacity + 2 * Self.MiB,
                        "buffered \(dl.body.bufferedBytes) bytes with capacity \(dl.body.capacity)")
            }
        }
        #expect(total == data.count)
        #expect(hasher.finalize() == Digest.sha256(data))
        #expect(largestChunk <= 16 * Self.MiB)

        // A reader that gives up early must not hang the store.
        let dl2 = try await store.get(key: key, range: nil)
        _ = try await dl2.body.receive()
        dl2.body.cancel()

        try await store.delete(keys: [key])
    }
}
