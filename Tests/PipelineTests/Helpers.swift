import Foundation
import Core
import Crypto
@testable import Pipeline

let testKey = Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
let testKeyId = "test-key"
let testRing = try! Keyring(keyId: testKeyId, key: testKey)

func randomBytes(_ n: Int) -> Data { n == 0 ? Data() : try! SecureRandom.bytes(n) }

/// Feeds `data` to `t` in chunks of `chunk` bytes, then finishes, through
/// the emitting calls the pipeline uses (`joined: true`: through the calls
/// that return one `Data`).
func runTransform(_ t: some ByteTransform, _ data: Data, chunk: Int, joined: Bool = false) throws -> Data {
    var out = Data()
    var off = 0
    while off < data.count {
        let end = min(data.count, off + chunk)
        let piece = data.subdata(in: off..<end)
        if joined { out.append(try t.update(piece)) } else { try t.update(piece) { out.append($0) } }
        off = end
    }
    if joined { out.append(try t.finish()) } else { try t.finish { out.append($0) } }
    return out
}

func encrypt(_ plaintext: Data, segmentSize: Int = EncryptedStream.defaultSegmentSize, chunk: Int = 1 << 16,
             keyring: Keyring = testRing, context: StreamContext? = nil) throws -> Data {
    try runTransform(EncryptingWriter(keyring: keyring, segmentSize: segmentSize, context: context), plaintext, chunk: chunk)
}

func decrypt(_ ciphertext: Data, keyring: Keyring = testRing, chunk: Int = 1 << 16,
             expecting: StreamContext? = nil, requireContext: Bool = false) throws -> Data {
    try runTransform(DecryptingReader(keyring: keyring, expectedContext: expecting, requireContext: requireContext), ciphertext, chunk: chunk)
}

/// The stream error kind `body` throws (nil if it does not throw a stream error).
func streamError(_ body: () throws -> Any) -> (kind: StreamFormatError, error: CairnError)? {
    do { _ = try body(); return nil } catch let e as CairnError {
        guard let k = e.streamFormatError else { return nil }
        return (k, e)
    } catch { return nil }
}

/// Compressible text-like data, `count` bytes, deterministic.
func compressibleData(_ count: Int, seed: Int = 0) -> Data {
    var out = Data(capacity: count)
    var i = seed
    while out.count < count {
        out.append(contentsOf: "\(i)\tcustomer-\(i % 977)\t\(i &* 2654435761 % 100000)\t2024-01-\(i % 28 + 1)\tsome repeated text value\n".utf8)
        i += 1
    }
    return out.prefix(count)
}

var repoRoot: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}
