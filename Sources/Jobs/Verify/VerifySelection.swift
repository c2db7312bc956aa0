import Core

/// Which backup a verification takes: the one named (id, unique id prefix,
/// or `latest`), or else the newest that has no verification record. Pure.
public enum VerifySelection {
    /// nil: every backup already has a record (nothing to do). Throws
    /// `.notFound` when there are no backups or the named one does not exist.
    public static func choose(_ ref: String?, in scan: CatalogScan, catalog: BackupCatalog) throws -> CatalogEntry? {
        if let ref { return try catalog.find(ref, in: scan) }
        guard !scan.entries.isEmpty else {
            throw CairnError(.notFound, "no complete backups under \(catalog.store.displayName)\(catalog.prefix) to verify")
        }
        return scan.entries.last { $0.verification == nil }
    }

    /// The newest entry whose verification passed (other than by `excluding`'s outcome, which the caller knows better).
    public static func newestVerified(_ entries: [CatalogEntry]) -> CatalogEntry? {
        entries.last { $0.verification?.ok == true }
    }
}
