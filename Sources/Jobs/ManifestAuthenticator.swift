import Core
import Crypto
import Foundation

/// The MAC of a stored manifest (format 2; docs/FORMAT.md §8).
///
/// A stored manifest is its pretty-printed JSON with `"mac"` as the last
/// member, on a line of its own: `SIGNED ‖ ",\n  \"mac\" : \"" ‖ 64 hex ‖ "\"\n}\n"`,
/// where `SIGNED` is every byte before that trailer. The MAC is
/// `HMAC-SHA256(HKDF(master key, info "cairn v1 manifest mac"), SIGNED)`: it
/// covers the exact stored bytes, not a re-encoding, and the file stays one
/// JSON object that `cat` and `jq` read.
public enum ManifestAuthenticator {
    static let macInfo = Data("cairn v1 manifest mac".utf8)
    static let trailerHead = Data(",\n  \"mac\" : \"".utf8)
    static let trailerTail = Data("\"\n}\n".utf8)
    static let macHexLength = 64
    static var trailerSize: Int { trailerHead.count + macHexLength + trailerTail.count }

    /// The manifest MAC key of a master key.
    public static func macKey(masterKey: Data) throws -> Data {
        try HKDF.sha256(key: masterKey, salt: Data(), info: macInfo, outputByteCount: 32)
    }

    /// `HMAC-SHA256(macKey(masterKey), signed)`.
    public static func mac(_ signed: Data, masterKey: Data) throws -> Data {
        Digest.hmacSHA256(key: try macKey(masterKey: masterKey), signed)
    }

    /// The bytes to store for `manifest`: its JSON, MAC'd under the key named by its key id.
    public static func seal(_ manifest: BackupManifest, keyring: Keyring) throws -> Data {
        guard manifest.formatVersion >= 2 else {
            throw CairnError(.internal, "format \(manifest.formatVersion) manifests carry no MAC")
        }
        guard let master = keyring.key(for: manifest.keyId) else {
            throw CairnError(.crypto, "key id '\(manifest.keyId)' of manifest \(manifest.id) is not in the keyring")
        }
        let json = try manifest.encoded()
        // The encoder's pretty output ends with "\n}": the MAC goes before the brace.
        guard json.count > 2, json.suffix(2) == Data("\n}".utf8) else {
            throw CairnError(.internal, "manifest JSON does not end with a closing brace on its own line")
        }
        let signed = json.prefix(json.count - 2)
        return signed + trailerHead + Data(try mac(signed, masterKey: master).hexString.utf8) + trailerTail
    }

    /// Splits stored bytes into the MAC'd part and the MAC, or nil if they do not end with a MAC trailer.
    static func split(_ stored: Data) -> (signed: Data, mac: Data)? {
        guard stored.count > trailerSize else { return nil }
        let signedEnd = stored.endIndex - trailerSize
        let hexStart = signedEnd + trailerHead.count
        guard stored[signedEnd ..< hexStart] == trailerHead,
              stored[(hexStart + macHexLength)...] == trailerTail,
              let hex = String(data: stored[hexStart ..< hexStart + macHexLength], encoding: .utf8),
              hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
              let mac = Data(hexString: hex)
        else { return nil }
        return (Data(stored[..<signedEnd]), mac)
    }

    /// Decodes stored manifest bytes and checks their MAC.
    /// Throws (cause `ManifestDecodeError`) only if they are not a readable manifest.
    public static func open(_ stored: Data, key: String, keyring: Keyring?) throws -> (BackupManifest, ManifestAuthentication) {
        let manifest = try BackupManifest.decode(stored, key: key)
        return (manifest, try authenticate(stored, manifest: manifest, keyring: keyring))
    }

    /// The authentication status of `stored`, already decoded as `manifest`.
    public static func authenticate(_ stored: Data, manifest: BackupManifest, keyring: Keyring?) throws -> ManifestAuthentication {
        guard manifest.formatVersion >= 2 else { return .unauthenticated(.formatVersion1) }
        guard let (signed, mac) = split(stored) else { return .unauthenticated(.missingMAC) }
        guard let master = keyring?.key(for: manifest.keyId) else { return .notChecked(keyId: manifest.keyId) }
        return constantTimeEquals(try self.mac(signed, masterKey: master), mac) ? .authenticated : .unauthenticated(.macMismatch)
    }
}
