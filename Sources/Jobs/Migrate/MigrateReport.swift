import Core
import Foundation

/// A file that was not migrated, and why (one line). Both fields are
/// display text, escaped with `PathText` where they came from names, so a
/// file name cannot add or forge a report line.
public struct MigrateFileIssue: Sendable, Equatable, Codable {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
}

/// What a migration run did.
public struct MigrateReport: Sendable, Equatable {
    public var job: String
    public var source: String
    public var destination: String
    /// Regular files found in the source (including symlinks to files inside it).
    public var filesSeen = 0
    public var uploaded = 0
    public var uploadedBytes: Int64 = 0
    /// Done in the checkpoint and unchanged since: not looked at again.
    public var unchanged = 0
    public var unchangedBytes: Int64 = 0
    /// Found at the destination with the same size and checksum: recorded without upload.
    public var alreadyPresent = 0
    public var alreadyPresentBytes: Int64 = 0
    /// Large files whose multipart upload was resumed, and the parts that did not have to be sent again.
    public var resumedFiles = 0
    public var resumedParts = 0
    public var resumedBytes: Int64 = 0
    public var failed: [MigrateFileIssue] = []
    /// Skipped on purpose (special files, symlinks out of the source).
    public var skipped: [MigrateFileIssue] = []
    /// Left out by the job's exclude patterns.
    public var excludedFiles = 0
    public var excludedDirectories = 0
    /// Stale multipart uploads under the prefix that no checkpoint row refers to, aborted.
    public var abortedStaleUploads = 0
    public var duration: Double = 0
    public var mappingFile: String?
    public var mappingEntries = 0
    /// The error code of the failures when they all share one, else `.io`.
    public var failureCode: ErrorCode = .io
    /// Why the run stopped before the end (its state could not be written), and that error's code.
    public var stopReason: String?
    public var stopCode: ErrorCode?
    /// Files uploaded (or found present) whose completion could not be recorded:
    /// the next run finds their objects and does not send them again.
    public var notRecorded = 0
    /// Files not started because the run stopped.
    public var notStarted = 0

    /// Marks the run as stopped by `error` (a state failure).
    public mutating func stop(_ error: CairnError, notStarted: Int) {
        if stopReason == nil {
            stopReason = PathText.escape(error.description)
            stopCode = error.code
        }
        self.notStarted += notStarted
    }

    public init(job: String, source: String, destination: String) {
        self.job = job; self.source = source; self.destination = destination
    }

    public var rate: Double { duration > 0 ? Double(uploadedBytes) / duration : 0 }

    /// One line for the history and the daemon's log.
    public var summary: String {
        var s = "migrate \(job): \(uploaded) uploaded (\(ByteFormat.human(uploadedBytes))), \(unchanged) unchanged, \(alreadyPresent) already present"
        if resumedFiles > 0 { s += ", \(resumedFiles) resumed (\(resumedParts) part(s) not re-sent)" }
        if !failed.isEmpty { s += ", \(failed.count) failed" }
        if !skipped.isEmpty { s += ", \(skipped.count) skipped" }
        if let r = stopReason { s += ", stopped (\(notStarted) not started): \(r)" }
        if let e = excludedText(excludedFiles, excludedDirectories) { s += ", \(e) excluded" }
        s += " in \(String(format: "%.1f", duration)) s"
        return s
    }

    /// The final report for the operator: counts, then the failures and skips, at most `limit` lines each.
    public func render(limit: Int = 20) -> String {
        var lines: [String] = []
        lines.append("migration \(job): \(source) → \(destination)")
        lines.append("  files seen      \(filesSeen)")
        lines.append("  uploaded        \(uploaded) (\(ByteFormat.human(uploadedBytes)))")
        lines.append("  unchanged       \(unchanged) (\(ByteFormat.human(unchangedBytes))), done in an earlier run")
        lines.append("  already present \(alreadyPresent) (\(ByteFormat.human(alreadyPresentBytes))), same size and checksum at the destination")
        if resumedFiles > 0 {
            lines.append("  resumed         \(resumedFiles) large file(s): \(resumedParts) part(s), \(ByteFormat.human(resumedBytes)) not sent again")
        }
        lines.append("  skipped         \(skipped.count)")
        if let e = excludedText(excludedFiles, excludedDirectories) { lines.append("  excluded        \(e) (exclude patterns)") }
        lines.append("  failed          \(failed.count)")
        if abortedStaleUploads > 0 { lines.append("  stale multipart uploads aborted: \(abortedStaleUploads)") }
        lines.append("  duration        \(String(format: "%.1f", duration)) s, \(ByteFormat.human(Int64(rate)))/s")
        if let m = mappingFile { lines.append("  mapping file    \(PathText.escape(m)) (\(mappingEntries) entries)") }
        if let r = stopReason {
            lines.append("  STOPPED         \(notStarted) file(s) not started, \(notRecorded) sent but not recorded (the next run finds them at the destination)")
            lines.append("  reason          \(r)")
        }
        func list(_ title: String, _ items: [MigrateFileIssue]) {
            guard !items.isEmpty else { return }
            lines.append(title)
            for i in items.prefix(limit) { lines.append("  \(i.path): \(i.reason)") }
            if items.count > limit { lines.append("  and \(items.count - limit) more") }
        }
        list("skipped:", skipped)
        list("failed:", failed)
        return lines.joined(separator: "\n")
    }
}

/// What a migration would do (`--dry-run`), from the source tree and the checkpoint only.
public struct MigratePlan: Sendable, Equatable {
    public var filesSeen = 0
    public var newFiles = 0
    public var newBytes: Int64 = 0
    /// Done before, but size or mtime changed since.
    public var changedFiles = 0
    public var changedBytes: Int64 = 0
    /// An unfinished multipart upload or an earlier failure: uploaded (or resumed) again.
    public var retryFiles = 0
    public var retryBytes: Int64 = 0
    public var unchanged = 0
    public var unchangedBytes: Int64 = 0
    public var multipartFiles = 0
    public var excludedFiles = 0
    public var excludedDirectories = 0
    /// Of the files to upload, those with an object of the same size at the
    /// destination already (the run compares checksums and skips equal ones).
    public var presentSameSize = 0
    public var presentSameSizeBytes: Int64 = 0
    public var destinationChecked = false
    /// Why the destination could not be listed, if it could not.
    public var destinationError: String?
    public var failed: [MigrateFileIssue] = []
    public var skipped: [MigrateFileIssue] = []

    public var uploadFiles: Int { newFiles + changedFiles + retryFiles }
    public var uploadBytes: Int64 { newBytes + changedBytes + retryBytes }

    public func render(job: String, source: String, destination: String, limit: Int = 20) -> String {
        var lines = ["dry run of migration \(job): \(source) → \(destination) (nothing uploaded, checkpoint unchanged)"]
        lines.append("  files seen        \(filesSeen)")
        lines.append("  would upload      \(uploadFiles) (\(ByteFormat.human(uploadBytes))): \(newFiles) new, \(changedFiles) changed, \(retryFiles) unfinished or failed before; \(multipartFiles) multipart")
        lines.append("  unchanged (skip)  \(unchanged) (\(ByteFormat.human(unchangedBytes)))")
        lines.append("  skipped           \(skipped.count)")
        if let e = excludedText(excludedFiles, excludedDirectories) { lines.append("  excluded          \(e) (exclude patterns)") }
        lines.append("  failing           \(failed.count)")
        if destinationChecked {
            lines.append("  at destination    \(presentSameSize) of them (\(ByteFormat.human(presentSameSizeBytes))) already have an object of the same size; the run compares checksums and does not send equal ones again")
        } else if let destinationError {
            lines.append("  at destination    not checked: \(destinationError)")
        }
        for (title, items) in [("skipped:", skipped), ("failing:", failed)] where !items.isEmpty {
            lines.append(title)
            for i in items.prefix(limit) { lines.append("  \(i.path): \(i.reason)") }
            if items.count > limit { lines.append("  and \(items.count - limit) more") }
        }
        return lines.joined(separator: "\n")
    }
}

/// The result of `cairn migrate JOB --verify`.
public struct MigrateVerifyReport: Sendable, Equatable {
    public var checked = 0
    public var ok = 0
    public var deep = false
    public var missing: [MigrateFileIssue] = []
    public var different: [MigrateFileIssue] = []
    public var errors: [MigrateFileIssue] = []
    public var isClean: Bool { missing.isEmpty && different.isEmpty && errors.isEmpty }

    public func render(job: String, limit: Int = 20) -> String {
        var lines = ["verify\(deep ? " --deep" : "") of migration \(job): \(checked) checked, \(ok) ok, \(missing.count) missing, \(different.count) different, \(errors.count) error(s)"]
        for (title, items) in [("missing:", missing), ("different:", different), ("errors:", errors)] where !items.isEmpty {
            lines.append(title)
            for i in items.prefix(limit) { lines.append("  \(i.path): \(i.reason)") }
            if items.count > limit { lines.append("  and \(items.count - limit) more") }
        }
        return lines.joined(separator: "\n")
    }
}

/// "3 file(s), 1 director(ies)", or nil when nothing was excluded.
func excludedText(_ files: Int, _ directories: Int) -> String? {
    files + directories > 0 ? "\(files) file(s), \(directories) director(ies)" : nil
}
