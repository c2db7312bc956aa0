import Config
import Core
import Crypto
import Foundation
import Logging
import ObjectStore
import State

/// Copies a directory tree (the platform's uploads volume) to object storage,
/// resumably: a checkpoint database (`STATE_DIR/migrate/JOB.sqlite`) records
/// every file and every completed part, committed as they finish, so a run
/// that is killed at any moment loses at most the transfers in flight.
///
/// - Small files (< `multipart_threshold`): hashed (SHA-256 and MD5), then one
///   PUT with `Content-MD5`, metadata `sha256` and `mtime`, the content type
///   from the extension, `Cache-Control` and Object Lock when configured.
/// - Large files: hashed first (the SHA-256 goes into the object's metadata,
///   which is fixed when the multipart upload is created), then equal parts
///   read from the file by range, uploaded in parallel within the global
///   transfer limit, each part committed to the checkpoint. A re-run confirms
///   the recorded parts with ListParts and sends only the missing ones; if the
///   upload is gone it starts over. Failed or cancelled runs never abort an
///   upload (the next run resumes it); a file that changed does abort its old one.
/// - Before a file is uploaded, an object already at its key with the same
///   size (from one LIST of the prefix per run) is HEADed: the same `sha256`
///   metadata (or, without it, a single-part ETag equal to the file's MD5)
///   records the file as done without sending it.
///
/// Source files are only ever opened read-only.
public struct MigrateJob: Sendable {
    public let name: String
    public let spec: MigrateSpec
    public let store: any ObjectStore
    public let stateDir: String
    public let objectLock: ObjectLock?
    public var progress: MigrateProgress
    public var mimeTypes: MimeTypes
    /// Bytes per second across all transfers; nil = unlimited. Defaults to the job's `bwlimit`.
    public var bandwidthLimit: Int64?
    /// Transfers at once (small-file PUTs and parts together). Defaults to the job's `concurrency`.
    public var concurrency: Int
    /// Where the mapping file goes; defaults to the job's `mapping_file`, else `STATE_DIR/migrate/JOB.mapping.jsonl`.
    public var mappingFile: String
    /// Exclude patterns for this run on top of the job's `exclude` (`cairn migrate --exclude`).
    public var extraExclude: [String] = []
    /// Files up to this size are read into memory once: the bytes hashed are the bytes sent.
    public var inMemoryLimit: Int64 = 1 << 20
    public var logger: Logger

    public init(name: String, spec: MigrateSpec, store: any ObjectStore, stateDir: String, objectLock: ObjectLock?,
                progress: MigrateProgress = MigrateProgress(), mimeTypes: MimeTypes = .system(),
                logger: Logger = .cairn("migrate")) {
        self.name = name
        self.spec = spec
        self.store = store
        self.stateDir = stateDir
        self.objectLock = objectLock
        self.progress = progress
        self.mimeTypes = mimeTypes
        self.bandwidthLimit = spec.bandwidthLimit
        self.concurrency = max(1, spec.concurrency)
        self.mappingFile = spec.mappingFile ?? Self.defaultMappingFile(stateDir: stateDir, job: name)
        self.logger = logger
    }

    public static func defaultMappingFile(stateDir: String, job: String) -> String {
        stateDir + "/migrate/\(job).mapping.jsonl"
    }

    /// The key prefix of the job's objects: `PREFIX/` ("" without a prefix).
    public var keyPrefix: String { Self.keyPrefix(spec.prefix) }

    public static func keyPrefix(_ prefix: String) -> String {
        let p = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return p.isEmpty ? "" : p + "/"
    }

    /// The object key of a source path: prefix + the path relative to the source, `/`-separated, bytes as on disk.
    public static func objectKey(prefix: String, path: String) -> String { keyPrefix(prefix) + path }

    /// The part size for a file: the preferred size, or more if 10,000 parts would not suffice (whole MiB).
    public static func partSize(fileSize: Int64, preferred: Int64) -> Int64 {
        Int64(MultipartUploader.partSize(forUpperBound: fileSize, preferred: Int(preferred)))
    }

    var destination: String { store.displayName + keyPrefix }

    /// Done by an earlier run and unchanged since (done, at key prefix + path,
    /// same size and mtime): not looked at again. From the few columns
    /// `CheckpointStore.quickRows` reads.
    static func isUnchanged(_ f: WalkedFile, _ row: CheckpointStore.QuickRow?) -> Bool {
        guard let r = row else { return false }
        return r.doneAtKey && r.size == f.size && r.mtimeNs == f.mtimeNs
    }

    /// The first and last path of a batch in UTF-8 byte order (the order of
    /// the checkpoint's path index). Nil for an empty batch.
    static func pathRange(_ batch: [WalkedFile]) -> (low: String, high: String)? {
        guard var low = batch.first?.path else { return nil }
        var high = low
        for f in batch.dropFirst() {
            if f.path.utf8.lexicographicallyPrecedes(low.utf8) { low = f.path }
            if high.utf8.lexicographicallyPrecedes(f.path.utf8) { high = f.path }
        }
        return (low, high)
    }

    /// A batch of walked files looked up in the checkpoint: those unchanged
    /// since an earlier run (`unchanged`) from one range scan of a few columns,
    /// and the full rows of the others (`rows`, only those that have one).
    static func lookUp(_ batch: [WalkedFile], in checkpoint: CheckpointStore?, keyPrefix: String) throws
        -> (unchanged: [Bool], rows: [String: CheckpointFile]) {
        guard let checkpoint, let range = pathRange(batch) else { return (Array(repeating: false, count: batch.count), [:]) }
        let quick = try checkpoint.quickRows(from: range.low, to: range.high, keyPrefix: keyPrefix)
        let unchanged = batch.map { isUnchanged($0, quick[$0.path]) }
        var others: [String] = []
        for (f, u) in zip(batch, unchanged) where !u && quick[f.path] != nil { others.append(f.path) }
        return (unchanged, others.isEmpty ? [:] : try checkpoint.files(paths: others))
    }

    /// The job's exclude patterns plus those given for this run.
    func excludeFilter() throws -> PathFilter {
        try PathFilter(parsing: spec.exclude + extraExclude)
    }

    // MARK: the run

    /// Runs the migration to its end. Files that fail are in the report
    /// (`failed`), not thrown; an error is thrown only when the run cannot go on
    /// (source missing, storage unreachable or refusing every file, checkpoint
    /// unusable) or is cancelled.
    public func run() async throws -> MigrateReport {
        let clock = ContinuousClock()
        let t0 = clock.now
        var report = MigrateReport(job: name, source: spec.source, destination: destination)
        let stateDir = self.stateDir, name = self.name
        let checkpoint = try await runBlocking { try CheckpointStore.reusable(stateDir: stateDir, job: name) }
        progress.setPhase("walking \(spec.source)")
        // The tree is walked and looked up in the checkpoint a batch at a time
        // while the uploads go: memory does not grow with the number of files.
        let walker = TreeWalker(root: spec.source, keyPrefixBytes: keyPrefix.utf8.count, exclude: try excludeFilter())
        let cursor = try await runBlocking { try walker.start() }
        progress.begin(files: 0, bytes: 0)
        let batchSize = 1000
        // The destination is listed (one LIST per 1,000 keys) only once a file
        // needs uploading: a run with nothing to do sends no request for its files.
        var ctx: RunContext?
        func context() async throws -> RunContext {
            if let ctx { return ctx }
            progress.setPhase("listing \(destination)")
            var existing: [String: Int64] = [:]
            for o in try await store.list(prefix: keyPrefix) { existing[o.key] = o.size }
            progress.setPhase("uploading")
            let c = RunContext(job: self, root: cursor.root, checkpoint: checkpoint, existing: existing,
                               limiter: bandwidthLimit.map { BandwidthLimiter(bytesPerSecond: $0) })
            ctx = c
            return c
        }
        var toUpload = 0
        var failureCodes = Set<ErrorCode>()
        let breakerLimit = max(10, 2 * concurrency)
        var consecutiveRemote = 0
        var fatal: CairnError?
        var stateError: CairnError?
        var notStarted = 0
        try await withThrowingTaskGroup(of: FileOutcome.self) { group in
            var active = 0
            func collect(_ o: FileOutcome) {
                switch o {
                case .uploaded(let path, let bytes, let resumedParts, let resumedBytes):
                    report.uploaded += 1
                    report.uploadedBytes += bytes
                    if resumedParts > 0 { report.resumedFiles += 1; report.resumedParts += resumedParts; report.resumedBytes += resumedBytes }
                    consecutiveRemote = 0
                    logger.debug("file uploaded", metadata: ["job": "\(name)", "path": "\(PathText.escape(path))"])
                    progress.fileFinished(unsentBytes: 0, failed: false)
                case .alreadyPresent(_, let bytes):
                    report.alreadyPresent += 1
                    report.alreadyPresentBytes += bytes
                    consecutiveRemote = 0
                    progress.fileFinished(unsentBytes: bytes, failed: false)
                case .skipped(let path, let size, let reason):
                    report.skipped.append(MigrateFileIssue(path: PathText.escape(path), reason: reason))
                    logger.notice("file skipped", metadata: ["job": "\(name)", "path": "\(PathText.escape(path))", "reason": "\(reason)"])
                    progress.fileFinished(unsentBytes: size, failed: true)
                case .notStarted(let size):
                    notStarted += 1
                    progress.fileFinished(unsentBytes: size, failed: true)
                case .stateUnusable(let path, let size, let error):
                    // The first one stops the run: no new file is started;
                    // the ones in flight end (their state cannot be recorded either).
                    if stateError == nil {
                        stateError = error
                        logger.error("migration state cannot be written; stopping", metadata: ["job": "\(name)", "path": "\(PathText.escape(path))", "error": "\(PathText.escape(error.description))"])
                    }
                    report.notRecorded += 1
                    progress.fileFinished(unsentBytes: size, failed: true)
                case .failed(let path, let size, let error):
                    report.failed.append(MigrateFileIssue(path: PathText.escape(path), reason: PathText.escape(error.message)))
                    failureCodes.insert(error.code)
                    logger.notice("file failed", metadata: ["job": "\(name)", "path": "\(PathText.escape(path))", "error": "\(PathText.escape(error.message))"])
                    progress.fileFinished(unsentBytes: size, failed: true)
                    if [.network, .timeout, .tls, .storage, .storageAuth, .notFound].contains(error.code) {
                        consecutiveRemote += 1
                        if consecutiveRemote >= breakerLimit && fatal == nil {
                            fatal = CairnError(error.code, "migration \(name): stopped after \(consecutiveRemote) files in a row failed at the storage; last: \(error.message)")
                        }
                    } else {
                        consecutiveRemote = 0
                    }
                }
            }
            // After a state failure the walk goes on (no file is started) to count what was not started.
            while fatal == nil {
                let batch = try await runBlockingCancellable { flag in try cursor.next(max: batchSize, cancel: flag) }
                if batch.isEmpty { break }
                let prefix = keyPrefix
                let (unchanged, rows) = try await runBlocking { try Self.lookUp(batch, in: checkpoint, keyPrefix: prefix) }
                report.filesSeen += batch.count
                for (i, f) in batch.enumerated() {
                    let row = rows[f.path]
                    if unchanged[i] {
                        report.unchanged += 1
                        report.unchangedBytes += f.size
                        continue
                    }
                    if fatal != nil { break }
                    if stateError != nil { notStarted += 1; continue }
                    let c = try await context()
                    toUpload += 1
                    progress.planned(files: 1, bytes: f.size)
                    group.addTask { try await c.process(f, row: row) }
                    active += 1
                    if active >= concurrency, let o = try await group.next() {
                        active -= 1
                        collect(o)
                    }
                }
            }
            while let o = try await group.next() { collect(o) }
        }
        // the walk's problems, found along the way, come first in the report
        let walkIssues = cursor.issues
        report.excludedFiles = cursor.excludedFiles
        report.excludedDirectories = cursor.excludedDirectories
        report.skipped.insert(contentsOf: walkIssues.filter { $0.kind == .skipped }.map { MigrateFileIssue(path: $0.path, reason: $0.reason) }, at: 0)
        let walkFailures = walkIssues.filter { $0.kind == .failed }.map { MigrateFileIssue(path: $0.path, reason: $0.reason) }
        report.failed.insert(contentsOf: walkFailures, at: 0)
        if !walkFailures.isEmpty { failureCodes.insert(.io) }
        logger.info("migration walked", metadata: ["job": "\(name)", "files": "\(report.filesSeen)", "to_upload": "\(toUpload)"])
        try Task.checkCancellation()
        if let fatal { throw fatal }
        if let stateError {
            report.stop(stateError, notStarted: notStarted)
            return finish(report, t0: t0, clock: clock)
        }

        // Uploads of this tree's keys that no row refers to were started by a run
        // killed before it could record them: nothing can resume them. Only keys
        // of files in the source tree or the checkpoint: anything else under the
        // prefix (another job's, a backup's) is not ours to abort.
        do {
            let uploads = try await store.listMultipartUploads(prefix: keyPrefix)
            if !uploads.isEmpty {
                let referenced = try await runBlocking { try checkpoint.uploadIds() }
                let prefix = keyPrefix, root = cursor.root
                for u in uploads where !referenced.contains(u.uploadId) {
                    // ours: a key a row records, or the key of a file in the source (looked up beneath the root, no symlink followed)
                    let ours = try await runBlocking {
                        if try checkpoint.hasKey(u.key) { return true }
                        guard u.key.hasPrefix(prefix) else { return false }
                        return Self.sourceHasEntry(root: root, path: String(u.key.dropFirst(prefix.count)))
                    }
                    guard ours else { continue }
                    try await store.abortMultipartUpload(key: u.key, uploadId: u.uploadId)
                    report.abortedStaleUploads += 1
                }
            }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.warning("could not clean up stale multipart uploads", metadata: ["job": "\(name)", "error": "\(error)"])
        }

        report.failureCode = failureCodes.count == 1 ? failureCodes.first! : .io
        do {
            try await writeMapping(checkpoint, into: &report)
        } catch let e as CairnError where e.stateWriteFailure != nil {
            report.stop(e, notStarted: 0)
        }
        return finish(report, t0: t0, clock: clock)
    }

    private func finish(_ report: MigrateReport, t0: ContinuousClock.Instant, clock: ContinuousClock) -> MigrateReport {
        var report = report
        let d = clock.now - t0
        report.duration = d.inSeconds
        progress.setPhase(report.stopReason == nil ? "done" : "stopped")
        return report
    }

    /// Writes the mapping file from the done rows, unless (without `force`)
    /// the checkpoint records that the file at that path is still the one
    /// written from rows that have not changed since, for the same storage
    /// address (`MappingStamp`): a missing, replaced or edited file is rewritten.
    private func writeMapping(_ checkpoint: CheckpointStore, into report: inout MigrateReport, force: Bool = false) async throws {
        let store = self.store, path = mappingFile, logger = self.logger, name = self.name
        let basis = MappingFile.basis(store: store)
        let count = try await runBlocking { () throws -> Int in
            if !force, let stamp = try checkpoint.mappingStamp(),
               stamp.isCurrent(path: path, generation: try checkpoint.generation(), basis: basis, onDisk: FileIdentity.of(path: path)) {
                return stamp.entries
            }
            var generation: Int64 = 0
            let written = try MappingFile.write(to: path) { emit in
                generation = try checkpoint.forEachDone { r in try emit(MappingFile.entry(r, store: store)) }
            }
            if let file = written.file {
                // Without the stamp the next run only rewrites the file again.
                do {
                    try checkpoint.setMappingStamp(MappingStamp(path: path, generation: generation, basis: basis, entries: written.entries, file: file))
                } catch {
                    logger.warning("could not record the mapping file in the checkpoint; the next run rewrites it", metadata: ["job": "\(name)", "error": "\(error)"])
                }
            }
            return written.entries
        }
        report.mappingFile = path
        report.mappingEntries = count
    }

    /// Writes the mapping file from the checkpoint without running the migration (always rewritten).
    public func writeMappingFile() async throws -> Int {
        let checkpoint = try await openExistingCheckpoint()
        var r = MigrateReport(job: name, source: spec.source, destination: destination)
        try await writeMapping(checkpoint, into: &r, force: true)
        return r.mappingEntries
    }

    func openExistingCheckpoint() async throws -> CheckpointStore {
        let path = CheckpointStore.path(stateDir: stateDir, job: name)
        guard FileManager.default.fileExists(atPath: path) else {
            throw CairnError(.notFound, "migration \(name) has no checkpoint (\(path)): run cairn migrate \(name) first")
        }
        return try await runBlocking { try CheckpointStore(path: path) }
    }

    // MARK: dry run

    /// What `run()` would upload, from the source tree and the checkpoint:
    /// nothing is sent, the checkpoint is neither created nor changed. The
    /// destination is listed (read-only, best effort) to count the files to
    /// upload that already have an object of the same size there.
    public func plan() async throws -> MigratePlan {
        let walker = TreeWalker(root: spec.source, keyPrefixBytes: keyPrefix.utf8.count, exclude: try excludeFilter())
        let cursor = try await runBlocking { try walker.start() }
        let path = CheckpointStore.path(stateDir: stateDir, job: name)
        let checkpoint = FileManager.default.fileExists(atPath: path) ? try await runBlocking { try CheckpointStore(path: path) } : nil
        var plan = MigratePlan()
        // the destination is listed (once) when the first file to upload is found
        var sizes: [String: Int64]?
        while true {
            let batch = try await runBlockingCancellable { flag in try cursor.next(max: 1000, cancel: flag) }
            if batch.isEmpty { break }
            let prefix = keyPrefix
            let (unchanged, rows) = try await runBlocking { try Self.lookUp(batch, in: checkpoint, keyPrefix: prefix) }
            plan.filesSeen += batch.count
            for (i, f) in batch.enumerated() {
                let row = rows[f.path]
                if unchanged[i] {
                    plan.unchanged += 1; plan.unchangedBytes += f.size
                    continue
                }
                if f.size >= spec.multipartThreshold { plan.multipartFiles += 1 }
                if let r = row, r.key == keyPrefix + f.path {
                    if r.state == .done { plan.changedFiles += 1; plan.changedBytes += f.size } else { plan.retryFiles += 1; plan.retryBytes += f.size }
                } else {
                    plan.newFiles += 1; plan.newBytes += f.size
                }
                if sizes == nil && plan.destinationError == nil {
                    do {
                        var listed: [String: Int64] = [:]
                        for o in try await store.list(prefix: keyPrefix) { listed[o.key] = o.size }
                        sizes = listed
                        plan.destinationChecked = true
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        plan.destinationError = "\(error)"
                    }
                }
                if let sizes, sizes[keyPrefix + f.path] == f.size {
                    plan.presentSameSize += 1; plan.presentSameSizeBytes += f.size
                }
            }
        }
        plan.excludedFiles = cursor.excludedFiles
        plan.excludedDirectories = cursor.excludedDirectories
        for i in cursor.issues {
            let issue = MigrateFileIssue(path: i.path, reason: i.reason)
            if i.kind == .skipped { plan.skipped.append(issue) } else { plan.failed.append(issue) }
        }
        return plan
    }

    // MARK: verify

    /// Checks every file recorded as done against its object: HEAD (size, and
    /// the `sha256` metadata, or for a single-part object without it the ETag
    /// against the recorded MD5); with `deep`, downloads and hashes each object.
    public func verify(deep: Bool) async throws -> MigrateVerifyReport {
        let checkpoint = try await openExistingCheckpoint()
        let rows = try await runBlocking { try checkpoint.files(in: .done) }
        var report = MigrateVerifyReport()
        report.deep = deep
        let store = self.store
        progress.begin(files: rows.count, bytes: rows.reduce(0) { $0 + $1.size })
        let progress = self.progress
        enum Result: Sendable { case ok, missing(MigrateFileIssue), different(MigrateFileIssue), error(MigrateFileIssue) }
        try await withThrowingTaskGroup(of: Result.self) { group in
            var i = 0, active = 0
            func collect(_ r: Result) {
                report.checked += 1
                switch r {
                case .ok: report.ok += 1
                case .missing(let m): report.missing.append(m)
                case .different(let d): report.different.append(d)
                case .error(let e): report.errors.append(e)
                }
            }
            while i < rows.count {
                let row = rows[i]
                i += 1
                group.addTask {
                    defer { progress.fileFinished(unsentBytes: row.size, failed: false) }
                    do {
                        guard let info = try await store.head(key: row.key) else {
                            return .missing(MigrateFileIssue(path: PathText.escape(row.path), reason: "no object at \(PathText.escape(row.key))"))
                        }
                        if info.size != row.size {
                            return .different(MigrateFileIssue(path: PathText.escape(row.path), reason: "object is \(info.size) bytes, the file was \(row.size)"))
                        }
                        if let sha = info.metadata["sha256"], let mine = row.sha256, sha.lowercased() != mine {
                            return .different(MigrateFileIssue(path: PathText.escape(row.path), reason: "object's sha256 metadata \(sha) differs from the file's \(mine)"))
                        }
                        if info.metadata["sha256"] == nil {
                            let etag = Self.unquoted(info.etag ?? "")
                            if etag.contains("-") || row.md5 == nil {
                                if !deep {
                                    return .different(MigrateFileIssue(path: PathText.escape(row.path), reason: "object has no sha256 metadata and a multipart ETag: check with --deep"))
                                }
                            } else if etag.lowercased() != row.md5 {
                                return .different(MigrateFileIssue(path: PathText.escape(row.path), reason: "object's ETag \(etag) differs from the file's MD5 \(row.md5 ?? "")"))
                            }
                        }
                        if deep {
                            let dl = try await store.get(key: row.key, range: nil)
                            let (sha, n) = try await FileHashing.sha256(of: dl.body)
                            if n != row.size {
                                return .different(MigrateFileIssue(path: PathText.escape(row.path), reason: "downloaded \(n) bytes, the file was \(row.size)"))
                            }
                            if sha != row.sha256 {
                                return .different(MigrateFileIssue(path: PathText.escape(row.path), reason: "downloaded content has SHA-256 \(sha), the file had \(row.sha256 ?? "?")"))
                            }
                        }
                        return .ok
                    } catch let e as CairnError where e.code != .cancelled {
                        return .error(MigrateFileIssue(path: PathText.escape(row.path), reason: PathText.escape(e.description)))
                    }
                }
                active += 1
                if active >= concurrency, let r = try await group.next() { active -= 1; collect(r) }
            }
            while let r = try await group.next() { collect(r) }
        }
        report.missing.sort { $0.path < $1.path }
        report.different.sort { $0.path < $1.path }
        report.errors.sort { $0.path < $1.path }
        return report
    }

    // MARK: helpers

    /// Blocking: whether `path` (relative, `/`-separated) names an entry in the
    /// source, looked up beneath the root's descriptor without following a symlink.
    static func sourceHasEntry(root: OpenFile, path: String) -> Bool {
        var components = Beneath.components(Array(path.utf8))
        guard let name = components.popLast() else { return false }
        guard let dir = try? Beneath.openDirectory(root.fd, components) else { return false }
        var st = stat()
        return (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { fstatat(dir.fd, $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) }
        } == 0
    }

    static func unquoted(_ etag: String) -> String {
        var s = Substring(etag)
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        if s.hasPrefix("\""), s.hasSuffix("\""), s.count >= 2 { s = s.dropFirst().dropLast() }
        return String(s)
    }

    /// Does the object at the destination hold these contents? Size, then the
    /// `sha256` metadata, else a single-part ETag against the MD5.
    static func matches(_ info: ObjectInfo, size: Int64, sha256: String, md5: String?) -> Bool {
        guard info.size == size else { return false }
        if let s = info.metadata["sha256"] { return s.lowercased() == sha256 }
        if let md5, let e = info.etag.map(unquoted), !e.contains("-") { return e.lowercased() == md5 }
        return false
    }

    /// `x-amz-meta-mtime`: seconds since the epoch with nanoseconds, as rclone writes it.
    static func mtimeString(_ ns: Int64) -> String {
        let (s, n) = ns.quotientAndRemainder(dividingBy: 1_000_000_000)
        return n >= 0 ? "\(s).\(String(format: "%09lld", n))" : "\(s - 1).\(String(format: "%09lld", n + 1_000_000_000))"
    }
}

/// How one file ended.
enum FileOutcome: Sendable {
    case uploaded(path: String, bytes: Int64, resumedParts: Int, resumedBytes: Int64)
    case alreadyPresent(path: String, bytes: Int64)
    case failed(path: String, size: Int64, error: CairnError)
    /// Not uploaded on purpose (replaced by a symlink or another file after the walk).
    case skipped(path: String, size: Int64, reason: String)
    /// Not started: the run is stopping.
    case notStarted(size: Int64)
    /// The checkpoint could not be written: the run stops.
    case stateUnusable(path: String, size: Int64, error: CairnError)
}

/// A checkpoint write failed: carried out of a file's upload to stop the run.
struct StateUnusable: Error { var error: CairnError }

/// State shared by the transfers of one run.
final class RunContext: Sendable {
    let job: MigrateJob
    /// The source root as the walk opened it: every file is opened beneath it.
    let root: OpenFile
    let checkpoint: CheckpointStore
    /// Sizes of the objects under the prefix when the run began (key to size).
    let existing: [String: Int64]
    let limiter: BandwidthLimiter?
    let slots: TransferSlots
    /// Set when the state cannot be written: files not yet started are not started.
    let stop = CancellationFlag()

    init(job: MigrateJob, root: OpenFile, checkpoint: CheckpointStore, existing: [String: Int64], limiter: BandwidthLimiter?) {
        self.job = job
        self.root = root
        self.checkpoint = checkpoint
        self.existing = existing
        self.limiter = limiter
        self.slots = TransferSlots(job.concurrency)
    }

    var store: any ObjectStore { job.store }

    /// Migrates one file; never throws except for cancellation.
    func process(_ f: WalkedFile, row: CheckpointFile?) async throws -> FileOutcome {
        if stop.isSet { return .notStarted(size: f.size) }
        let key = job.keyPrefix + f.path
        let shown = PathText.escape(f.path)
        var current = row
        var attempt = 0
        while true {
            attempt += 1
            do {
                if f.size >= job.spec.multipartThreshold {
                    return try await large(f, key: key, row: current)
                }
                return try await small(f, key: key, row: current)
            } catch let s as StateUnusable {
                stop.set()   // no file starts after this one
                return .stateUnusable(path: f.path, size: f.size, error: s.error)
            } catch let p as FileProblem {
                if case .replaced(let what) = p {
                    job.logger.warning("file replaced after the walk; skipped, not followed", metadata: ["job": "\(job.name)", "path": "\(shown)", "what": "\(what)"])
                    return .skipped(path: f.path, size: f.size, reason: p.reason)
                }
                if case .changed = p, attempt < 2 {
                    job.logger.info("file changed while uploading; retrying once", metadata: ["job": "\(job.name)", "path": "\(shown)"])
                    current = try? await runBlocking { [checkpoint] in try checkpoint.file(f.path) }
                    continue
                }
                // the report and the log name the path; the reason does not repeat it
                let err = CairnError(.io, p.reason)
                if p != .vanished, let s = await recordFailure(f, key: key, row: current, error: err) {
                    return .stateUnusable(path: f.path, size: f.size, error: s)
                }
                return .failed(path: f.path, size: f.size, error: err)
            } catch {
                if Task.isCancelled || error is CancellationError { throw CancellationError() }
                let err = (error as? CairnError) ?? CairnError(.internal, "\(error)")
                let latest = try? await runBlocking { [checkpoint] in try checkpoint.file(f.path) }
                if let s = await recordFailure(f, key: key, row: latest ?? current, error: err) {
                    return .stateUnusable(path: f.path, size: f.size, error: s)
                }
                return .failed(path: f.path, size: f.size, error: err)
            }
        }
    }

    /// Marks the row failed, keeping an unfinished multipart upload (and its
    /// parts) for the next run to resume. Returns the error when the
    /// checkpoint cannot be written (the run stops).
    private func recordFailure(_ f: WalkedFile, key: String, row: CheckpointFile?, error: CairnError) async -> CairnError? {
        var r = row ?? CheckpointFile(path: f.path, size: f.size, mtimeNs: f.mtimeNs, state: .failed, key: key)
        if r.state == .done { r.size = f.size; r.mtimeNs = f.mtimeNs }   // a done row whose file changed: no longer done
        r.state = .failed
        r.error = error.message
        r.updatedAt = Date()
        let rr = r
        do { try await runBlocking { [checkpoint] in try checkpoint.put(rr) } } catch {
            let e = CairnError.wrap(error, .io, "checkpoint")
            if e.stateWriteFailure != nil { stop.set(); return e }
            job.logger.error("could not record a failure in the checkpoint", metadata: ["job": "\(job.name)", "path": "\(PathText.escape(f.path))", "error": "\(PathText.escape(e.description))"])
        }
        return nil
    }

    private func options(sha256: String, stamp: FileStamp, contentType: String) -> PutOptions {
        PutOptions(contentType: contentType, cacheControl: job.spec.cacheControl,
                   metadata: ["sha256": sha256, "mtime": MigrateJob.mtimeString(stamp.mtimeNs)],
                   objectLock: job.objectLock)
    }

    private func stamp(_ file: OpenFile) async throws -> FileStamp {
        try await runBlocking { try FileStamp.of(file) }
    }

    /// Opens the file the walk saw (once; every read of this run uses the descriptor).
    private func open(_ f: WalkedFile) async throws -> OpenFile {
        let root = self.root
        return try await runBlocking { try f.open(beneath: root) }
    }

    /// A checkpoint write; a state failure becomes `StateUnusable`, which stops the run.
    private func record(_ r: CheckpointFile) async throws {
        try await stateWrite { [checkpoint] in try checkpoint.put(r) }
    }

    private func stateWrite<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        do { return try await runBlocking(body) } catch let e as CairnError where e.stateWriteFailure != nil {
            throw StateUnusable(error: e)
        }
    }

    /// HEADs `key` if the listing has an object of this size there.
    private func present(_ key: String, size: Int64, sha256: String, md5: String?) async throws -> ObjectInfo? {
        guard let listed = existing[key], listed == size else { return nil }
        guard let info = try await store.head(key: key),
              MigrateJob.matches(info, size: size, sha256: sha256, md5: md5) else { return nil }
        return info
    }

    // MARK: small files: one PUT

    private func small(_ f: WalkedFile, key: String, row: CheckpointFile?) async throws -> FileOutcome {
        let keep = job.inMemoryLimit
        let contentType = job.mimeTypes.contentType(forPath: f.path)
        return try await slots.with {
            if stop.isSet { return .notStarted(size: f.size) }
            // Open and hash in one trip to a blocking thread (per small file, every
            // thread hop costs two wake-ups: docs/BENCHMARKS.md, "Migration first run").
            let root = self.root
            let (file, h) = try await runBlockingCancellable { flag in
                let file = try f.open(beneath: root)
                return (file, try FileHashing.hash(file, md5: true, keepLimit: keep, cancel: flag))
            }
            let size = h.stamp.size
            var done = CheckpointFile(path: f.path, size: size, mtimeNs: h.stamp.mtimeNs, sha256: h.sha256, md5: h.md5,
                                      state: .done, key: key, contentType: contentType)
            if let info = try await present(key, size: size, sha256: h.sha256, md5: h.md5) {
                done.etag = info.etag
                try await record(done)
                return .alreadyPresent(path: f.path, bytes: size)
            }
            try await limiter?.acquire(size)
            let body: UploadBody = h.data.map { .data($0) } ?? .descriptor(file, offset: 0, length: size)
            var putOptions = options(sha256: h.sha256, stamp: h.stamp, contentType: contentType)
            if h.data != nil {
                // The kept bytes were hashed as they were read: the store need not hash them again.
                putOptions.digests = ContentDigests(sha256Hex: h.sha256, md5Base64: h.md5.flatMap { Data(hexString: $0)?.base64EncodedString() },
                                                    crc32cBase64: h.crc32c)
            }
            let info: ObjectInfo
            do {
                info = try await store.put(key: key, body: body, options: putOptions)
            } catch let e as CairnError where h.data == nil {
                // A file read by the HTTP client that changed under it fails its Content-MD5 check.
                if let now = try? await stamp(file), now != h.stamp { throw FileProblem.changed("size or mtime changed during the PUT") }
                throw e
            }
            if h.data == nil {
                let now = try await stamp(file)
                if now != h.stamp { throw FileProblem.changed("size or mtime changed during the PUT") }
            }
            done.etag = info.etag
            try await record(done)
            job.progress.sent(size)
            return .uploaded(path: f.path, bytes: size, resumedParts: 0, resumedBytes: 0)
        }
    }

    // MARK: large files: hash, then a resumable multipart upload

    private func large(_ f: WalkedFile, key: String, row: CheckpointFile?) async throws -> FileOutcome {
        let contentType = job.mimeTypes.contentType(forPath: f.path)
        if stop.isSet { return .notStarted(size: f.size) }
        let file = try await open(f)
        let h = try await slots.with {
            try await runBlockingCancellable { flag in try FileHashing.hash(file, md5: false, keepLimit: 0, cancel: flag) }
        }
        let size = h.stamp.size
        let partSize = MigrateJob.partSize(fileSize: size, preferred: job.spec.partSize)
        let partCount = Int((size + partSize - 1) / partSize)
        func partLength(_ n: Int) -> Int64 { min(partSize, size - Int64(n - 1) * partSize) }
        var done = CheckpointFile(path: f.path, size: size, mtimeNs: h.stamp.mtimeNs, sha256: h.sha256, state: .done,
                                  partSize: partSize, key: key, contentType: contentType)

        if let info = try await present(key, size: size, sha256: h.sha256, md5: nil) {
            if let old = row?.uploadId { await abortQuietly(key: key, uploadId: old) }
            done.etag = info.etag
            done.partSize = nil
            try await record(done)
            return .alreadyPresent(path: f.path, bytes: size)
        }

        var uploadId: String?
        var have: [Int: CompletedPart] = [:]
        if let r = row, let id = r.uploadId {
            if r.size == size && r.mtimeNs == h.stamp.mtimeNs && r.sha256 == h.sha256 && r.partSize == partSize && r.key == key {
                do {
                    let listed = try await store.listParts(key: key, uploadId: id)
                    let recorded = try await runBlocking { [checkpoint] in try checkpoint.parts(f.path) }
                    var server: [Int: CompletedPart] = [:]
                    for p in listed { server[p.partNumber] = p }
                    for p in recorded where p.partNumber >= 1 && p.partNumber <= partCount {
                        if let s = server[p.partNumber], MigrateJob.unquoted(s.etag) == MigrateJob.unquoted(p.etag),
                           s.size == p.size, p.size == partLength(p.partNumber) {
                            have[p.partNumber] = CompletedPart(partNumber: p.partNumber, etag: p.etag, size: p.size)
                        }
                    }
                    let keep = Set(have.keys)
                    try await stateWrite { [checkpoint] in try checkpoint.retainParts(f.path, keep) }
                    uploadId = id
                    job.logger.info("resuming multipart upload", metadata: ["job": "\(job.name)", "path": "\(PathText.escape(f.path))", "upload": "\(id)", "parts_done": "\(have.count)", "parts": "\(partCount)"])
                } catch let e as CairnError where e.code == .notFound {
                    job.logger.info("multipart upload is gone; starting over", metadata: ["job": "\(job.name)", "path": "\(PathText.escape(f.path))", "upload": "\(id)"])
                }
            } else {
                // The file (or the part size) changed: the old upload cannot be completed.
                await abortQuietly(key: key, uploadId: id)
            }
        }
        if uploadId == nil {
            let id = try await store.createMultipartUpload(key: key, options: options(sha256: h.sha256, stamp: h.stamp, contentType: contentType))
            var r = done
            r.state = .uploading
            r.uploadId = id
            try await record(r)
            uploadId = id
        }
        let id = uploadId!
        let resumedBytes = have.values.reduce(0) { $0 + $1.size }
        job.progress.skippedBytes(resumedBytes)

        let missing = (1...max(1, partCount)).filter { have[$0] == nil }
        let limit = job.concurrency
        let relPath = f.path
        let newParts: [CompletedPart] = try await withThrowingTaskGroup(of: CompletedPart.self) { group in
            var out: [CompletedPart] = []
            var active = 0
            for n in missing {
                let offset = Int64(n - 1) * partSize, length = partLength(n)
                group.addTask { [self] in
                    try await slots.with {
                        try await limiter?.acquire(length)
                        let p = try await store.uploadPart(key: key, uploadId: id, partNumber: n,
                                                           body: .descriptor(file, offset: offset, length: length))
                        _ = try await stateWrite { [checkpoint] in
                            try checkpoint.addPart(relPath, uploadId: id, CheckpointPart(partNumber: n, etag: p.etag, size: p.size))
                        }
                        job.progress.sent(length)
                        return p
                    }
                }
                active += 1
                if active >= limit, let p = try await group.next() { active -= 1; out.append(p) }
            }
            while let p = try await group.next() { out.append(p) }
            return out
        }

        // The parts were read while the upload ran: if the file changed, they may mix versions.
        let now = try await stamp(file)
        if now != h.stamp {
            await abortQuietly(key: key, uploadId: id)
            var r = done
            r.state = .failed
            r.error = "changed during upload"
            r.partSize = nil
            try await record(r)
            throw FileProblem.changed("size or mtime changed during the multipart upload")
        }

        let parts = (Array(have.values) + newParts).sorted { $0.partNumber < $1.partNumber }
        do {
            let info = try await store.completeMultipartUpload(key: key, uploadId: id, parts: parts)
            done.etag = info.etag
        } catch let e as CairnError where e.code == .notFound {
            // A completion retried after a lost response finds no upload: the first attempt may have succeeded.
            guard let info = try await store.head(key: key), MigrateJob.matches(info, size: size, sha256: h.sha256, md5: nil) else {
                var r = done
                r.state = .failed
                r.error = e.message
                try await record(r)
                throw e
            }
            done.etag = info.etag
        }
        try await record(done)
        let sent = newParts.reduce(0) { $0 + $1.size }
        return .uploaded(path: f.path, bytes: sent, resumedParts: have.count, resumedBytes: resumedBytes)
    }

    /// Aborts an upload that can no longer be completed, even from a cancelled task.
    private func abortQuietly(key: String, uploadId: String) async {
        let store = self.store, logger = job.logger
        await Task.detached {
            do { try await store.abortMultipartUpload(key: key, uploadId: uploadId) } catch {
                logger.warning("could not abort a stale multipart upload", metadata: ["key": "\(key)", "upload": "\(uploadId)", "error": "\(error)"])
            }
        }.value
    }
}
