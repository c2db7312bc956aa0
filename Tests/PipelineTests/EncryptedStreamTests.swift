import Testing
import Foundation
import Core
import Crypto
@testable import Pipeline

@Suite struct EncryptedStreamRoundTripTests {
    @Test(arguments: [1, 16, 1000, 65536])
    func roundTripsEdgeSizes(segmentSize: Int) throws {
        let s = segmentSize
        for size in Set([0, 1, s - 1, s, s + 1, 2 * s, 3 * s + 5].filter { $0 >= 0 }).sorted() {
            let pt = randomBytes(size)
            for chunk in [1 + size / 3, 7, 1 << 20] where chunk > 0 && (size / chunk) < 5000 {
                let ct = try encrypt(pt, segmentSize: s, chunk: chunk)
                #expect(Int64(ct.count) == EncryptedStream.ciphertextSize(plaintextSize: Int64(size), segmentSize: s, keyIdLength: testKeyId.utf8.count))
                #expect(try decrypt(ct, chunk: chunk) == pt, "segment \(s) size \(size) chunk \(chunk)")
            }
        }
    }

    @Test func roundTripsSeveralMiBWithDefaultSegments() throws {
        let s = EncryptedStream.defaultSegmentSize
        for size in [s - 1, s, s + 1, 3 * s + 12345] {
            let pt = randomBytes(size)
            let w = try EncryptingWriter(keyring: testRing)
            let ct = try runTransform(w, pt, chunk: 300_000)
            #expect(w.plaintextBytes == Int64(size))
            #expect(w.ciphertextBytes == Int64(ct.count))
            #expect(Int64(ct.count) == EncryptedStream.ciphertextSize(plaintextSize: Int64(size), keyIdLength: testKeyId.utf8.count))
            let r = DecryptingReader(keyring: testRing)
            #expect(try runTransform(r, ct, chunk: 1 << 20 + 3) == pt)
            #expect(r.keyId == testKeyId)
            #expect(r.segmentSize == s)
            #expect(r.plaintextBytes == Int64(size))
            #expect(try runTransform(DecryptingReader(keyring: testRing), ct, chunk: 777_777, joined: true) == pt)
        }
    }

    /// Each segment is handed out on its own, in a reused buffer that is not
    /// written again while it is held: segments kept until the end are
    /// intact, whether they were opened in place from the input (chunks of
    /// several segments) or gathered across inputs (chunks smaller than one).
    @Test func handsOutSegmentsThatStayIntactWhileHeld() throws {
        let s = 4096
        let pt = randomBytes(40 * s + 100)
        let ct = try encrypt(pt, segmentSize: s)
        for chunk in [1000, s + 16, 3 * s + 50, 1 << 20] {
            let r = DecryptingReader(keyring: testRing)
            var pieces: [Data] = []
            for off in stride(from: 0, to: ct.count, by: chunk) {
                try r.update(ct.subdata(in: off..<min(ct.count, off + chunk))) { pieces.append($0) }
            }
            try r.finish { pieces.append($0) }
            #expect(pieces.count == 41, "chunk \(chunk)")
            #expect(pieces.dropLast().allSatisfy { $0.count == s }, "chunk \(chunk)")
            #expect(pieces.reduce(Data(), +) == pt, "chunk \(chunk)")
        }
    }

    @Test func decryptsByteByByte() throws {
        let pt = randomBytes(300)
        let ct = try encrypt(pt, segmentSize: 64)
        #expect(try decrypt(ct, chunk: 1) == pt)
    }

    @Test func usesFreshKeysSaltAndNoncesPerStream() throws {
        let pt = Data(count: 100)
        let a = try encrypt(pt, segmentSize: 64), b = try encrypt(pt, segmentSize: 64)
        #expect(a != b)
        #expect(a.prefix(8) == Data("CAIRNENC".utf8))
        #expect(a[8] == 2)
    }

    @Test func readsStreamsFromAnyKeyInTheKeyring() throws {
        var ring = try Keyring(keyId: "old", key: Data(repeating: 1, count: 32))
        let old = try encrypt(Data("old backup".utf8), keyring: ring)
        try ring.add(keyId: "new", key: Data(repeating: 2, count: 32), makeActive: true)
        let new = try encrypt(Data("new backup".utf8), keyring: ring)
        #expect(try decrypt(old, keyring: ring) == Data("old backup".utf8))
        #expect(try decrypt(new, keyring: ring) == Data("new backup".utf8))
        #expect(new[10..<13] == Data("new".utf8))
    }
}

@Suite struct EncryptedStreamTamperTests {
    // 4 full segments of 64 bytes and a last one of 10, in a version 2 stream with a context.
    static let seg = 64
    static let cs = seg + EncryptedStream.tagSize
    static let plaintext = randomBytes(4 * seg + 10)
    static let context = StreamContext(job: "tamper", backupID: "20261203T023000Z-0badc0de", object: "dump")
    static let contextLength = try! context.encoded().count
    static let header = EncryptedStream.headerSize(keyIdLength: testKeyId.utf8.count, contextLength: contextLength)
    let ct: Data

    init() throws { ct = try encrypt(Self.plaintext, segmentSize: Self.seg, context: Self.context) }

    func segmentRange(_ i: Int) -> Range<Int> {
        let start = Self.header + i * Self.cs
        return start ..< min(ct.count, start + Self.cs)
    }

    func expectKind(_ kind: StreamFormatError, _ data: Data, keyring: Keyring = testRing, chunk: Int = 1 << 16,
                    contains text: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let got = streamError { try decrypt(data, keyring: keyring, chunk: chunk) }
        #expect(got?.kind == kind, "got \(String(describing: got?.error))", sourceLocation: sourceLocation)
        #expect(got?.error.code == kind.code, sourceLocation: sourceLocation)
        if let text { #expect(got?.error.message.contains(text) == true, "message: \(got?.error.message ?? "-")", sourceLocation: sourceLocation) }
    }

    @Test func truncationAtASegmentBoundaryIsTruncated() {
        for n in 0..<5 {
            expectKind(.truncated, ct.prefix(Self.header + n * Self.cs), contains: "truncated")
        }
        // Dropping exactly the last segment.
        expectKind(.truncated, ct.prefix(segmentRange(4).lowerBound), contains: "not the last segment")
    }

    @Test func truncationInsideASegmentIsTruncated() {
        for cut in [1, 15, 16, 17, 40, Self.cs - 1] {
            expectKind(.truncated, ct.prefix(segmentRange(2).lowerBound + cut))
        }
        expectKind(.truncated, ct.prefix(ct.count - 1))
    }

    @Test func truncationInsideTheHeaderIsTruncated() {
        for n in [0, 1, 8, 9, 10, Self.header - 1] {
            expectKind(.truncated, ct.prefix(n), contains: "inside the header")
        }
    }

    @Test func bytesAfterTheLastSegmentAreTrailingData() throws {
        for extra in [Data([0]), Data(count: 5), randomBytes(100), ct.subdata(in: segmentRange(4))] {
            expectKind(.trailingData, ct + extra, contains: "trailing data")
            expectKind(.trailingData, ct + extra, chunk: 1)
        }
        // A stream whose last segment is full.
        let full = try encrypt(randomBytes(4 * Self.seg), segmentSize: Self.seg)
        for extra in [Data([1]), randomBytes(Self.cs * 3)] {
            expectKind(.trailingData, full + extra)
        }
    }

    @Test func aFlippedBitInTheHeaderIsDetected() {
        let k = testKeyId.utf8.count
        let c = Self.contextLength
        #expect(ct.count == Int(EncryptedStream.ciphertextSize(plaintextSize: Int64(Self.plaintext.count), segmentSize: Self.seg,
                                                                keyIdLength: k, contextLength: c)))
        for i in 0..<Self.header {
            for bit in [0, 7] {
                var bad = ct
                bad[i] ^= UInt8(1 << bit)
                let got = streamError { try decrypt(bad) }
                #expect(got != nil, "flip at header byte \(i) bit \(bit) not detected")
                let expected: StreamFormatError?
                switch i {
                case 0..<8: expected = .badMagic
                case 8: expected = .unsupportedVersion
                case 9: expected = nil   // key id length: parsing shifts; any stream error
                case 10..<(10 + k): expected = bit == 0 ? .unknownKeyId : .malformedHeader   // bit 7: not UTF-8
                case (10 + k)..<(12 + k): expected = nil   // context length: parsing shifts
                case (12 + k)..<(12 + k + c): expected = nil   // context: malformed, or the AAD no longer unwraps the key
                case (12 + k + c + 39)..<(12 + k + c + 43): expected = nil   // segment size: malformed or header MAC
                case 12 + k + c + 43: expected = .malformedHeader   // key block length
                default: expected = .headerAuthenticationFailed   // salt, nonce prefix, key check, wrapped key, MAC
                }
                if let expected { #expect(got?.kind == expected, "header byte \(i) bit \(bit): \(String(describing: got?.error))") }
                else {
                    // A shifted context length moves the key check value too: it can read as a wrong key.
                    let shifted: [StreamFormatError] = (10 + k ..< 12 + k).contains(i) ? [.wrongKey] : []
                    #expect(([.malformedHeader, .headerAuthenticationFailed, .unknownKeyId, .truncated] + shifted).contains(got?.kind),
                            "header byte \(i) bit \(bit): \(String(describing: got?.error))")
                }
            }
        }
    }

    @Test func aFlippedBitInASegmentFailsAuthenticationAtThatSegment() {
        for (segment, offset) in [(0, 0), (1, 33), (2, Self.seg - 1), (3, Self.seg + 5) /* tag */, (1, Self.cs - 1) /* tag */] {
            var bad = ct
            bad[segmentRange(segment).lowerBound + offset] ^= 0x20
            expectKind(.authenticationFailed, bad, contains: "authentication failed at segment \(segment) ")
        }
    }

    @Test func aFlippedBitInTheLastSegmentIsRejected() {
        // Indistinguishable from a cut inside the last segment: reported as truncated (docs/FORMAT.md §6).
        for offset in [0, 9, 10, 25] {
            var bad = ct
            bad[segmentRange(4).lowerBound + offset] ^= 0x01
            expectKind(.truncated, bad, contains: "without an authentic last segment")
        }
    }

    @Test func swappedSegmentsFailAuthentication() {
        var bad = ct
        let a = ct.subdata(in: segmentRange(1)), b = ct.subdata(in: segmentRange(2))
        bad.replaceSubrange(segmentRange(1), with: b)
        bad.replaceSubrange(segmentRange(2), with: a)
        expectKind(.authenticationFailed, bad, contains: "segment 1 ")
    }

    @Test func aRepeatedSegmentFailsAuthentication() {
        var bad = ct
        bad.insert(contentsOf: ct.subdata(in: segmentRange(1)), at: segmentRange(2).lowerBound)
        expectKind(.authenticationFailed, bad, contains: "segment 2 ")
        // Replaying the first segment at the start of the body too.
        var bad2 = ct
        bad2.replaceSubrange(segmentRange(1), with: ct.subdata(in: segmentRange(0)))
        expectKind(.authenticationFailed, bad2, contains: "segment 1 ")
    }

    @Test func aSegmentFromAnotherStreamFailsAuthentication() throws {
        let other = try encrypt(Self.plaintext, segmentSize: Self.seg)
        var bad = ct
        bad.replaceSubrange(segmentRange(1), with: other.subdata(in: segmentRange(1)))
        expectKind(.authenticationFailed, bad)
        // Or a whole other header on this body.
        var bad2 = ct
        bad2.replaceSubrange(0..<Self.header, with: other.prefix(Self.header))
        expectKind(.authenticationFailed, bad2, contains: "segment 0 ")
    }

    @Test func aWrongKeyIsReportedAsSuch() throws {
        let ring = try Keyring(keyId: testKeyId, key: Data(repeating: 9, count: 32))
        expectKind(.wrongKey, ct, keyring: ring, contains: "wrong key for key id \"\(testKeyId)\"")
    }

    @Test func anUnknownKeyIdIsReportedAsSuch() throws {
        let ring = try Keyring(keyId: "other", key: testKey)
        expectKind(.unknownKeyId, ct, keyring: ring, contains: "key id \"\(testKeyId)\" is not in the keyring")
    }

    @Test func anUnknownVersionIsReportedAsSuch() {
        var bad = ct
        bad[8] = 3
        expectKind(.unsupportedVersion, bad, contains: "version 3")
        bad[8] = 0
        expectKind(.unsupportedVersion, bad, contains: "version 0")
    }

    @Test func badMagicIsNotACairnStream() {
        expectKind(.badMagic, Data("PGDMP\u{1}\u{e}\u{0}".utf8) + randomBytes(500), contains: "not a Cairn encrypted stream")
        expectKind(.badMagic, Data("CAIRNENX".utf8) + ct.dropFirst(8))
        expectKind(.badMagic, Data("X".utf8), chunk: 1)
    }

    @Test func everyFailureHasItsOwnMessage() throws {
        var bad = ct; bad[segmentRange(1).lowerBound] ^= 1
        var v = ct; v[8] = 9
        var h = ct; h[Self.header - 1] ^= 1
        let cases: [Data] = [ct.prefix(segmentRange(4).lowerBound), ct + Data([0]), bad, v, h, Data("nope".utf8)]
        var messages = Set<String>(), kinds = Set<StreamFormatError>()
        for c in cases {
            let e = try #require(streamError { try decrypt(c) })
            messages.insert(e.error.message); kinds.insert(e.kind)
        }
        for ring in [try Keyring(keyId: testKeyId, key: Data(count: 32)), try Keyring(keyId: "x", key: testKey)] {
            let e = try #require(streamError { try decrypt(ct, keyring: ring) })
            messages.insert(e.error.message); kinds.insert(e.kind)
        }
        #expect(kinds.count == 8)
        #expect(messages.count == 8)
        // Messages are one line and say nothing about key material.
        for m in messages { #expect(!m.contains("\n")); #expect(!m.contains(testKey.hexString)) }
    }

    @Test func writerRefusesUnknownKeyIdsAndBadSegmentSizes() {
        #expect(streamError { try EncryptingWriter(keyring: testRing, keyId: "nope") }?.kind == .unknownKeyId)
        #expect(throws: CairnError.self) { try EncryptingWriter(keyring: testRing, segmentSize: 0) }
        #expect(throws: CairnError.self) { try EncryptingWriter(keyring: testRing, segmentSize: (1 << 26) + 1) }
    }
}
