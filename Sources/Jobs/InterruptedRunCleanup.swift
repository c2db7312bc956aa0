import Core
import Foundation
import Logging
import ObjectStore

extension JobRunner {
    /// What runs that could not clean up after themselves (kill -9, power
    /// loss, a lost network) left under the job's prefix:
    /// - multipart uploads of backup data, never completed or aborted;
    /// - data objects that were completed but that no manifest names (the run
    ///   died between completing the upload and writing the manifest).
    /// Neither is a backup (only a manifest makes one) and both cost storage.
    /// The caller holds the job's lock and the prefix belongs to this job alone
    /// (`cairn config check` refuses two backup jobs sharing one), so none of
    /// this is in progress: `LeftoverPlanner` with no minimum age (retention
    /// uses the same planner with 24 hours). Best effort: a failure here does not stop the backup.
    static func cleanUpInterruptedRuns(store: any ObjectStore, prefix: String, job: String) async {
        let logger = Logger.cairn("backup")
        let dir = prefix.isEmpty ? "" : prefix + "/"
        let clock = ContinuousClock(), began = clock.now
        defer {
            let seconds = (clock.now - began).inSeconds
            logger.info("checked for leftovers of interrupted runs", metadata: [
                "job": "\(job)", "seconds": "\(String(format: "%.2f", seconds))"])
        }
        do {
            let objects = try await store.list(prefix: dir)
            let uploads = try await store.listMultipartUploads(prefix: dir)
            // Zero age: the lock makes every leftover a dead run's (LeftoverPlanner).
            let plan = LeftoverPlanner(prefix: prefix, minimumAge: .any, now: Date()).plan(objects: objects, uploads: uploads)
            for u in plan.abort {
                try await store.abortMultipartUpload(key: u.key, uploadId: u.uploadId)
                logger.notice("aborted an unfinished upload left by an interrupted run", metadata: ["job": "\(job)", "key": "\(u.key)"])
            }
            let orphans = plan.delete.map(\.key)
            if !orphans.isEmpty {
                try await store.delete(keys: orphans)
                for key in orphans {
                    logger.notice("deleted backup data that no manifest names (left by an interrupted run)", metadata: ["job": "\(job)", "key": "\(key)"])
                }
            }
        } catch {
            logger.warning("cannot clean up after interrupted runs", metadata: ["job": "\(job)", "error": "\(error)"])
        }
    }
}
