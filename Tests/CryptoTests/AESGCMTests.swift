import Testing
import Foundation
import Core
@testable import Crypto

private func hex(_ s: String) -> Data { Data(hexString: s)! }

@Suite struct AESGCMTests {
    // "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega, test case 16 (AES-256, 96-bit IV, AAD).
    @Test func matchesGCMSpecTestCase16() throws {
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
        let pt = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let iv = hex("cafebabefacedbaddecaf888")
        let ct = hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662")
        let tag = hex("76fc6ece0f4e1768cddf8853bb2d551b")
        let gcm = try AESGCM(key: key)
        #expect(try gcm.seal(pt, nonce: iv, aad: aad) == ct + tag)
        #expect(try gcm.open(ct + tag, nonce: iv, aad: aad) == pt)
        // The same object keeps working for further messages (context reuse).
        #expect(try gcm.seal(pt, nonce: iv, aad: aad) == ct + tag)
    }

    // GCM spec test cases 13 (empty plaintext) and 14 (one zero block), AES-256 zero key and IV.
    @Test func matchesGCMSpecTestCases13And14() throws {
        let gcm = try AESGCM(key: Data(count: 32))
        #expect(try gcm.seal(Data(), nonce: Data(count: 12)) == hex("530f8afbc74536b9a963b4f1c4cb738b"))
        #expect(try gcm.seal(Data(count: 16), nonce: Data(count: 12))
                == hex("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"))
        #expect(try gcm.open(hex("530f8afbc74536b9a963b4f1c4cb738b"), nonce: Data(count: 12)) == Data())
    }

    @Test func rejectsAlteredCiphertextTagAADOrNonce() throws {
        let gcm = try AESGCM(key: Data(repeating: 7, count: 32))
        let nonce = Data(repeating: 1, count: 12)
        let sealed = try gcm.seal(Data("attack at dawn".utf8), nonce: nonce, aad: Data("hdr".utf8))
        for i in [0, 5, sealed.count - 1] {
            var bad = sealed
            bad[i] ^= 0x01
            #expect(throws: CairnError.self) { try gcm.open(bad, nonce: nonce, aad: Data("hdr".utf8)) }
        }
        #expect(throws: CairnError.self) { try gcm.open(sealed, nonce: nonce, aad: Data("hdx".utf8)) }
        #expect(throws: CairnError.self) { try gcm.open(sealed, nonce: Data(count: 12), aad: Data("hdr".utf8)) }
        #expect(throws: CairnError.self) { try gcm.open(Data(count: 5), nonce: nonce) }
        #expect(try gcm.open(sealed, nonce: nonce, aad: Data("hdr".utf8)) == Data("attack at dawn".utf8))
    }

    @Test func rejectsKeysThatAreNot32Bytes() {
        #expect(throws: CairnError.self) { try AESGCM(key: Data(count: 16)) }
    }

    // RFC 5869 appendix A, test cases 1 and 3 (SHA-256).
    @Test func hkdfMatchesRFC5869() throws {
        let okm1 = try HKDF.sha256(key: Data(repeating: 0x0b, count: 22), salt: hex("000102030405060708090a0b0c"),
                                   info: hex("f0f1f2f3f4f5f6f7f8f9"), outputByteCount: 42)
        #expect(okm1 == hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
        let okm3 = try HKDF.sha256(key: Data(repeating: 0x0b, count: 22), salt: Data(), info: Data(), outputByteCount: 42)
        #expect(okm3 == hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"))
    }

    @Test func keyWrapRoundTripsAndRejectsWrongKEKOrAAD() throws {
        let kek = Data(repeating: 3, count: 32)
        let dk = try SecureRandom.bytes(32)
        let w = try KeyWrap.wrap(dk, with: kek, aad: Data("id".utf8))
        #expect(w.count == KeyWrap.wrappedSize(keySize: 32))
        #expect(try KeyWrap.unwrap(w, with: kek, aad: Data("id".utf8)) == dk)
        #expect(try KeyWrap.unwrap(w, with: Data(repeating: 4, count: 32), aad: Data("id".utf8)) == nil)
        #expect(try KeyWrap.unwrap(w, with: kek, aad: Data("other".utf8)) == nil)
        // Two wraps of the same key differ (random nonce).
        #expect(try KeyWrap.wrap(dk, with: kek, aad: Data()) != KeyWrap.wrap(dk, with: kek, aad: Data()))
    }
}

@Suite struct KeyringTests {
    private func writeKeyFile(_ contents: Data, mode: mode_t) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-keytest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("master.key").path
        #expect(FileManager.default.createFile(atPath: path, contents: contents))
        #expect(chmod(path, mode) == 0)
        return path
    }

    @Test func loadsRawHexAndBase64Keys() throws {
        let key = Data((0..<32).map { UInt8($0 * 7 & 0xff) })
        #expect(try Keyring.loadKeyFile(path: writeKeyFile(key, mode: 0o600)) == key)
        #expect(try Keyring.loadKeyFile(path: writeKeyFile(Data((key.hexString + "\n").utf8), mode: 0o400)) == key)
        #expect(try Keyring.loadKeyFile(path: writeKeyFile(Data(("  " + key.base64EncodedString() + "\n").utf8), mode: 0o600)) == key)
        let unpadded = key.base64EncodedString().replacingOccurrences(of: "=", with: "")
        #expect(try Keyring.loadKeyFile(path: writeKeyFile(Data(unpadded.utf8), mode: 0o600)) == key)
    }

    @Test func refusesKeyFilesAccessibleByGroupOrOthers() throws {
        for mode: mode_t in [0o640, 0o604, 0o660, 0o644, 0o610] {
            let path = try writeKeyFile(Data(count: 32), mode: mode)
            let e = #expect(throws: CairnError.self) { try Keyring.loadKeyFile(path: path) }
            #expect(e?.code == .crypto)
            #expect(e?.message.contains("chmod 600 \(path)") == true)
        }
    }

    @Test func refusesKeysOfTheWrongLength() throws {
        for contents in [Data(count: 31), Data(count: 33), Data(String(repeating: "ab", count: 31).utf8), Data("bm90IGEga2V5\n".utf8)] {
            let path = try writeKeyFile(contents, mode: 0o600)
            let e = #expect(throws: CairnError.self) { try Keyring.loadKeyFile(path: path) }
            #expect(e?.message.contains("32 raw bytes") == true)
        }
        #expect(throws: CairnError.self) { try Keyring.loadKeyFile(path: "/nonexistent/cairn.key") }
    }

    @Test func keyringValidatesAndHidesKeys() throws {
        let k = Data(repeating: 0xaa, count: 32)
        var ring = try Keyring(keyId: "k1", key: k)
        #expect(ring.key(for: "k1") == k)
        #expect(!ring.description.contains("aaaa"))
        try ring.add(keyId: "k2", key: Data(count: 32), makeActive: true)
        #expect(ring.activeKeyId == "k2")
        #expect(throws: CairnError.self) { try Keyring(keyId: "", key: k) }
        #expect(throws: CairnError.self) { try Keyring(keyId: "k", key: Data(count: 16)) }
        #expect(throws: CairnError.self) { try Keyring(keys: ["a": k], activeKeyId: "b") }
    }
}
