import Core
import Foundation

/// One readable backup of the catalog: its manifest, where it is stored,
/// and whether the manifest authenticated.
public struct CatalogEntry: Sendable, Equatable {
    /// The manifest's object key.
    public var key: String
    public var manifest: BackupManifest
    public var authentication: ManifestAuthentication
    /// The backup's verification record (`<id>.verify.json`), when it has a readable one.
    public var verification: VerifyRecord?

    public init(key: String, manifest: BackupManifest, authentication: ManifestAuthentication, verification: VerifyRecord? = nil) {
        self.key = key
        self.manifest = manifest
        self.authentication = authentication
        self.verification = verification
    }

    /// "verified", "failed" or "never".
    public var verificationState: String { verification?.state ?? "never" }

    /// Throws unless the manifest authenticated or the caller trusts
    /// unauthenticated manifests (`cairn restore --trust-unauthenticated`).
    /// The error's cause is an `UntrustedManifest`.
    public func requireTrusted(trustUnauthenticated: Bool) throws {
        if trustUnauthenticated { return }
        let cause = UntrustedManifest(key: key, authentication: authentication)
        switch authentication {
        case .authenticated:
            return
        case .unauthenticated(.formatVersion1):
            throw CairnError(.integrity, "\(cause): it was written before manifests carried a MAC; restore it with --trust-unauthenticated if you trust the bucket (accepting format 1 unasked would let a rewritten manifest bypass authentication)", cause: cause)
        case .unauthenticated:
            throw CairnError(.integrity, "\(cause); refusing to restore it without --trust-unauthenticated", cause: cause)
        case .notChecked:
            throw CairnError(.crypto, "\(cause), so it cannot be authenticated: add that key (--key-file), or pass --trust-unauthenticated", cause: cause)
        }
    }
}

/// What a catalog scan found: the readable backups, oldest first, and the
/// manifests it skipped.
public struct CatalogScan: Sendable {
    public var entries: [CatalogEntry]
    public var problems: [CatalogProblem]

    public init(entries: [CatalogEntry], problems: [CatalogProblem]) {
        self.entries = entries
        self.problems = problems
    }

    public var manifests: [BackupManifest] { entries.map(\.manifest) }
}
