import Testing
import Foundation
import Core
@testable import Pipeline

@Suite struct ZstdTests {
    @Test(arguments: [0, 1, 1000, 3 << 20])
    func roundTripsCompressibleData(size: Int) throws {
        let data = compressibleData(size)
        let z = try runTransform(ZstdCompressor(), data, chunk: 100_000)
        if size > 1000 { #expect(z.count < size / 3) }
        #expect(try runTransform(ZstdDecompressor(), z, chunk: 4097) == data)
        #expect(try runTransform(ZstdDecompressor(), z, chunk: 1 << 22) == data)
    }

    @Test func roundTripsRandomDataWithWorkersAndOtherLevels() throws {
        let data = randomBytes(2 << 20) + compressibleData(2 << 20)
        for (level, workers) in [(1, 0), (3, 2), (19, 0), (-5, 0)] as [(Int32, Int32)] where !(level == 19 && data.count > (4 << 20)) {
            let c = try ZstdCompressor(level: level, workers: workers)
            let z = try runTransform(c, data, chunk: 1 << 20)
            #expect(c.inputBytes == Int64(data.count) && c.outputBytes == Int64(z.count))
            #expect(try runTransform(ZstdDecompressor(), z, chunk: 65536) == data, "level \(level) workers \(workers)")
        }
    }

    @Test func decompressesConcatenatedFrames() throws {
        let a = compressibleData(5000, seed: 1), b = compressibleData(7000, seed: 2)
        let z = try runTransform(ZstdCompressor(), a, chunk: 999) + runTransform(ZstdCompressor(), b, chunk: 999)
        #expect(try runTransform(ZstdDecompressor(), z, chunk: 100) == a + b)
    }

    @Test func corruptInputIsAnIntegrityError() throws {
        let z = try runTransform(ZstdCompressor(), compressibleData(1 << 20), chunk: 1 << 20)
        for offset in [0, 5, z.count / 2, z.count - 2] {
            var bad = z
            bad[offset] ^= 0x55
            let e = #expect(throws: CairnError.self) { try runTransform(ZstdDecompressor(), bad, chunk: 65536) }
            #expect(e?.code == .integrity, "offset \(offset): \(String(describing: e))")
        }
        let e = #expect(throws: CairnError.self) { try runTransform(ZstdDecompressor(), randomBytes(1000), chunk: 100) }
        #expect(e?.message.contains("corrupt") == true)
    }

    @Test func truncatedInputIsAnIntegrityError() throws {
        let z = try runTransform(ZstdCompressor(), compressibleData(1 << 20), chunk: 1 << 20)
        for cut in [1, 4, z.count / 2, z.count - 1] {
            let e = #expect(throws: CairnError.self) { try runTransform(ZstdDecompressor(), z.prefix(cut), chunk: 65536) }
            #expect(e?.code == .integrity)
            #expect(e?.message.contains("truncated") == true, "\(String(describing: e))")
        }
        let empty = #expect(throws: CairnError.self) { try runTransform(ZstdDecompressor(), Data(), chunk: 1) }
        #expect(empty?.message.contains("empty") == true)
    }
}
