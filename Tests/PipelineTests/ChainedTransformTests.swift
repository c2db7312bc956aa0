import Foundation
import Testing
import Core
import Crypto
@testable import Pipeline

@Suite struct ChainedTransformTests {
    /// The backup's chain (count → zstd with a worker → encrypt → hash) on one
    /// thread gives a stream that decrypts and decompresses to the input, and
    /// each stage's counters match the separate stages'.
    @Test func chainedStagesGiveTheSameStreamAsSeparateOnes() throws {
        let input = (0..<12).map { compressibleData(700_000 + $0 * 1000, seed: $0 * 31) }
        let plain = HashingCounter(hashing: false)
        let zstd = try ZstdCompressor(level: 3, workers: 1, jobSize: 1 << 20)
        let enc = try EncryptingWriter(keyring: testRing, segmentSize: 1 << 16)
        let cipher = HashingCounter()
        let chain = ChainedTransform([plain, zstd, enc, cipher])
        var stored = Data()
        for c in input { stored.append(try chain.update(c)) }
        stored.append(try chain.finish())
        let total = input.reduce(0) { $0 + $1.count }
        #expect(plain.byteCount == Int64(total))
        #expect(plain.sha256 == nil)
        #expect(cipher.byteCount == Int64(stored.count))
        #expect(cipher.sha256 == Digest.sha256(stored))
        #expect(zstd.inputBytes == Int64(total))

        let dec = DecryptingReader(keyring: testRing)
        let unz = try ZstdDecompressor()
        let back = ChainedTransform([dec, unz])
        var out = Data()
        for off in stride(from: 0, to: stored.count, by: 100_000) {
            out.append(try back.update(stored.subdata(in: off..<min(off + 100_000, stored.count))))
        }
        out.append(try back.finish())
        #expect(out == input.reduce(Data(), +))
    }

    /// A stage's finish output runs through the stages after it.
    @Test func finishTailsFlowThroughLaterStages() throws {
        let zstd = try ZstdCompressor(level: 3)
        let after = HashingCounter()
        let chain = ChainedTransform([zstd, after])
        let a = try chain.update(Data(repeating: 65, count: 1000))
        let b = try chain.finish()
        #expect(after.byteCount == Int64(a.count + b.count))
        #expect(b.count > 0)
    }

    /// The restore's chain (hash → decrypt → zstd -d → count) through the
    /// emitting calls: pieces held until the end are intact (no pooled buffer
    /// is reused while held), and every stage counted every byte.
    @Test func emittingChainKeepsHeldPiecesIntact() throws {
        let input = compressibleData(6 << 20, seed: 11) + randomBytes(1 << 20)
        let stored = try encrypt(try runTransform(ZstdCompressor(), input, chunk: 1 << 20), segmentSize: 1 << 18)
        let cipher = HashingCounter()
        let dec = DecryptingReader(keyring: testRing)
        let unz = try ZstdDecompressor()
        let plain = HashingCounter()
        let chain = ChainedTransform([cipher, dec, unz, plain])
        var pieces: [Data] = []
        for off in stride(from: 0, to: stored.count, by: 99_999) {
            try chain.update(stored.subdata(in: off..<min(off + 99_999, stored.count))) { pieces.append($0) }
        }
        try chain.finish { pieces.append($0) }
        #expect(pieces.reduce(Data(), +) == input)
        #expect(cipher.byteCount == Int64(stored.count) && cipher.sha256 == Digest.sha256(stored))
        #expect(plain.byteCount == Int64(input.count) && plain.sha256 == Digest.sha256(input))
        #expect(dec.plaintextBytes == unz.inputBytes)
    }
}
