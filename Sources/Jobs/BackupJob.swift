import Config
import Core
import Crypto
import Foundation
import Logging
import ObjectStore
import Pipeline
import Postgres

/// Plaintext side of a dump: size, and COPY rows per table counted as the
/// archive streams past (no extra scan of the database). No SHA-256 of the
/// plaintext: the authenticated stream and zstd's frame checksum cover it
/// (docs/FORMAT.md §9).
final class DumpInspector: ByteTransform, @unchecked Sendable {
    private var counter: ArchiveRowCounter?
    private let progress: BackupProgress?
    private(set) var byteCount: Int64 = 0
    private(set) var finished = false
    private(set) var rowCounts: TableRowCounts?

    init(countRows: Bool, progress: BackupProgress?) {
        counter = countRows ? ArchiveRowCounter() : nil
        self.progress = progress
    }

    func update(_ data: Data) throws -> Data {
        byteCount += Int64(data.count)
        try counter?.consume(data)
        progress?.addDumped(Int64(data.count))
        return data
    }

    func finish() throws -> Data {
        progress?.dumpEnded()
        finished = true
        rowCounts = try counter?.finish()
        return Data()
    }
}

/// A database backup: pg_dump (inside an exported snapshot) → zstd →
/// AES-256-GCM stream → multipart upload, then the manifest, written last.
/// Nothing touches the local disk; memory is bounded by the channel
/// capacities and upload concurrency × part size.
public struct BackupJob: Sendable {
    public var name: String
    public var spec: BackupSpec
    public var store: any ObjectStore
    public var keyring: Keyring
    public var logger: Logger
    public var progress: BackupProgress?
    /// "archive" (default: count COPY rows in the stream) or "database" (count in the snapshot).
    public var rowCountSource: String = ProcessInfo.processInfo.environment["CAIRN_ROW_COUNTS"] ?? "archive"
    /// zstd job size with workers. zstd's default at level 3 (8 MiB) costs
    /// ~35 MiB of RSS with one worker; 2 MiB costs ~5 MiB for +0.24 % of output
    /// (docs/BENCHMARKS.md "Backup, issue 15"). `CAIRN_ZSTD_JOB_SIZE` (bytes,
    /// 0: zstd's default) is for benchmarks.
    public var zstdJobSize: Int = Int(ProcessInfo.processInfo.environment["CAIRN_ZSTD_JOB_SIZE"] ?? "") ?? BackupJob.defaultZstdJobSize
    public static let defaultZstdJobSize = 2 << 20
    /// S3 Object Lock for every object of the backup (from the storage's `object_lock`).
    public var objectLock: ObjectLock?

    public init(name: String, spec: BackupSpec, store: any ObjectStore, keyring: Keyring,
                logger: Logger = .cairn("backup"), progress: BackupProgress? = nil) {
        self.name = name
        self.spec = spec
        self.store = store
        self.keyring = keyring
        self.logger = logger
        self.progress = progress
    }

    public struct StreamResult: Sendable {
        var object: BackupObject
        var rowCounts: TableRowCounts?
    }

    /// Runs the backup; returns its manifest once the manifest is stored.
    public func run() async throws -> BackupManifest {
        let started = Date()
        let id = BackupLayout.newID(at: started)
        var logWithContext = logger
        logWithContext[metadataKey: "job"] = "\(name)"
        logWithContext[metadataKey: "backup"] = "\(id)"
        let log = logWithContext
        let password = try spec.readPassword()
        let conninfo = try ConnInfo(spec.database)
        let connString = password.map { conninfo.with("password", $0).keywordString } ?? spec.database

        log.info("backup started", metadata: ["database": "\(conninfo["dbname"] ?? "?")"])
        // `pg_dump --version` runs while the snapshot's connection is made.
        async let versionRun = pgDumpVersion(binary: spec.pgDumpPath)
        let snapshot = try await DumpSnapshot.open(connString, countRows: rowCountSource == "database")
        progress?.estimate(databaseSize: snapshot.databaseSize)
        // Objects completed by this run: deleted again if the run fails before
        // its manifest is stored, so that a failed run leaves nothing behind.
        var completed: [String] = []
        do {
            let dumpVersion = try await versionRun
            // Upper bound of the stream, so that 10,000 equal parts always
            // suffice: a text dump can be larger than the database on disk.
            let bound = snapshot.databaseSize * 2 + (256 << 20)
            let partSize = MultipartUploader.partSize(forUpperBound: bound, preferred: Int(spec.partSize ?? 8 << 20))
            let dumpKey = BackupLayout.dumpKey(prefix: spec.prefix, id: id)
            let dump = try await stream(key: dumpKey, context: StreamContext(job: name, backupID: id, object: StreamContext.dumpObject),
                                        partSize: partSize, countRows: rowCountSource == "archive", logger: log) { out in
                let d = try PgDump(conninfo: connString, snapshot: snapshot.snapshotID, output: out,
                                   options: PgDump.Options(binary: spec.pgDumpPath, password: password))
                log.debug("pg_dump started", metadata: ["pid": "\(d.pid)"])
                try await d.wait()
            }
            completed.append(dumpKey)
            var globals: BackupObject? = nil
            if spec.includeGlobals {
                let key = BackupLayout.globalsKey(prefix: spec.prefix, id: id)
                globals = try await stream(key: key, context: StreamContext(job: name, backupID: id, object: StreamContext.globalsObject),
                                           partSize: MultipartUploader.minPartSize, countRows: false, logger: log) { out in
                    let d = try PgDumpAll(conninfo: connString, output: out, options: PgDumpAll.Options(password: password))
                    try await d.wait()
                }.object
                completed.append(key)
            }
            let counts = rowCountSource == "database" ? snapshot.rowCounts : (dump.rowCounts ?? [:])
            let manifest = BackupManifest(
                formatVersion: BackupManifest.currentFormatVersion, id: id, job: name,
                database: snapshot.database, server: snapshot.endpoint, serverVersion: snapshot.serverVersion,
                pgDumpVersion: dumpVersion, cairnVersion: CairnVersion.current,
                hostname: ProcessInfo.processInfo.hostName, startedAt: started, finishedAt: Date(),
                dump: dump.object, globals: globals, compression: "zstd", compressionLevel: spec.compressionLevel,
                encryption: "cairn-stream-v\(EncryptedStream.version)", keyId: keyring.activeKeyId, segmentSize: EncryptedStream.defaultSegmentSize,
                rowCounts: counts, rowCountSource: rowCountSource, snapshot: snapshot.snapshotID)
            await snapshot.close()
            try Task.checkCancellation()
            // Written last: the only proof that the backup is complete. MAC'd
            // under the active key, so that it cannot be rewritten without it.
            _ = try await store.put(key: BackupLayout.manifestKey(prefix: spec.prefix, id: id),
                                    data: try ManifestAuthenticator.seal(manifest, keyring: keyring),
                                    options: PutOptions(contentType: "application/json", objectLock: objectLock))
            log.info("backup finished", metadata: [
                "bytes": "\(dump.object.plaintextSize)", "stored": "\(dump.object.ciphertextSize)",
                "parts": "\(dump.object.partCount)", "seconds": "\(String(format: "%.1f", manifest.duration))",
            ])
            return manifest
        } catch {
            await snapshot.close()
            if !completed.isEmpty {
                // Not part of the (possibly cancelled) run's task: the clean-up must happen.
                let store = self.store, keys = completed
                do {
                    try await Task.detached { try await store.delete(keys: keys) }.value
                    log.info("deleted the data of the failed backup", metadata: ["keys": "\(keys.joined(separator: ","))"])
                } catch {
                    log.warning("cannot delete the data of the failed backup; the next run will", metadata: ["error": "\(error)"])
                }
            }
            log.error("backup failed", metadata: ["error": "\(error)"])
            throw error
        }
    }

    /// Streams what `source` writes through zstd and encryption into one
    /// object. Any error aborts the upload (MultipartUploader) and kills the source.
    func stream(key: String, context: StreamContext, partSize: Int, countRows: Bool, logger: Logger,
                source: @escaping @Sendable (ByteChannel) async throws -> Void) async throws -> StreamResult {
        let inspector = DumpInspector(countRows: countRows, progress: progress)
        let compressor = try ZstdCompressor(level: Int32(spec.compressionLevel), workers: Int32(spec.zstdWorkers),
                                            jobSize: Int32(zstdJobSize))
        let encryptor = try EncryptingWriter(keyring: keyring, context: context)
        let cipherHash = HashingCounter()
        let uploader = MultipartUploader(store: store, partSize: partSize, concurrency: spec.uploadConcurrency,
                                         options: PutOptions(contentType: "application/octet-stream",
                                                             metadata: ["cairn-job": name], objectLock: objectLock),
                                         logger: logger)
        let result = ResultBox<MultipartUploader.Result>()
        let progress = self.progress
        // With zstd on its own worker thread, what is left (counting rows,
        // feeding zstd, AES-GCM, SHA-256 of the ciphertext) is cheap next to
        // a thread hand-off per chunk: one pipeline thread for all of it.
        // Without workers, zstd keeps a thread of its own (with the row
        // count, ~2 % of its cost) and encryption and the ciphertext hash
        // share the other: two hand-offs per chunk, not four.
        let stages: [any ByteTransform] = spec.zstdWorkers > 0
            ? [ChainedTransform([inspector, compressor, encryptor, cipherHash])]
            : [ChainedTransform([inspector, compressor]), ChainedTransform([encryptor, cipherHash])]
        try await Pipeline.run(source: source, stages: stages, sink: { input in
            result.value = try await uploader.upload(key: key, from: input) { _, bytes in progress?.addPart(bytes) }
        })
        guard let up = result.value, inspector.finished, let cipherSHA = cipherHash.sha256 else {
            throw CairnError(.internal, "backup stream of \(key) ended without a result")
        }
        guard up.size == cipherHash.byteCount else {
            throw CairnError(.integrity, "uploaded \(up.size) bytes of \(key) but the stream had \(cipherHash.byteCount)")
        }
        return StreamResult(object: BackupObject(key: key, plaintextSize: inspector.byteCount,
                                                 plaintextSHA256: nil, ciphertextSize: cipherHash.byteCount,
                                                 ciphertextSHA256: cipherSHA.hexString, partSize: up.partSize,
                                                 partCount: up.partCount, etag: up.info.etag),
                            rowCounts: inspector.rowCounts)
    }
}

/// A value set by one task of a group and read after it.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T?
    var value: T? {
        get { lock.lock(); defer { lock.unlock() }; return _value }
        set { lock.lock(); _value = newValue; lock.unlock() }
    }
}
