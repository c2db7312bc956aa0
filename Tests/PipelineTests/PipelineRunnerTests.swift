import Testing
import Foundation
import Core
import Crypto
@testable import Pipeline

/// Thread-safe accumulator for sink results.
final class SinkResult: @unchecked Sendable {
    private let lock = NSLock()
    private var _bytes = 0
    private let hasher = Hasher(.sha256)
    func add(_ d: Data) { lock.lock(); _bytes += d.count; hasher.update(d); lock.unlock() }
    var bytes: Int { lock.lock(); defer { lock.unlock() }; return _bytes }
    func digest() -> Data { lock.lock(); defer { lock.unlock() }; return hasher.finalize() }
}

@Suite struct PipelineRunnerTests {
    /// 50 MiB of compressible data, made of 1 MiB chunks that differ.
    static let chunkCount = 50
    static let baseChunks = (0..<8).map { compressibleData(1 << 20, seed: $0 * 100_000) }
    static func chunk(_ i: Int) -> Data {
        var c = baseChunks[i % baseChunks.count]
        withUnsafeBytes(of: UInt64(i).bigEndian) { b in
            for p in stride(from: 0, to: c.count - 8, by: 65536) { c.replaceSubrange(p..<p + 8, with: b) }
        }
        return c
    }

    @Test func zstdEncryptDecryptUnzstdRoundTrips50MiBThroughBoundedChannels() async throws {
        let plain = HashingCounter(), compressed = HashingCounter(), cipher = HashingCounter()
        let writer = try EncryptingWriter(keyring: testRing)
        let reader = DecryptingReader(keyring: testRing)
        let expected = Hasher(.sha256)
        for i in 0..<Self.chunkCount { expected.update(Self.chunk(i)) }
        let result = SinkResult()
        try await Pipeline.run(
            source: { ch in for i in 0..<Self.chunkCount { try await ch.send(Self.chunk(i)) } },
            stages: [plain, try ZstdCompressor(), compressed, writer, cipher, reader, try ZstdDecompressor()],
            sink: { ch in for try await d in ch { result.add(d) } },
            capacity: 2 << 20)
        #expect(plain.byteCount == Int64(Self.chunkCount << 20))
        #expect(result.bytes == Self.chunkCount << 20)
        #expect(result.digest() == expected.finalize())
        #expect(plain.sha256 != nil && compressed.byteCount < plain.byteCount / 4)
        #expect(cipher.byteCount == EncryptedStream.ciphertextSize(plaintextSize: compressed.byteCount, keyIdLength: testKeyId.utf8.count))
        #expect(reader.plaintextBytes == compressed.byteCount)
    }

    @Test func aStageErrorCancelsTheSourceAndIsRethrown() async throws {
        let sent = SinkResult()
        let e = await #expect(throws: CairnError.self) {
            try await Pipeline.run(
                // An endless source: only the failure downstream can stop it.
                source: { ch in while true { let d = randomBytes(1 << 16); try await ch.send(d); sent.add(d) } },
                stages: [DecryptingReader(keyring: testRing)],
                sink: { ch in for try await _ in ch {} },
                capacity: 1 << 20)
        }
        #expect(e?.streamFormatError == .badMagic)
        #expect(sent.bytes < 8 << 20)
    }

    @Test func aSinkErrorStopsEveryStage() async throws {
        struct SinkFailed: Error {}
        await #expect(throws: SinkFailed.self) {
            try await Pipeline.run(
                source: { ch in while true { try await ch.send(compressibleData(1 << 16)) } },
                stages: [try ZstdCompressor(), HashingCounter()],
                sink: { ch in _ = try await ch.receive(); throw SinkFailed() },
                capacity: 1 << 20)
        }
    }

    @Test func aSourceErrorReachesTheCaller() async throws {
        struct SourceFailed: Error {}
        await #expect(throws: SourceFailed.self) {
            try await Pipeline.run(
                source: { ch in try await ch.send(Data(count: 10)); throw SourceFailed() },
                stages: [HashingCounter(), HashingCounter()],
                sink: { ch in for try await _ in ch {} })
        }
    }

    @Test func cancellingTheCallerStopsThePipeline() async throws {
        let task = Task {
            try await Pipeline.run(
                source: { ch in while true { try await ch.send(Data(count: 1 << 16)) } },
                stages: [HashingCounter()],
                sink: { ch in while true { _ = try await ch.receive(); try await Task.sleep(for: .milliseconds(1)) } })
        }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let r = await task.result
        #expect(throws: (any Error).self) { try r.get() }
    }

    @Test func transformRunsOneStageBetweenTwoChannels() async throws {
        let input = ByteChannel(capacity: 1 << 16), output = ByteChannel(capacity: 1 << 16)
        let h = HashingCounter()
        async let stage: Void = transform(input: input, output: output, stage: h)
        async let feed: Void = {
            for _ in 0..<100 { try await input.send(Data(repeating: 7, count: 10_000)) }
            input.finish()
        }()
        var total = 0
        for try await d in output { total += d.count }
        try await stage; try await feed
        #expect(total == 1_000_000 && h.byteCount == 1_000_000)
        #expect(h.sha256 == Digest.sha256(Data(repeating: 7, count: 1_000_000)))
    }
}
