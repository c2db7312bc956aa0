import Core
import Foundation

/// Whether a stored manifest proved that a holder of its master key wrote it.
public enum ManifestAuthentication: Sendable, Equatable, CustomStringConvertible {
    /// Its MAC verifies under the key named by its key id.
    case authenticated
    /// No valid MAC: restored only with `--trust-unauthenticated`.
    case unauthenticated(ManifestAuthenticationProblem)
    /// Its key id is not in the keyring (or there is no keyring): the MAC was not checked.
    case notChecked(keyId: String)

    /// One word or two for a listing: "authenticated", "unauthenticated", "not checked".
    public var label: String {
        switch self {
        case .authenticated: return "authenticated"
        case .unauthenticated: return "unauthenticated"
        case .notChecked: return "not checked"
        }
    }

    public var description: String {
        switch self {
        case .authenticated: return "authenticated"
        case .unauthenticated(let p): return "unauthenticated: \(p)"
        case .notChecked(let id): return "not checked: key id '\(id)' is not in the keyring"
        }
    }
}

/// Why a manifest is unauthenticated.
public enum ManifestAuthenticationProblem: String, Error, Sendable, CaseIterable, CustomStringConvertible {
    /// A format 1 manifest: written before manifests carried a MAC.
    case formatVersion1
    /// Format 2 or later, but the stored bytes do not end with a MAC.
    case missingMAC
    /// The MAC does not verify: edited without the key, or MAC'd under another key.
    case macMismatch

    public var description: String {
        switch self {
        case .formatVersion1: return "a format 1 manifest carries no MAC"
        case .missingMAC: return "it has no MAC although its format requires one"
        case .macMismatch: return "its MAC does not verify (edited without the key?)"
        }
    }
}

/// The cause of the error that refuses an untrusted manifest.
public struct UntrustedManifest: Error, Sendable, Equatable, CustomStringConvertible {
    /// The manifest's object key.
    public var key: String
    public var authentication: ManifestAuthentication
    public init(key: String, authentication: ManifestAuthentication) {
        self.key = key
        self.authentication = authentication
    }
    public var description: String { "manifest \(key) is \(authentication)" }
}

extension CairnError {
    /// The refused manifest, if this error refuses one (`CatalogEntry.requireTrusted`).
    public var untrustedManifest: UntrustedManifest? { cause as? UntrustedManifest }
}
