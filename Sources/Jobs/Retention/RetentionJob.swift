import Config
import Core
import Crypto
import Foundation
import Logging
import ObjectStore

/// Applies retention to one backup job's prefix: plans with
/// `RetentionPlanner` over the catalog (only backups with a readable
/// manifest are candidates) and `LeftoverPlanner` (older than 24 h), then,
/// unless it is a dry run, deletes.
///
/// Order of deletion: every deleted backup's data objects (dump, globals)
/// first, in DeleteObjects batches; then, for the backups whose data is
/// gone, the verify record and the manifest. An object the store refuses to
/// delete (Object Lock retention, permissions) keeps its backup's manifest:
/// the backup stays listed and restorable, and the refusal is reported once,
/// not retried. A crash between the two steps leaves manifests whose data is
/// gone; the next run plans them again (they are still expired) and finishes.
public struct RetentionJob: Sendable {
    public var job: String
    public var backupJob: String
    public var prefix: String
    public var store: any ObjectStore
    /// Checks manifest MACs when given (the result is not used to decide).
    public var keyring: Keyring?
    public var rules: RetentionSpec
    public var timeZone: TimeZone
    public var dryRun: Bool
    public var now: @Sendable () -> Date

    public init(job: String, backupJob: String, prefix: String, store: any ObjectStore, keyring: Keyring?,
                rules: RetentionSpec, timeZone: TimeZone, dryRun: Bool, now: @escaping @Sendable () -> Date = { Date() }) {
        self.job = job; self.backupJob = backupJob; self.prefix = prefix; self.store = store; self.keyring = keyring
        self.rules = rules; self.timeZone = timeZone; self.dryRun = dryRun; self.now = now
    }

    /// The suffix of verification records (`<prefix>/<id>.verify.json`).
    static let verifySuffix = ".verify.json"

    private var dir: String { prefix.isEmpty ? "" : prefix + "/" }

    /// Plans and (unless `dryRun`) applies. Returns the report also when the
    /// plan is refused or some objects could not be deleted: `RetentionRun`
    /// turns those into the run's error.
    public func run() async throws -> PruneReport {
        let logger = Logger.cairn("retention")
        let objects = try await store.list(prefix: dir)
        let scan = try await BackupCatalog(store: store, prefix: prefix, keyring: keyring).scan()
        let verified = try await verifiedIDs(objects)
        let uploads = try await store.listMultipartUploads(prefix: dir)
        let at = now()
        let plan = RetentionPlanner(rules: rules, now: at, timeZone: timeZone).plan(
            scan.entries.map { RetentionCandidate(id: $0.manifest.id, startedAt: $0.manifest.startedAt, verified: verified.contains($0.manifest.id)) })
        let leftovers = LeftoverPlanner(prefix: prefix, minimumAge: LeftoverPlanner.retentionAge, now: at).plan(objects: objects, uploads: uploads)
        var report = PruneReport(job: job, backupJob: backupJob, location: store.displayName + dir, timeZone: timeZone, dryRun: dryRun,
                                 plan: plan, leftovers: leftovers, skippedManifests: scan.problems.map(\.key))
        for p in scan.problems {
            logger.warning("manifest skipped: its backup is not a retention candidate", metadata: ["job": "\(job)", "problem": "\(p)"])
        }
        if dryRun || plan.refusal != nil { return report }

        // 1. Data of every deleted backup.
        let doomed = Set(plan.deleted.map(\.candidate.id))
        let keysByID = Dictionary(grouping: objects.map(\.key).filter { BackupLayout.backupID(ofData: $0, prefix: prefix).map(doomed.contains) ?? false },
                                  by: { BackupLayout.backupID(ofData: $0, prefix: prefix)! })
        var failures = try await delete(keysByID.values.flatMap { $0 }.sorted(), owner: { BackupLayout.backupID(ofData: $0, prefix: prefix) })
        let blocked = Set(failures.compactMap(\.backupID))
        // 2. Verify records and manifests of the backups whose data is gone: the manifest last.
        let present = Set(objects.map(\.key))
        let ready = plan.deleted.map(\.candidate.id).filter { !blocked.contains($0) }
        var lastKeys: [String: String] = [:]
        var tail: [String] = []
        for id in ready {
            let v = dir + id + Self.verifySuffix
            if present.contains(v) { tail.append(v); lastKeys[v] = id }
        }
        failures += try await delete(tail, owner: { lastKeys[$0] })
        let verifyBlocked = Set(failures.compactMap(\.backupID))
        let manifests = ready.filter { !verifyBlocked.contains($0) }.map { BackupLayout.manifestKey(prefix: prefix, id: $0) }
        failures += try await delete(manifests, owner: { BackupLayout.backupID(ofManifest: $0, prefix: prefix) })
        let failedIDs = Set(failures.compactMap(\.backupID))
        report.deletedBackups = plan.deleted.map(\.candidate.id).filter { !failedIDs.contains($0) }
        for d in plan.deleted where !failedIDs.contains(d.candidate.id) {
            logger.notice("deleted backup", metadata: ["job": "\(job)", "backup": "\(d.candidate.id)", "rule": "\(d.reason)"])
        }

        // 3. Leftovers older than a day.
        for u in leftovers.abort {
            do {
                try await store.abortMultipartUpload(key: u.key, uploadId: u.uploadId)
                report.abortedUploads += 1
                logger.notice("aborted a stale upload", metadata: ["job": "\(job)", "key": "\(u.key)"])
            } catch let e as CairnError where e.code == .notFound {
                report.abortedUploads += 1   // gone meanwhile
            } catch let e as CairnError where !e.isTransient && e.code != .cancelled {
                failures.append(PruneReport.Failure(key: u.key, backupID: nil, code: e.code.rawValue, errorCode: e.code, message: e.message))
            }
        }
        let orphanFailures = try await delete(leftovers.delete.map(\.key), owner: { _ in nil })
        report.deletedOrphans = leftovers.delete.count - orphanFailures.count
        failures += orphanFailures
        for o in leftovers.delete where !orphanFailures.contains(where: { $0.key == o.key }) {
            logger.notice("deleted backup data that no manifest names (older than 24 h)", metadata: ["job": "\(job)", "key": "\(o.key)"])
        }
        report.failures = failures
        return report
    }

    /// Deletes `keys` in the store's batches; returns the keys it refused, each
    /// once. A refusal the store attributes per key (`DeleteFailures`) is taken
    /// as it is; another refusal (a store that stops at the first key) is
    /// attributed by deleting the keys one by one, once. Failures of the
    /// store itself (network, timeout, cancellation) are thrown.
    private func delete(_ keys: [String], owner: (String) -> String?) async throws -> [PruneReport.Failure] {
        guard !keys.isEmpty else { return [] }
        do {
            try await store.delete(keys: keys)
            return []
        } catch let e as CairnError where !e.isTransient && ![.network, .timeout, .tls, .cancelled].contains(e.code) {
            if let per = e.cause as? DeleteFailures {
                return per.failures.map { PruneReport.Failure(key: $0.key, backupID: owner($0.key), code: $0.code, errorCode: e.code, message: $0.message) }
            }
            var out: [PruneReport.Failure] = []
            for key in keys {
                do {
                    try await store.delete(keys: [key])
                } catch let e as CairnError where !e.isTransient && ![.network, .timeout, .tls, .cancelled].contains(e.code) {
                    let code = (e.cause as? DeleteFailures)?.failures.first?.code ?? e.code.rawValue
                    out.append(PruneReport.Failure(key: key, backupID: owner(key), code: code, errorCode: e.code, message: e.message))
                }
            }
            return out
        }
    }

    /// Ids of backups with a verification record that records no error
    /// (`<prefix>/<id>.verify.json`). A record that cannot be read or parsed
    /// counts as never verified.
    func verifiedIDs(_ objects: [ObjectInfo]) async throws -> Set<String> {
        var out: Set<String> = []
        for o in objects where o.key.hasPrefix(dir) && o.key.hasSuffix(Self.verifySuffix) {
            let id = String(o.key.dropFirst(dir.count).dropLast(Self.verifySuffix.count))
            guard !id.contains("/"), BackupLayout.backupID(ofManifest: BackupLayout.manifestKey(prefix: prefix, id: id), prefix: prefix) != nil else { continue }
            let data: Data
            do { data = try await store.getData(key: o.key, limit: 1 << 20) } catch let e as CairnError where !e.isTransient && e.code != .cancelled { continue }
            guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
            if json["error"] == nil || json["error"] is NSNull { out.insert(id) }
        }
        return out
    }
}
