import Testing
import Foundation
import Core
import Crypto
@testable import Pipeline

/// Version 2 headers name the backup a stream belongs to (docs/FORMAT.md §2).
@Suite struct EncryptedStreamContextTests {
    let ctx = StreamContext(job: "marketplace-db", backupID: "20261203T023000Z-1a2b3c4d", object: "dump")

    @Test func theContextIsWrittenIntoTheHeaderAndReadBack() throws {
        let pt = randomBytes(1000)
        let ct = try encrypt(pt, segmentSize: 256, context: ctx)
        let encoded = try ctx.encoded()
        #expect(encoded == Data([14]) + Data("marketplace-db".utf8) + Data([25]) + Data("20261203T023000Z-1a2b3c4d".utf8) + Data([4]) + Data("dump".utf8))
        let k = testKeyId.utf8.count
        #expect(ct[8] == 2)
        #expect(Int(ct[10 + k]) << 8 | Int(ct[11 + k]) == encoded.count)
        #expect(ct.subdata(in: 12 + k ..< 12 + k + encoded.count) == encoded)
        #expect(Int64(ct.count) == EncryptedStream.ciphertextSize(plaintextSize: 1000, segmentSize: 256, keyIdLength: k, contextLength: encoded.count))

        let r = DecryptingReader(keyring: testRing, expectedContext: ctx, requireContext: true)
        #expect(try runTransform(r, ct, chunk: 7) == pt)
        #expect(r.version == 2)
        #expect(r.context == ctx)
        // A reader that expects nothing still reads it, and reports the context.
        let plain = DecryptingReader(keyring: testRing)
        #expect(try runTransform(plain, ct, chunk: 1 << 16) == pt)
        #expect(plain.context == ctx)
    }

    @Test func anotherBackupsStreamIsRefusedNamingBoth() throws {
        let older = StreamContext(job: "marketplace-db", backupID: "20261101T023000Z-99999999", object: "dump")
        let ct = try encrypt(Data("old data".utf8), context: older)
        let got = try #require(streamError { try decrypt(ct, expecting: ctx, requireContext: true) })
        #expect(got.kind == .contextMismatch)
        #expect(got.error.code == .integrity)
        #expect(got.error.message.contains("does not belong to the dump of backup 20261203T023000Z-1a2b3c4d of job marketplace-db"))
        #expect(got.error.message.contains("its header names the dump of backup 20261101T023000Z-99999999 of job marketplace-db"))
        // Another job, or the globals object of the same backup.
        for wrong in [StreamContext(job: "other-db", backupID: ctx.backupID, object: "dump"),
                      StreamContext(job: ctx.job, backupID: ctx.backupID, object: "globals")] {
            let other = try encrypt(Data("x".utf8), context: wrong)
            let e = streamError { try decrypt(other, expecting: ctx) }
            #expect(e?.kind == .contextMismatch, "\(wrong)")
            #expect(e?.error.message.contains(wrong.description) == true)
        }
    }

    @Test func aStreamWithoutContextIsRefusedWhenOneIsExpected() throws {
        let ct = try encrypt(Data("no context".utf8))
        #expect(ct[8] == 2)
        #expect(try decrypt(ct) == Data("no context".utf8))
        let got = streamError { try decrypt(ct, expecting: ctx) }
        #expect(got?.kind == .contextMismatch)
        #expect(got?.error.message.contains("its header names no backup") == true)
    }

    @Test func theContextCannotBeRewrittenWithoutTheKey() throws {
        let ct = try encrypt(randomBytes(100), segmentSize: 64, context: ctx)
        // Same length, another backup id: what an attacker relabelling objects would write.
        var relabelled = ct
        let k = testKeyId.utf8.count
        let idStart = 12 + k + 1 + ctx.job.utf8.count + 1
        relabelled.replaceSubrange(idStart ..< idStart + 25, with: Data("20261204T023000Z-1a2b3c4d".utf8))
        let want = StreamContext(job: ctx.job, backupID: "20261204T023000Z-1a2b3c4d", object: "dump")
        let got = streamError { try decrypt(relabelled, expecting: want) }
        #expect(got?.kind == .headerAuthenticationFailed)
        // Or dropped altogether, claiming version 1 (the wrap AAD covers version and context).
        var v1 = Data(ct.prefix(10 + k))
        v1[8] = 1
        v1.append(ct.suffix(from: 12 + k + (try ctx.encoded().count)))
        #expect(streamError { try decrypt(v1) }?.kind == .headerAuthenticationFailed)
    }

    @Test func malformedContextsAreRefused() throws {
        #expect(throws: CairnError.self) { try StreamContext(job: "", backupID: "x", object: "dump").encoded() }
        #expect(throws: CairnError.self) { try StreamContext(job: String(repeating: "j", count: 256), backupID: "x", object: "dump").encoded() }
        #expect(throws: CairnError.self) { try EncryptingWriter(keyring: testRing, context: StreamContext(job: "j", backupID: "", object: "dump")) }
        #expect(try StreamContext.decode(Data()) == nil)
        for bad in [Data([1]), Data([1, 0x61, 1, 0x62]), Data([1, 0x61, 1, 0x62, 1, 0x63, 0]), Data([1, 0xff, 1, 0x62, 1, 0x63]), Data([0, 1, 0x61, 1, 0x62])] {
            let e = streamError { try StreamContext.decode(bad) }
            #expect(e?.kind == .malformedHeader, "\(bad.hexString)")
        }
        #expect(try StreamContext.decode(Data([1, 0x61, 1, 0x62, 1, 0x63])) == StreamContext(job: "a", backupID: "b", object: "c"))
    }
}

/// Streams written by Cairn before version 2 stay readable. These vectors
/// were made from docs/FORMAT.md (version 1) with fixed keys and nonces, and
/// checked with the version 1 decryptor (scripts/decrypt-backup.py of that time).
@Suite struct EncryptedStreamVersion1Tests {
    /// 45 bytes in segments of 16 (3 segments).
    static let v1a = Data(hexString: "434149524e454e430108746573742d6b6579505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f30313233343536000000104c39d5f337ae3e846e4e622d32c173101f101112131415161718191a1bc926d7d5447203f18fb7bb3756d9982ae2cd12801d4f469b50cb4845ed504ae4bcbb85d566f3f1206dc52e7ba6254b40eee95a1b9144df4343357b1a5423333e9c127091c25b631e0dcea900ebb1deef3a5d813ec2869d7b58f935ca4128eef199fafda8f5c4fc91792d3a69d3fbf01322a354aad8183c37959ddf6d6de18101f4a81aee85d01f17540fd6d592d94045e7d1ec078a319c44b65e1575b593239219c8d037b6c8e0c1a7cf0e5acb")!
    static let v1aPlaintext = Data("Cairn version 1 stream, three segments of 16.".utf8)
    /// An empty plaintext, segment size 64.
    static let v1b = Data(hexString: "434149524e454e430108746573742d6b65795152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f7031323334353637000000404c39d5f337ae3e846e4e622d32c173101f1112131415161718191a1b1c37c152624e8ebdcc88d3bb90d123fe5c1cbcb78d107efd9cc4382199f8c490611648c1b80d028a40f6ccd1326026f20d2d77ecaf52875db3a4c10110c4cb2ae6b9c8cd4067be220d97b7a095eae978221c64f7d366b470ca6a8b3a30c8f0e657")!

    @Test func version1VectorsDecrypt() throws {
        #expect(Self.v1a[8] == 1 && Self.v1b[8] == 1)
        let r = DecryptingReader(keyring: testRing)
        #expect(try runTransform(r, Self.v1a, chunk: 5) == Self.v1aPlaintext)
        #expect(r.version == 1)
        #expect(r.context == nil)
        #expect(r.segmentSize == 16)
        #expect(Self.v1a.count == EncryptedStream.headerSizeV1(keyIdLength: 8) + 45 + 3 * 16)
        #expect(try decrypt(Self.v1b, chunk: 1) == Data())
    }

    @Test func version1IsReadWithAnExpectedContextUnlessOneIsRequired() throws {
        let ctx = StreamContext(job: "j", backupID: "20261101T023000Z-00000000", object: "dump")
        #expect(try decrypt(Self.v1a, expecting: ctx) == Self.v1aPlaintext)
        let got = streamError { try decrypt(Self.v1a, expecting: ctx, requireContext: true) }
        #expect(got?.kind == .contextMismatch)
        #expect(got?.error.message.contains("it is a version 1 stream, which names no backup") == true)
    }

    @Test func version1TamperingIsStillDetected() throws {
        let h = EncryptedStream.headerSizeV1(keyIdLength: 8)
        var header = Self.v1a; header[h - 1] ^= 1
        #expect(streamError { try decrypt(header) }?.kind == .headerAuthenticationFailed)
        var segment = Self.v1a; segment[h + 3] ^= 0x40
        #expect(streamError { try decrypt(segment) }?.kind == .authenticationFailed)
        #expect(streamError { try decrypt(Self.v1a.prefix(h + 32)) }?.kind == .truncated)
        #expect(streamError { try decrypt(Self.v1a + Data([0])) }?.kind == .trailingData)
        let other = try Keyring(keyId: testKeyId, key: Data(repeating: 3, count: 32))
        #expect(streamError { try decrypt(Self.v1a, keyring: other) }?.kind == .wrongKey)
    }
}
