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

    /// The decompressor hands out whole 1 MiB buffers (only the last one
    /// short), and a buffer handed out is never written again while someone
    /// holds it: pieces kept until the end still hold what they held.
    @Test func handsOutWholeBuffersThatStayIntactWhileHeld() throws {
        let data = compressibleData(9 << 20 + 12345, seed: 7)
        let z = try runTransform(ZstdCompressor(), data, chunk: 1 << 20)
        let d = try ZstdDecompressor()
        var pieces: [Data] = []
        for off in stride(from: 0, to: z.count, by: 70_001) {
            try d.update(z.subdata(in: off..<min(z.count, off + 70_001))) { pieces.append($0) }
        }
        try d.finish { pieces.append($0) }
        #expect(pieces.count == 10)
        #expect(pieces.dropLast().allSatisfy { $0.count == ZstdDecompressor.outputBufferSize })
        #expect(pieces.reduce(Data(), +) == data)
        #expect(d.outputBytes == Int64(data.count) && d.inputBytes == Int64(z.count))
        // Released pieces' buffers are reused: the output is still right.
        let again = try ZstdDecompressor()
        var out = Data()
        for off in stride(from: 0, to: z.count, by: 1 << 20) {
            try again.update(z.subdata(in: off..<min(z.count, off + (1 << 20)))) { out.append($0) }
        }
        try again.finish { out.append($0) }
        #expect(out == data)
    }

    /// `update`/`finish` returning one `Data` give the same bytes.
    @Test func joinedCallsGiveTheSameOutput() throws {
        let data = compressibleData(3 << 20, seed: 3)
        let z = try runTransform(ZstdCompressor(), data, chunk: 1 << 20)
        #expect(try runTransform(ZstdDecompressor(), z, chunk: 50_000, joined: true) == data)
    }

    /// The compressor's pooled output: pieces kept until the end are intact,
    /// output comes out at the end of every call (not only when a buffer
    /// fills), and no piece is larger than a buffer.
    @Test func compressorPiecesStayIntactWhileHeld() throws {
        let data = compressibleData(12 << 20, seed: 5) + randomBytes(3 << 20)
        let c = try ZstdCompressor()
        var pieces: [Data] = []
        var callsWithOutput = 0
        for off in stride(from: 0, to: data.count, by: 1 << 20) {
            let before = pieces.count
            try c.update(data.subdata(in: off..<min(data.count, off + (1 << 20)))) { pieces.append($0) }
            if pieces.count > before { callsWithOutput += 1 }
        }
        try c.finish { pieces.append($0) }
        #expect(pieces.allSatisfy { $0.count <= ZstdCompressor.outputBufferSize })
        #expect(callsWithOutput >= 10)
        let z = pieces.reduce(Data(), +)
        #expect(Int64(z.count) == c.outputBytes)
        #expect(try runTransform(ZstdDecompressor(), z, chunk: 1 << 20) == data)
    }
}
