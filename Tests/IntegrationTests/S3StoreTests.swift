import Foundation
import Testing
import Core
import Crypto
import HTTP
@testable import ObjectStore

@Suite struct S3StoreTests {
    @Test func multipartUploadOfThreePartsHasDashThreeETag() async throws {
        let store = try TestEnv.s3()
        let proxy = try ProxyControl()
        let a = testData(5 << 20, seed: 1), b = testData(5 << 20, seed: 2), c = testData(123_457, seed: 3)
        let id = try await store.createMultipartUpload(key: "big.bin", options: PutOptions(contentType: "application/x-test"))
        let p1 = try await store.uploadPart(key: "big.bin", uploadId: id, partNumber: 1, body: .data(a))
        let p2 = try await store.uploadPart(key: "big.bin", uploadId: id, partNumber: 2, body: .data(b))
        let p3 = try await store.uploadPart(key: "big.bin", uploadId: id, partNumber: 3, body: .data(c))
        let listed = try await store.listParts(key: "big.bin", uploadId: id)
        #expect(listed.map(\.partNumber) == [1, 2, 3])
        let info = try await store.completeMultipartUpload(key: "big.bin", uploadId: id, parts: [p3, p1, p2])
        let etag = try #require(info.etag)
        #expect(etag.replacingOccurrences(of: "\"", with: "").hasSuffix("-3"))
        let back = try await store.getData(key: "big.bin", limit: 20 << 20)
        #expect(back == a + b + c)
        let head = try #require(try await store.head(key: "big.bin"))
        #expect(head.size == Int64(a.count + b.count + c.count))
        #expect(try await proxy.violations(containing: store.config.prefix).isEmpty)
        let parts = try await proxy.log(pathContaining: store.config.prefix).filter { $0.part_number != nil }
        #expect(parts.count == 3)
        try await store.delete(keys: ["big.bin"])
    }

    @Test func streamingUploaderUsesEqualPartsAndBoundedConcurrency() async throws {
        let store = try TestEnv.s3()
        let proxy = try ProxyControl()
        let total = 23 << 20 + 4321
        let data = testData(total, seed: 7)
        let input = ByteChannel(capacity: 1 << 20)
        let producer = Task {
            var off = 0
            while off < total { let n = min(100_003, total - off); try await input.send(data.subdata(in: off..<off + n)); off += n }
            input.finish()
        }
        let up = MultipartUploader(store: store, partSize: 5 << 20, concurrency: 3)
        let result = try await up.upload(key: "stream.bin", from: input)
        try await producer.value
        #expect(result.partCount == 5)
        #expect(result.size == Int64(total))
        #expect(try await store.getData(key: "stream.bin", limit: 30 << 20) == data)
        let sizes = try await proxy.log(pathContaining: store.config.prefix).filter { $0.part_number != nil && $0.method == "PUT" }
            .sorted { $0.part_number! < $1.part_number! }.map { $0.body_bytes ?? -1 }
        #expect(sizes.dropLast().allSatisfy { $0 == 5 << 20 })
        #expect(try await proxy.violations(containing: store.config.prefix).isEmpty)
    }

    @Test func smallStreamIsASinglePut() async throws {
        let store = try TestEnv.s3()
        let input = ByteChannel(capacity: 1 << 20)
        try await input.send(Data("hello".utf8))
        input.finish()
        let r = try await MultipartUploader(store: store, partSize: 5 << 20).upload(key: "small", from: input)
        #expect(r.partCount == 1)
        #expect(try await store.getData(key: "small") == Data("hello".utf8))
    }

    @Test func uploaderAbortsWhenTheInputFails() async throws {
        let store = try TestEnv.s3()
        let input = ByteChannel(capacity: 1 << 20)
        let producer = Task {
            try await input.send(testData(12 << 20))
            input.finish(throwing: CairnError(.process, "pg_dump exited with status 1"))
        }
        await #expect(throws: CairnError.self) {
            _ = try await MultipartUploader(store: store, partSize: 5 << 20).upload(key: "failing", from: input)
        }
        _ = try? await producer.value
        #expect(try await store.listMultipartUploads(prefix: "").isEmpty)
        #expect(try await store.head(key: "failing") == nil)
    }

    @Test func abortRemovesTheUpload() async throws {
        let store = try TestEnv.s3()
        let id = try await store.createMultipartUpload(key: "aborted", options: PutOptions())
        _ = try await store.uploadPart(key: "aborted", uploadId: id, partNumber: 1, body: .data(testData(1000)))
        #expect(try await store.listMultipartUploads(prefix: "").map(\.uploadId) == [id])
        try await store.abortMultipartUpload(key: "aborted", uploadId: id)
        #expect(try await store.listMultipartUploads(prefix: "").isEmpty)
        await #expect(throws: CairnError.self) { _ = try await store.listParts(key: "aborted", uploadId: id) }
    }

    @Test func wrongSecretFailsWithSignatureDoesNotMatch() async throws {
        let secret = "wrong-secret-\(UUID().uuidString)"
        let store = try TestEnv.s3(viaProxy: false, secret: secret)
        do {
            _ = try await store.put(key: "x", data: Data("x".utf8))
            Issue.record("expected SignatureDoesNotMatch")
        } catch let e as CairnError {
            #expect(e.code == .storageAuth)
            #expect(e.message.contains("SignatureDoesNotMatch"))
            #expect(e.message.contains(try TestEnv.bucket))
            #expect(!e.description.contains(secret))
            #expect(!e.message.contains("\n"))
        }
    }

    @Test func missingBucketIsNotFound() async throws {
        let cfg = S3Configuration(bucket: "no-such-bucket-\(UUID().uuidString.prefix(6).lowercased())", endpoint: try TestEnv.motoEndpoint)
        let store = S3Store(config: cfg, credentials: StaticCredentialsProvider(try TestEnv.credentials()))
        do {
            _ = try await store.list(prefix: "")
            Issue.record("expected NoSuchBucket")
        } catch let e as CairnError {
            #expect(e.code == .notFound)
            #expect(e.message.contains("NoSuchBucket"))
            #expect(e.message.contains(cfg.bucket))
        }
    }

    @Test func injected503sAreRetried() async throws {
        let store = try TestEnv.s3()
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: store.config.prefix, action: "status", status: 503, code: "SlowDown", count: 2))
        _ = try await store.put(key: "retried", data: Data("payload".utf8))
        #expect(try await store.getData(key: "retried") == Data("payload".utf8))
        let puts = try await proxy.log(pathContaining: store.config.prefix + "retried").filter { $0.method == "PUT" }
        #expect(puts.map { $0.status ?? 0 } == [503, 503, 200])
    }

    @Test func droppedConnectionIsRetried() async throws {
        let store = try TestEnv.s3()
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: store.config.prefix, action: "drop", count: 1))
        let data = testData(300_000)
        _ = try await store.put(key: "dropped", data: data)
        #expect(try await store.getData(key: "dropped") == data)
        let puts = try await proxy.log(pathContaining: store.config.prefix + "dropped").filter { $0.method == "PUT" }
        #expect(puts.count == 2)
    }

    @Test func downloadResumesAfterDroppedConnection() async throws {
        let store = try TestEnv.s3()
        let proxy = try ProxyControl()
        let data = testData(6 << 20, seed: 9)
        _ = try await store.put(key: "resume.bin", data: data)
        try await proxy.inject(.init(method: "GET", path_contains: store.config.prefix + "resume.bin", action: "drop_mid_response", count: 1))
        let back = try await store.getData(key: "resume.bin", limit: 8 << 20)
        #expect(back.count == data.count)
        #expect(back == data)
        // The proxy logs the cut GET after closing its connection, so the
        // resumed GET can be logged (and the download end) before it: wait for both.
        var gets: [ProxyControl.LogEntry] = []
        #expect(try await eventually(10) {
            gets = try await proxy.log(pathContaining: store.config.prefix + "resume.bin").filter { $0.method == "GET" }
            return gets.count >= 2
        })
        #expect(gets.count == 2, "\(gets)")
    }

    @Test func failurePastTheRetryBudgetIsAClearError() async throws {
        let store = try TestEnv.s3(retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05))
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: store.config.prefix, action: "status", status: 503, code: "ServiceUnavailable", count: 10))
        do {
            _ = try await store.put(key: "doomed", data: Data("x".utf8))
            Issue.record("expected failure")
        } catch let e as CairnError {
            #expect(e.code == .storage)
            #expect(e.message.contains("ServiceUnavailable"))
            #expect(e.message.contains("doomed"))
            #expect(e.message.contains("3 attempts"))
        }
        let puts = try await proxy.log(pathContaining: store.config.prefix + "doomed")
        #expect(puts.count == 3)
    }

    @Test func fourHundredsAreNotRetried() async throws {
        let store = try TestEnv.s3()
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "PUT", path_contains: store.config.prefix, action: "status", status: 403, code: "AccessDenied", count: 5))
        do {
            _ = try await store.put(key: "denied", data: Data("x".utf8))
            Issue.record("expected failure")
        } catch let e as CairnError {
            #expect(e.code == .storageAuth)
            #expect(e.message.contains("PutObject"))
        }
        #expect(try await proxy.log(pathContaining: store.config.prefix + "denied").count == 1)
    }

    @Test func completeAnswering200WithAnErrorBodyIsAnError() async throws {
        let store = try TestEnv.s3(retry: RetryPolicy(maxAttempts: 1))
        let proxy = try ProxyControl()
        let id = try await store.createMultipartUpload(key: "complete-err", options: PutOptions())
        let p = try await store.uploadPart(key: "complete-err", uploadId: id, partNumber: 1, body: .data(testData(1000)))
        try await proxy.inject(.init(method: "POST", path_contains: store.config.prefix + "complete-err", query_contains: "uploadId", action: "status", status: 200, code: "InternalError", count: 1))
        await #expect(throws: CairnError.self) {
            _ = try await store.completeMultipartUpload(key: "complete-err", uploadId: id, parts: [p])
        }
        #expect(try await store.head(key: "complete-err") == nil)
        try await store.abortMultipartUpload(key: "complete-err", uploadId: id)
    }

    @Test func objectLockAndMetadataHeadersAreSent() async throws {
        let store = try TestEnv.s3()
        let h = store.headers(for: PutOptions(contentType: "image/jpeg", cacheControl: "max-age=60", metadata: ["Sha256": "abc"],
                                              objectLock: ObjectLock(mode: .compliance, retainUntil: Date(timeIntervalSince1970: 1_800_000_000))))
        #expect(h["x-amz-object-lock-mode"] == "COMPLIANCE")
        #expect(h["x-amz-object-lock-retain-until-date"] == "2027-01-15T08:00:00Z")
        #expect(h["x-amz-meta-sha256"] == "abc")
        _ = try await store.put(key: "meta.jpg", data: Data("jpeg".utf8), options: PutOptions(contentType: "image/jpeg", metadata: ["sha256": "abc"]))
        let info = try #require(try await store.head(key: "meta.jpg"))
        #expect(info.contentType == "image/jpeg")
        #expect(info.metadata["sha256"] == "abc")
    }
}

/// Payload integrity (PayloadChecksum) through the strict proxy, which checks
/// bodies as S3 does (docs/TESTING.md): each mode's parts are accepted, and a
/// part corrupted on its way (the proxy's "corrupt" fault) is refused.
@Suite struct S3PayloadChecksumTests {
    func store(_ mode: PayloadChecksum?, retry: RetryPolicy = RetryPolicy(maxAttempts: 5, baseDelay: 0.05, maxDelay: 0.5)) throws -> S3Store {
        let base = try TestEnv.s3(retry: retry)
        var cfg = base.config
        cfg.payloadChecksum = mode
        return S3Store(config: cfg, credentials: StaticCredentialsProvider(try TestEnv.credentials()))
    }

    @Test func plainHTTPDefaultsToTheSignedPayloadSHA256() throws {
        #expect(try store(nil).config.effectivePayloadChecksum == .sha256)
        #expect(PayloadChecksum.sha256.carriesCRC32C && PayloadChecksum.crc32c.carriesCRC32C)
        #expect(!PayloadChecksum.md5.carriesCRC32C)
    }

    @Test(arguments: [PayloadChecksum.sha256, .crc32c, .md5])
    func multipartUploadInEachModeRoundTrips(_ mode: PayloadChecksum) async throws {
        let store = try store(mode)
        let proxy = try ProxyControl()
        let data = testData((10 << 20) + 777, seed: 11)
        let input = ByteChannel(capacity: 1 << 20)
        let producer = Task {
            var off = 0
            while off < data.count { let n = min(1 << 20, data.count - off); try await input.send(data.subdata(in: off..<off + n)); off += n }
            input.finish()
        }
        let result = try await MultipartUploader(store: store, partSize: 5 << 20, concurrency: 2).upload(key: "m.bin", from: input)
        try await producer.value
        #expect(result.partCount == 3)
        #expect(try await store.getData(key: "m.bin", limit: 20 << 20) == data)
        _ = try await store.put(key: "single", data: Data("one request".utf8))
        #expect(try await store.getData(key: "single", limit: 100) == Data("one request".utf8))
        #expect(try await proxy.violations(containing: store.config.prefix).isEmpty)
        try await store.delete(keys: ["m.bin", "single"])
    }

    /// Both the https mode (UNSIGNED-PAYLOAD + CRC32C) and the plain-HTTP
    /// default (signed SHA-256, plus CRC32C) declare CRC32C on the upload.
    @Test(arguments: [PayloadChecksum.crc32c, .sha256])
    func crc32cPartsCarryTheirChecksumIntoCompletion(_ mode: PayloadChecksum) async throws {
        let store = try store(mode)
        let proxy = try ProxyControl()
        let a = testData(5 << 20, seed: 21), b = testData(4096, seed: 22)
        let id = try await store.createMultipartUpload(key: "c.bin", options: PutOptions())
        let p1 = try await store.uploadPart(key: "c.bin", uploadId: id, partNumber: 1, body: .data(a))
        let p2 = try await store.uploadPart(key: "c.bin", uploadId: id, partNumber: 2, body: .data(b))
        var crc = CRC32C(); crc.update(a)
        #expect(p1.checksumCRC32C == crc.base64)
        #expect(p2.checksumCRC32C != nil)
        // Completion lists every part's checksum, as an upload that declared CRC32C requires
        // (the proxy refuses it otherwise).
        _ = try await store.completeMultipartUpload(key: "c.bin", uploadId: id, parts: [p2, p1])
        #expect(try await store.getData(key: "c.bin", limit: 6 << 20) == a + b)
        #expect(try await proxy.violations(containing: store.config.prefix).isEmpty)
        try await store.delete(keys: ["c.bin"])
    }

    /// A part known only by its number and ETag (a migration resumed from its
    /// checkpoint) gets its CRC32C from ListParts, as S3 lists it (the proxy
    /// adds it to moto's answer, docs/TESTING.md); without it the proxy, like
    /// S3, refuses the completion.
    @Test func aPartKnownOnlyByItsETagTakesItsChecksumFromListParts() async throws {
        let store = try store(.sha256)
        let proxy = try ProxyControl()
        let a = testData(5 << 20, seed: 31), b = testData(1000, seed: 32)
        let id = try await store.createMultipartUpload(key: "r.bin", options: PutOptions())
        let p1 = try await store.uploadPart(key: "r.bin", uploadId: id, partNumber: 1, body: .data(a))
        let p2 = try await store.uploadPart(key: "r.bin", uploadId: id, partNumber: 2, body: .data(b))
        let listed = try await store.listParts(key: "r.bin", uploadId: id)
        #expect(listed.map(\.checksumCRC32C) == [p1.checksumCRC32C, p2.checksumCRC32C])
        let resumed = CompletedPart(partNumber: 1, etag: p1.etag, size: p1.size, checksumCRC32C: nil)
        _ = try await store.completeMultipartUpload(key: "r.bin", uploadId: id, parts: [resumed, p2])
        #expect(try await store.getData(key: "r.bin", limit: 6 << 20) == a + b)
        #expect(try await proxy.violations(containing: store.config.prefix + "r.bin").isEmpty)
        try await store.delete(keys: ["r.bin"])
    }

    /// A PUT of in-memory bytes sends the digests its caller computed (the
    /// migration hashes each small file as it reads it) instead of hashing the
    /// body again; the server still checks them: a wrong one is refused, never
    /// stored. Digests that lack what the mode sends are computed by the store.
    @Test(arguments: [(PayloadChecksum.sha256, "XAmzContentSHA256Mismatch"), (.crc32c, "BadDigest"), (.md5, "BadDigest")])
    func aPutSendsTheCallersDigestsAndTheServerChecksThem(_ mode: PayloadChecksum, _ expected: String) async throws {
        let store = try store(mode, retry: RetryPolicy(maxAttempts: 1))
        let proxy = try ProxyControl()
        let data = testData(5000, seed: 41), other = testData(5000, seed: 42)
        func digests(_ d: Data) -> ContentDigests {
            var crc = CRC32C(); crc.update(d)
            return ContentDigests(sha256Hex: Digest.sha256(d).hexString, md5Base64: Digest.md5(d).base64EncodedString(),
                                  crc32cBase64: crc.base64)
        }
        _ = try await store.put(key: "known.bin", body: .data(data), options: PutOptions(digests: digests(data)))
        #expect(try await store.getData(key: "known.bin", limit: 10_000) == data)
        // the digest the mode sends is wrong (the others are right): refused
        var wrong = digests(data)
        switch mode {
        case .sha256: wrong.sha256Hex = digests(other).sha256Hex
        case .crc32c: wrong.crc32cBase64 = digests(other).crc32cBase64
        case .md5: wrong.md5Base64 = digests(other).md5Base64
        }
        do {
            _ = try await store.put(key: "wrong.bin", body: .data(data), options: PutOptions(digests: wrong))
            Issue.record("a PUT with a wrong digest was accepted")
        } catch let e as CairnError {
            #expect((e.cause as? S3ServiceError)?.code == expected)
        }
        #expect(try await store.head(key: "wrong.bin") == nil)
        #expect(try await proxy.violations(containing: store.config.prefix + "wrong.bin").count == 1)
        // digests without the MD5 and CRC32C: the store computes what its mode needs
        _ = try await store.put(key: "partial.bin", body: .data(other), options: PutOptions(digests: ContentDigests(sha256Hex: digests(other).sha256Hex)))
        #expect(try await store.getData(key: "partial.bin", limit: 10_000) == other)
        #expect(try await proxy.violations(containing: store.config.prefix + "known.bin").isEmpty)
        #expect(try await proxy.violations(containing: store.config.prefix + "partial.bin").isEmpty)
        try await store.delete(keys: ["known.bin", "partial.bin"])
    }

    @Test(arguments: [(PayloadChecksum.sha256, "XAmzContentSHA256Mismatch"), (.crc32c, "BadDigest"), (.md5, "BadDigest")])
    func aPartCorruptedOnItsWayIsRefused(_ mode: PayloadChecksum, _ expected: String) async throws {
        let store = try store(mode, retry: RetryPolicy(maxAttempts: 1))
        let proxy = try ProxyControl()
        let id = try await store.createMultipartUpload(key: "bad.bin", options: PutOptions())
        try await proxy.inject(.init(method: "PUT", path_contains: store.config.prefix + "bad.bin", query_contains: "partNumber=1", action: "corrupt"))
        do {
            _ = try await store.uploadPart(key: "bad.bin", uploadId: id, partNumber: 1, body: .data(testData(1 << 20, seed: 5)))
            Issue.record("a corrupted part was accepted")
        } catch let e as CairnError {
            #expect((e.cause as? S3ServiceError)?.code == expected)
            #expect((e.cause as? S3ServiceError)?.status == 400)
        }
        #expect(try await store.listParts(key: "bad.bin", uploadId: id).isEmpty)
        #expect(try await proxy.violations(containing: store.config.prefix + "bad.bin").count == 1)
        try await store.abortMultipartUpload(key: "bad.bin", uploadId: id)
    }
}
