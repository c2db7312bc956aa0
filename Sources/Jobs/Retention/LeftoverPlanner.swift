import Foundation
import ObjectStore

/// Decides what of an interrupted run's leftovers under a backup job's prefix
/// to remove: multipart uploads of backup data never completed or aborted,
/// and data objects that no manifest names (the run died between completing
/// the upload and writing the manifest). Neither is a backup (only a manifest
/// makes one) and both cost storage. A pure value; key names are
/// `BackupLayout`'s.
///
/// - The backup job, which holds the job's lock before it starts (and the
///   prefix is its alone: `cairn config check` refuses two backup jobs
///   sharing one), removes every leftover: `minimumAge = .any`.
/// - The retention job runs beside the backup job, so a young upload or a
///   data object whose manifest is being written may be a run in progress:
///   it removes only leftovers older than 24 hours (`.olderThan(86_400)`).
///   A leftover of unknown age (no date from the store) is then kept.
public struct LeftoverPlanner: Sendable {
    public enum MinimumAge: Sendable, Equatable {
        /// Every leftover, whatever its age (the caller holds the job's lock).
        case any
        /// Only leftovers whose date is known and older than this.
        case olderThan(TimeInterval)
    }

    /// What retention removes: older than a day.
    public static let retentionAge = MinimumAge.olderThan(86_400)

    public var prefix: String
    public var minimumAge: MinimumAge
    public var now: Date

    public init(prefix: String, minimumAge: MinimumAge, now: Date) {
        self.prefix = prefix; self.minimumAge = minimumAge; self.now = now
    }

    /// The uploads to abort and the objects to delete, in the given order.
    /// `objects` is the listing of the prefix (manifests included: any
    /// manifest object, readable or not, makes its backup's data not a leftover).
    public func plan(objects: [ObjectInfo], uploads: [MultipartUploadInfo]) -> LeftoverPlan {
        let complete = Set(objects.compactMap { BackupLayout.backupID(ofManifest: $0.key, prefix: prefix) })
        var plan = LeftoverPlan()
        for u in uploads where BackupLayout.isBackupData(u.key, prefix: prefix) {
            if old(u.initiated) { plan.abort.append(u) } else { plan.young += 1 }
        }
        for o in objects {
            guard let id = BackupLayout.backupID(ofData: o.key, prefix: prefix), !complete.contains(id) else { continue }
            if old(o.lastModified) { plan.delete.append(o) } else { plan.young += 1 }
        }
        return plan
    }

    private func old(_ date: Date?) -> Bool {
        switch minimumAge {
        case .any: return true
        case .olderThan(let age):
            guard let date else { return false }
            return now.timeIntervalSince(date) > age
        }
    }
}

/// A `LeftoverPlanner`'s answer.
public struct LeftoverPlan: Sendable, Equatable {
    /// Multipart uploads to abort.
    public var abort: [MultipartUploadInfo] = []
    /// Data objects without a manifest to delete.
    public var delete: [ObjectInfo] = []
    /// Leftovers too young to remove (perhaps a run in progress).
    public var young = 0
    public init() {}
    public var isEmpty: Bool { abort.isEmpty && delete.isEmpty }
}
