import Core
import Crypto
import Foundation
import ObjectStore

/// The catalog is the bucket itself: every `*.manifest.json` under a job's
/// prefix is a complete backup. A new host with the key and credentials can
/// list and restore everything.
///
/// One bad manifest never hides the others: `scan()` returns every readable
/// backup plus the manifests it skipped and why. With a keyring, each
/// manifest's MAC is checked (`CatalogEntry.authentication`).
public struct BackupCatalog: Sendable {
    public var store: any ObjectStore
    public var prefix: String
    /// Keys to check manifest MACs with; nil: every status is "not checked"
    /// (or "unauthenticated" when there is no MAC to check).
    public var keyring: Keyring?

    public init(store: any ObjectStore, prefix: String, keyring: Keyring? = nil) {
        self.store = store
        self.prefix = prefix
        self.keyring = keyring
    }

    /// Every readable backup under the prefix, oldest first (by the
    /// manifest's start time, never by name), and the manifests skipped.
    /// Throws only when the store itself fails (listing, network, cancellation),
    /// never because of one manifest's contents.
    public func scan() async throws -> CatalogScan {
        let dir = prefix.isEmpty ? "" : prefix + "/"
        let listed = try await store.list(prefix: dir).map(\.key)
        let keys = listed.filter {
            $0.hasSuffix(BackupLayout.manifestSuffix) && !$0.dropFirst(dir.count).contains("/")
        }
        // Verification records, by backup id: read for the backups that have one.
        let verifyKeys = Dictionary(listed.compactMap { k in BackupLayout.backupID(ofVerifyRecord: k, prefix: prefix).map { ($0, k) } },
                                    uniquingKeysWith: { a, _ in a })
        var entries: [CatalogEntry] = []
        var problems: [CatalogProblem] = []
        entries.reserveCapacity(keys.count)
        try await withThrowingTaskGroup(of: Result<CatalogEntry, KeyedReason>.self) { group in
            var pending = keys[...]
            func add() {
                guard let k = pending.popFirst() else { return }
                group.addTask {
                    var r = try await read(key: k)
                    if case .success(var e) = r, let vk = verifyKeys[e.manifest.id] {
                        e.verification = try await readVerification(key: vk)
                        r = .success(e)
                    }
                    return r
                }
            }
            for _ in 0..<8 { add() }
            while let r = try await group.next() {
                switch r {
                case .success(let e): entries.append(e)
                case .failure(let p): problems.append(p.problem)
                }
                add()
            }
        }
        return CatalogScan(entries: entries.sorted { ($0.manifest.startedAt, $0.manifest.id) < ($1.manifest.startedAt, $1.manifest.id) },
                           problems: problems.sorted { $0.key < $1.key })
    }

    /// One manifest: an entry, or why it is skipped. Throws for failures of
    /// the store rather than of the object (connection, timeout, cancellation).
    private func read(key: String) async throws -> Result<CatalogEntry, KeyedReason> {
        let data: Data
        do {
            data = try await store.getData(key: key, limit: 16 << 20)
        } catch let e as CairnError where !e.isTransient && ![.network, .timeout, .tls, .cancelled].contains(e.code) {
            return .failure(KeyedReason(key: key, reason: .unreadable(e)))
        }
        let manifest: BackupManifest, authentication: ManifestAuthentication
        do {
            (manifest, authentication) = try ManifestAuthenticator.open(data, key: key, keyring: keyring)
        } catch let e as CairnError {
            guard let cause = e.cause as? ManifestDecodeError else { throw e }
            return .failure(KeyedReason(key: key, reason: .undecodable(cause)))
        }
        guard key == BackupLayout.manifestKey(prefix: prefix, id: manifest.id) else {
            return .failure(KeyedReason(key: key, reason: .misnamed(manifestID: manifest.id)))
        }
        return .success(CatalogEntry(key: key, manifest: manifest, authentication: authentication))
    }

    /// A verification record, or nil when it cannot be read or decoded (a
    /// backup whose record is unreadable shows as never verified). Throws for
    /// failures of the store (connection, timeout, cancellation).
    private func readVerification(key: String) async throws -> VerifyRecord? {
        do {
            return try VerifyRecord.decode(try await store.getData(key: key, limit: 16 << 20))
        } catch let e as CairnError where e.isTransient || [.network, .timeout, .tls, .cancelled].contains(e.code) {
            throw e
        } catch {
            return nil
        }
    }

    /// Every readable backup under the prefix, oldest first; skipped
    /// manifests are left out (`scan()` reports them).
    public func list() async throws -> [BackupManifest] { try await scan().manifests }

    /// A backup by id (or unique id prefix), or `latest`.
    public func find(_ ref: String) async throws -> BackupManifest {
        try find(ref, in: try await scan()).manifest
    }

    /// A backup of `scan` by id (or unique id prefix), or `latest` (the newest readable one).
    public func find(_ ref: String, in scan: CatalogScan) throws -> CatalogEntry {
        let all = scan.entries
        if ref == "latest" {
            guard let e = all.last else {
                throw CairnError(.notFound, "no complete backups under \(store.displayName)\(prefix)")
            }
            return e
        }
        let matches = all.filter { $0.manifest.id == ref || $0.manifest.id.hasPrefix(ref) }
        if matches.count == 1 { return matches[0] }
        if matches.isEmpty { throw CairnError(.notFound, "no backup '\(ref)' under \(store.displayName)\(prefix)") }
        throw CairnError(.usage, "backup id '\(ref)' is ambiguous: \(matches.map(\.manifest.id).joined(separator: ", "))")
    }
}

/// A skip reason with its key, as the failure of a task's result.
private struct KeyedReason: Error, Sendable {
    var key: String
    var reason: CatalogProblem.Reason
    var problem: CatalogProblem { CatalogProblem(key: key, reason: reason) }
}
