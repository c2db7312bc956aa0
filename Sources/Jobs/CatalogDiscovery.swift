import Core
import Foundation
import ObjectStore

/// Finds every job's backups in a store without a config (disaster recovery
/// on a new host): each key `<any prefix>/<id>.manifest.json` (id as
/// `BackupLayout` makes them) marks a prefix that holds backups; the job's
/// name is read from that prefix's newest manifest.
public enum CatalogDiscovery {
    /// One prefix holding backups, and the job that wrote them.
    public struct Group: Sendable, Equatable {
        /// The job name recorded in the prefix's newest readable manifest
        /// (the prefix itself when none can be read).
        public var job: String
        /// The key prefix (no trailing slash; "" for the store's root).
        public var prefix: String
        /// Manifest keys under the prefix (a count, before any is read).
        public var manifests: Int
        public init(job: String, prefix: String, manifests: Int) {
            self.job = job; self.prefix = prefix; self.manifests = manifests
        }
    }

    /// Every prefix under `root` holding at least one manifest, sorted by job
    /// then prefix. Reads one manifest per prefix (for the job's name); the
    /// catalog of each group is `BackupCatalog(store:prefix:)`.
    public static func discover(store: any ObjectStore, under root: String = "") async throws -> [Group] {
        let dir = root.isEmpty ? "" : root.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/"
        let byPrefix = prefixes(ofKeys: try await store.list(prefix: dir).map(\.key))
        var groups: [Group] = []
        for (prefix, ids) in byPrefix {
            var job: String?
            // Ids sort by time: the newest first; an unreadable manifest falls back to the next.
            for id in ids.sorted(by: >).prefix(3) {
                let key = BackupLayout.manifestKey(prefix: prefix, id: id)
                if let data = try? await store.getData(key: key, limit: 16 << 20),
                   let named = try? JSONDecoder().decode(JobName.self, from: data), !named.job.isEmpty {
                    job = named.job
                    break
                }
            }
            groups.append(Group(job: job ?? (prefix.isEmpty ? "(root)" : prefix), prefix: prefix, manifests: ids.count))
        }
        return groups.sorted { ($0.job, $0.prefix) < ($1.job, $1.prefix) }
    }

    /// Backup ids by the prefix that directly holds their manifests.
    static func prefixes(ofKeys keys: [String]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for key in keys where key.hasSuffix(BackupLayout.manifestSuffix) {
            let prefix = key.lastIndex(of: "/").map { String(key[..<$0]) } ?? ""
            guard let id = BackupLayout.backupID(ofManifest: key, prefix: prefix) else { continue }
            out[prefix, default: []].append(id)
        }
        return out
    }

    /// The only field discovery reads from a manifest, whatever its format version.
    private struct JobName: Decodable { var job: String }
}
