import Core
import Foundation
import ObjectStore

/// What a retention run planned and did: the plan, the leftovers, what was
/// deleted and what the store refused to delete.
public struct PruneReport: Sendable {
    /// An object the store refused to delete (Object Lock, permissions),
    /// reported once and not retried within the run.
    public struct Failure: Sendable, Equatable {
        public var key: String
        /// The backup it belongs to; nil for a leftover.
        public var backupID: String?
        /// The store's code: the S3 error code (`AccessDenied`, `InvalidRequest`), or the Cairn error code.
        public var code: String
        public var errorCode: ErrorCode
        public var message: String
    }

    public var job: String
    public var backupJob: String
    /// Where the backups are, for messages (`s3://bucket/prefix`).
    public var location: String
    public var timeZone: TimeZone
    public var dryRun: Bool
    public var plan: RetentionPlan
    public var leftovers: LeftoverPlan
    /// Backups whose objects (data, verify record, manifest) are all gone.
    public var deletedBackups: [String] = []
    /// Leftover uploads aborted and orphaned objects deleted.
    public var abortedUploads = 0
    public var deletedOrphans = 0
    public var failures: [Failure] = []
    /// Manifests the catalog could not read: their backups are not candidates (never deleted).
    public var skippedManifests: [String] = []

    /// One line: what was kept and deleted.
    public var summary: String {
        let verb = dryRun ? "would delete" : "deleted"
        var s = "retention of \(backupJob) (\(location)): kept \(plan.kept.count), \(verb) \(dryRun ? plan.deleted.count : deletedBackups.count) backup(s)"
        if dryRun {
            s += "; would abort \(leftovers.abort.count) stale upload(s), delete \(leftovers.delete.count) orphaned object(s)"
        } else {
            s += "; aborted \(abortedUploads) stale upload(s), deleted \(deletedOrphans) orphaned object(s)"
        }
        if !skippedManifests.isEmpty { s += "; \(skippedManifests.count) unreadable manifest(s) left alone" }
        if dryRun { s += " (dry run: nothing deleted)" }
        return s
    }

    /// The plan as a table: each backup (newest first), its start time in the
    /// job's time zone, keep or delete, and the rule that decided; then the
    /// leftovers and the summary.
    public func table() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = timeZone
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        let failed = Set(failures.compactMap(\.backupID))
        var lines = ["BACKUP                      STARTED (\(timeZone.identifier))".padding(toLength: 50, withPad: " ", startingAt: 0) + "  ACTION  RULE"]
        for d in plan.decisions {
            let action = d.keep ? "keep" : (failed.contains(d.candidate.id) ? "FAILED" : "delete")
            lines.append(d.candidate.id.padding(toLength: 27, withPad: " ", startingAt: 0) + " "
                         + f.string(from: d.candidate.startedAt).padding(toLength: 22, withPad: " ", startingAt: 0)
                         + "  " + action.padding(toLength: 6, withPad: " ", startingAt: 0) + "  " + d.reason.description)
        }
        if plan.decisions.isEmpty { lines.append("(no backups)") }
        for u in leftovers.abort { lines.append("stale upload   \(u.key) (started \(u.initiated.map { f.string(from: $0) } ?? "?")): abort") }
        for o in leftovers.delete { lines.append("orphaned data  \(o.key) (\(o.lastModified.map { f.string(from: $0) } ?? "?")): delete") }
        if leftovers.young > 0 { lines.append("\(leftovers.young) leftover(s) younger than 24 h kept (perhaps a backup in progress)") }
        for k in skippedManifests { lines.append("unreadable manifest \(k): its backup is kept") }
        if let refusal = plan.refusal { lines.append("REFUSED: \(refusal)") }
        for x in failures { lines.append("NOT DELETED \(x.key): \(x.code): \(x.message)") }
        lines.append(summary)
        return lines.joined(separator: "\n")
    }
}
