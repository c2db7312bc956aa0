import Testing
import Foundation
import Core
import Crypto
import Pipeline

/// Single-thread throughput of the CPU-heavy stages. Skipped unless
/// CAIRN_BENCH is set; meaningful in release mode:
/// `CAIRN_BENCH=1 swift test -c release --filter ThroughputTests`
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CAIRN_BENCH"] != nil))
struct ThroughputTests {
    static let total = 256 << 20

    func measure(_ name: String, bytes: Int, _ body: () throws -> Void) rethrows {
        let start = ContinuousClock.now
        try body()
        let d = ContinuousClock.now - start
        let secs = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        print("throughput \(name): \(String(format: "%.0f", Double(bytes) / secs / 1e6)) MB/s (\(bytes >> 20) MiB in \(String(format: "%.2f", secs)) s)")
    }

    @Test func encryptAndDecrypt() throws {
        let chunk = try SecureRandom.bytes(1 << 20)
        let ring = try Keyring(keyId: "bench", key: Data(repeating: 1, count: 32))
        // Outputs are dropped as a pipeline would (keeping them measures page faults).
        let w0 = try EncryptingWriter(keyring: ring)
        try measure("encrypt (AES-256-GCM stream)", bytes: Self.total) {
            for _ in 0..<(Self.total >> 20) { _ = try w0.update(chunk) }
            _ = try w0.finalize()
        }
        let w = try EncryptingWriter(keyring: ring)
        var ct = [Data]()
        for _ in 0..<(Self.total >> 20) { ct.append(try w.update(chunk)) }
        ct.append(try w.finalize())
        let r = DecryptingReader(keyring: ring)
        try measure("decrypt", bytes: Self.total) {
            for c in ct { _ = try r.update(c) }
            _ = try r.finalize()
        }
    }

    @Test func zstdLevel3() throws {
        var text = Data()
        var i = 0
        while text.count < (8 << 20) {
            text.append(contentsOf: "\(i)\tcustomer-\(i % 977)\t\(i &* 2654435761 % 100000)\t2024-01-\(i % 28 + 1)\tsome repeated text value\n".utf8)
            i += 1
        }
        let chunks = stride(from: 0, to: text.count, by: 1 << 20).map { text.subdata(in: $0..<min(text.count, $0 + (1 << 20))) }
        let c = try ZstdCompressor(level: 3)
        var z = [Data]()
        var n = 0
        try measure("zstd -3 compress (text-like, input MB/s)", bytes: Self.total) {
            while n < Self.total { for ch in chunks where n < Self.total { z.append(try c.update(ch)); n += ch.count } }
            z.append(try c.finish())
        }
        print("zstd -3 ratio: \(String(format: "%.1f", Double(n) / Double(z.reduce(0) { $0 + $1.count })))")
        let rnd = try SecureRandom.bytes(1 << 20)
        let c2 = try ZstdCompressor(level: 3)
        try measure("zstd -3 compress (incompressible)", bytes: 64 << 20) {
            for _ in 0..<64 { _ = try c2.update(rnd) }
            _ = try c2.finish()
        }
        let d = try ZstdDecompressor()
        try measure("zstd decompress (output MB/s)", bytes: n) {
            for b in z { _ = try d.update(b) }
            _ = try d.finish()
        }
    }
}
