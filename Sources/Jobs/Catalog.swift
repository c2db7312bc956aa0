import Core
import Foundation
import ObjectStore

/// The catalog is the bucket itself: every `*.manifest.json` under a job's
/// prefix is a complete backup. A new host with the key and credentials can
/// list and restore everything.
public struct BackupCatalog: Sendable {
    public var store: any ObjectStore
    public var prefix: String

    public init(store: any ObjectStore, prefix: String) {
        self.store = store
        self.prefix = prefix
    }

    /// Every complete backup under the prefix, oldest first (by the manifest's
    /// start time, never by name).
    public func list() async throws -> [BackupManifest] {
        let dir = prefix.isEmpty ? "" : prefix + "/"
        let keys = try await store.list(prefix: dir).map(\.key).filter {
            $0.hasSuffix(BackupLayout.manifestSuffix) && !$0.dropFirst(dir.count).contains("/")
        }
        var out: [BackupManifest] = []
        out.reserveCapacity(keys.count)
        try await withThrowingTaskGroup(of: BackupManifest.self) { group in
            var pending = keys[...]
            func add() {
                guard let k = pending.popFirst() else { return }
                group.addTask { try BackupManifest.decode(try await store.getData(key: k, limit: 16 << 20), key: k) }
            }
            for _ in 0..<8 { add() }
            while let m = try await group.next() { out.append(m); add() }
        }
        return out.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
    }

    /// A backup by id (or unique id prefix), or `latest`.
    public func find(_ ref: String) async throws -> BackupManifest {
        let all = try await list()
        if ref == "latest" {
            guard let m = all.last else {
                throw CairnError(.notFound, "no complete backups under \(store.displayName)\(prefix)")
            }
            return m
        }
        let matches = all.filter { $0.id == ref || $0.id.hasPrefix(ref) }
        if matches.count == 1 { return matches[0] }
        if matches.isEmpty { throw CairnError(.notFound, "no backup '\(ref)' under \(store.displayName)\(prefix)") }
        throw CairnError(.usage, "backup id '\(ref)' is ambiguous: \(matches.map(\.id).joined(separator: ", "))")
    }
}
