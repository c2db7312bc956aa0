import Foundation
import Testing
import Core
import Crypto
@testable import Jobs
import Pipeline

/// The manifest MAC (docs/FORMAT.md §8), without services.
@Suite struct ManifestAuthenticatorTests {
    static let masterKey = Data((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
    static let keyring = try! Keyring(keyId: "k1", key: masterKey)
    static let key = "db/20261203T023000Z-1a2b3c4d.manifest.json"

    static func manifest(formatVersion: Int = BackupManifest.currentFormatVersion) -> BackupManifest {
        let object = BackupObject(key: "db/20261203T023000Z-1a2b3c4d.dump.zst.aes", plaintextSize: 1000, plaintextSHA256: String(repeating: "a", count: 64),
                                  ciphertextSize: 500, ciphertextSHA256: String(repeating: "b", count: 64), partSize: 5 << 20, partCount: 1, etag: "\"e\"")
        return BackupManifest(formatVersion: formatVersion, id: "20261203T023000Z-1a2b3c4d", job: "marketplace-db", database: "marketplace",
                              server: "127.0.0.1:5432", serverVersion: "16.4", pgDumpVersion: "16.4", cairnVersion: "test",
                              hostname: "db1", startedAt: Date(timeIntervalSince1970: 1_796_000_000), finishedAt: Date(timeIntervalSince1970: 1_796_000_060),
                              dump: object, globals: nil, compression: "zstd", compressionLevel: 3,
                              encryption: formatVersion >= 2 ? "cairn-stream-v2" : "cairn-stream-v1", keyId: "k1",
                              segmentSize: 1 << 20, rowCounts: ["public.t": 7], rowCountSource: "archive", snapshot: "00000003-1")
    }

    @Test func theMACKeyIsHKDFOfTheMasterKeyWithItsOwnInfo() throws {
        // Computed with Python's `cryptography` HKDF(SHA256, salt=None, info=b"cairn v1 manifest mac").
        let k = try ManifestAuthenticator.macKey(masterKey: Self.masterKey)
        #expect(k.hexString == "f2c0dca2b6f638fc8a14cb833dd3b1eff0c6debc533b772a6539428337dfeba3")
        #expect(try ManifestAuthenticator.mac(Data("{\n  \"id\" : \"x\"".utf8), masterKey: Self.masterKey).hexString
                == "c8e40b1559d6c0076129b58ef1e51789cbcf21b2cf0e3c43a24a63c639a67e6c")
        // Not any of the stream's derivations.
        #expect(k != (try HKDF.sha256(key: Self.masterKey, salt: Data(), info: Data("cairn v1 key wrap".utf8), outputByteCount: 32)))
    }

    @Test func aSealedManifestIsJSONWhoseLastMemberIsTheMACOfTheBytesBeforeIt() throws {
        let m = Self.manifest()
        let stored = try ManifestAuthenticator.seal(m, keyring: Self.keyring)
        let text = String(decoding: stored, as: UTF8.self)
        #expect(text.hasPrefix("{\n"))
        let trailer = try #require(text.range(of: ",\n  \"mac\" : \"", options: .backwards))
        #expect(text[trailer.upperBound...].count == 64 + 4)
        #expect(text.hasSuffix("\"\n}\n"))
        let signed = Data(text[..<trailer.lowerBound].utf8)
        let mac = String(text[trailer.upperBound...].prefix(64))
        #expect(mac == (try ManifestAuthenticator.mac(signed, masterKey: Self.masterKey)).hexString)
        // The MAC'd bytes are exactly the manifest's own JSON without its closing brace.
        #expect(signed + Data("\n}".utf8) == (try m.encoded()))
        let json = try #require(try JSONSerialization.jsonObject(with: stored) as? [String: Any])
        #expect(json["mac"] as? String == mac)
        #expect(json["formatVersion"] as? Int == 2)

        let (decoded, status) = try ManifestAuthenticator.open(stored, key: Self.key, keyring: Self.keyring)
        #expect(status == .authenticated)
        #expect(decoded == m)
    }

    @Test func anyEditWithoutTheKeyFailsTheMAC() throws {
        let stored = try ManifestAuthenticator.seal(Self.manifest(), keyring: Self.keyring)
        func status(_ d: Data, _ ring: Keyring? = Self.keyring) throws -> ManifestAuthentication {
            try ManifestAuthenticator.open(d, key: Self.key, keyring: ring).1
        }
        // A size changed in place.
        var edited = stored
        edited.replaceSubrange(try #require(edited.range(of: Data("\"ciphertextSize\" : 500".utf8))), with: Data("\"ciphertextSize\" : 501".utf8))
        #expect(try status(edited) == .unauthenticated(.macMismatch))
        // The MAC itself changed.
        var mac = stored
        mac[mac.count - 10] = mac[mac.count - 10] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        #expect(try status(mac) == .unauthenticated(.macMismatch))
        // Re-encoded without the MAC line; or with whitespace added before it.
        #expect(try status(try Self.manifest().encoded()) == .unauthenticated(.missingMAC))
        #expect(try status(stored + Data("\n".utf8)) == .unauthenticated(.missingMAC))
        // The right id with another key, another id, or no keyring.
        #expect(try status(stored, try Keyring(keyId: "k1", key: Data(repeating: 7, count: 32))) == .unauthenticated(.macMismatch))
        #expect(try status(stored, try Keyring(keyId: "k2", key: Self.masterKey)) == .notChecked(keyId: "k1"))
        #expect(try status(stored, nil) == .notChecked(keyId: "k1"))
        // A format 1 manifest has no MAC to check, with or without a key: even one carrying a valid-looking MAC line.
        let v1 = Self.manifest(formatVersion: 1)
        #expect(try status(try v1.encoded()) == .unauthenticated(.formatVersion1))
        let downgraded = try ManifestAuthenticator.seal(Self.manifest(), keyring: Self.keyring)
        let relabelled = String(decoding: downgraded, as: UTF8.self).replacingOccurrences(of: "\"formatVersion\" : 2", with: "\"formatVersion\" : 1")
        #expect(try status(Data(relabelled.utf8)) == .unauthenticated(.formatVersion1))
    }

    @Test func unreadableManifestsThrowWithTheReasonAsData() throws {
        for (data, expected) in [(Data("{\"formatVersion\": 1".utf8), nil), (Data("[]".utf8), nil),
                                 (try Self.manifest(formatVersion: 3).encoded(), ManifestDecodeError.unsupportedFormatVersion(3))] {
            do {
                _ = try ManifestAuthenticator.open(data, key: Self.key, keyring: Self.keyring)
                Issue.record("decoded \(String(decoding: data, as: UTF8.self))")
            } catch let e as CairnError {
                let cause = try #require(e.cause as? ManifestDecodeError)
                if let expected { #expect(cause == expected) } else if case .invalid = cause {} else { Issue.record("\(cause)") }
                #expect(e.message.hasPrefix("manifest \(Self.key): "))
                #expect(!e.message.contains("\n"))
            }
        }
    }

    @Test func restoringRequiresAnAuthenticatedManifestOrTheTrustFlag() throws {
        let m = Self.manifest()
        let cases: [(ManifestAuthentication, ErrorCode, String)] = [
            (.unauthenticated(.macMismatch), .integrity, "is unauthenticated: its MAC does not verify"),
            (.unauthenticated(.missingMAC), .integrity, "is unauthenticated: it has no MAC"),
            (.unauthenticated(.formatVersion1), .integrity, "would let a rewritten manifest bypass authentication"),
            (.notChecked(keyId: "k1"), .crypto, "key id 'k1' is not in the keyring"),
        ]
        for (status, code, text) in cases {
            let entry = CatalogEntry(key: Self.key, manifest: m, authentication: status)
            #expect(throws: Never.self) { try entry.requireTrusted(trustUnauthenticated: true) }
            do {
                try entry.requireTrusted(trustUnauthenticated: false)
                Issue.record("\(status) trusted")
            } catch let e as CairnError {
                #expect(e.code == code)
                #expect(e.message.hasPrefix("manifest \(Self.key) "))
                #expect(e.message.contains(text), "\(e.message)")
                #expect(e.message.contains("--trust-unauthenticated"))
                #expect(e.untrustedManifest == UntrustedManifest(key: Self.key, authentication: status))
                #expect(e.description == e.message)   // the cause is not repeated
            }
        }
        #expect(throws: Never.self) { try CatalogEntry(key: Self.key, manifest: m, authentication: .authenticated).requireTrusted(trustUnauthenticated: false) }
    }
}
