import Core
import Crypto
import Foundation
import Logging
import ObjectStore
import Pipeline
import Postgres

/// Reverses a backup: GET → decrypt → decompress → pg_restore (or a plain
/// archive file). Success only when pg_restore exited 0, the whole stream
/// authenticated, and the plaintext matches the manifest's size and SHA-256.
public struct RestoreJob: Sendable {
    public enum Target: Sendable {
        /// Restore into this database (libpq URL or keywords).
        case database(String, create: Bool, jobs: Int)
        /// Write the custom-format archive (for `pg_restore` by hand).
        case file(String)
    }

    public var manifest: BackupManifest
    public var store: any ObjectStore
    public var keyring: Keyring
    public var logger: Logger
    public var pgRestorePath: String?
    /// Called with the bytes of the stored object read so far (for progress).
    public var progress: (@Sendable (Int64) -> Void)?
    /// How to restore: owners, privileges, --clean, globals, overwriting a file.
    public var options = Options()

    public init(manifest: BackupManifest, store: any ObjectStore, keyring: Keyring, logger: Logger = .cairn("restore"),
                pgRestorePath: String? = nil) {
        self.manifest = manifest
        self.store = store
        self.keyring = keyring
        self.logger = logger
        self.pgRestorePath = pgRestorePath
    }

    public struct Result: Sendable {
        public var bytes: Int64
        /// Row counts of the restored database (database targets only).
        public var rowCounts: TableRowCounts?
        /// Tables whose restored count differs from the manifest: name → (manifest, restored).
        public var mismatches: [String: (expected: Int64, actual: Int64?)]
    }

    public func run(to target: Target) async throws -> Result {
        guard keyring.key(for: manifest.keyId) != nil else {
            throw CairnError(.crypto, "backup \(manifest.id) was encrypted with key id '\(manifest.keyId)', which is not in the keyring")
        }
        switch target {
        case .file(let path):
            let bytes = try await restoreToFile(path)
            return Result(bytes: bytes, rowCounts: nil, mismatches: [:])
        case .database(let conninfo, let create, let jobs):
            if options.globals == .apply && manifest.globals == nil {
                throw CairnError(.usage, "backup \(manifest.id) has no globals (its job ran without include_globals): restore without --globals")
            }
            if create { try await createDatabase(conninfo) }
            do {
                return try await restoreIntoDatabase(conninfo, create: create, jobs: jobs)
            } catch {
                // A database this restore created holds a partial restore: drop it, so that
                // the same command can run again (one that existed before is left as it is).
                if create { await dropCreatedDatabase(conninfo) }
                throw error
            }
        }
    }

    private func restoreIntoDatabase(_ conninfo: String, create: Bool, jobs: Int) async throws -> Result {
        // Checked before a byte is downloaded.
        let existingRoles = try await inspectTarget(conninfo, mustBeEmpty: !create && !options.clean)
        let globals = try await globalsScript()
        let pgOptions = PgRestore.Options(binary: pgRestorePath, jobs: jobs > 1 ? jobs : nil, noOwner: options.noOwner,
                                          noPrivileges: options.noPrivileges, clean: options.clean)
        let bytes: Int64
        do {
            if jobs > 1 {
                // pg_restore --jobs needs a seekable file: download first (0600, removed afterwards),
                // after checking the space for it, before a byte is downloaded.
                let dir = options.spoolDirectory ?? FileManager.default.temporaryDirectory.path
                let spool = try RestoreSpool(directory: dir, id: manifest.id, size: manifest.dump.plaintextSize,
                                             remedy: options.spoolDirectory == nil
                                                 ? "free space there, set TMPDIR to a directory that has it, or restore without --jobs to stream"
                                                 : "free space there, or set restore_jobs = 1 to stream")
                defer { spool.remove() }
                let tmp = spool.path
                bytes = try await decrypt(into: { ch in try await spool.write(ch) })
                if let globals {
                    let toc = try await Self.readTOC(file: tmp)
                    try await applyGlobals(globals, referenced: toc.referencedRoles, existing: existingRoles, conninfo: conninfo)
                }
                let r = try PgRestore(source: .file(tmp), target: .database(conninfo), options: pgOptions)
                try await r.wait()
            } else {
                bytes = try await decrypt(into: { ch in
                    guard let globals else {
                        return try await Self.restore(head: Data(), rest: ch, into: conninfo, options: pgOptions)
                    }
                    // The roles the archive names are in its table of contents, at its start:
                    // read it, apply the globals, then hand pg_restore what was read and the rest.
                    let (toc, head) = try await ArchiveTOC.read(from: ch)
                    try await applyGlobals(globals, referenced: toc.referencedRoles, existing: existingRoles, conninfo: conninfo)
                    try await Self.restore(head: head, rest: ch, into: conninfo, options: pgOptions)
                })
            }
        } catch {
            throw Self.explained(error)
        }
        let conn = try await PGConnection.connect(conninfo)
        let counts = try await conn.tableRowCounts()
        await conn.close()
        var mismatches: [String: (expected: Int64, actual: Int64?)] = [:]
        for (table, expected) in manifest.rowCounts where counts[table] != expected {
            mismatches[table] = (expected, counts[table])
        }
        return Result(bytes: bytes, rowCounts: counts, mismatches: mismatches)
    }

    /// Drops the database `createDatabase` made, best effort, even when the
    /// restore was cancelled (in a task of its own, which the cancellation does not reach).
    func dropCreatedDatabase(_ conninfo: String) async {
        let logger = self.logger
        await Task.detached {
            guard let info = try? ConnInfo(conninfo), let db = info["dbname"] else { return }
            do {
                let admin = try await PGConnection.connect(info.with("dbname", "postgres").keywordString)
                defer { Task { await admin.close() } }
                try await admin.execute("DROP DATABASE IF EXISTS \(quoteIdentifier(db)) WITH (FORCE)")
                logger.notice("dropped the database this restore created", metadata: ["database": "\(db)"])
            } catch {
                logger.warning("cannot drop the database this restore created", metadata: ["database": "\(db)", "error": "\(error)"])
            }
        }.value
    }

    /// Streams the dump object (or `object`, e.g. the globals) through
    /// decryption and decompression into `sink`. Its encrypted stream must name
    /// this backup (job, id, and which object) in its header: objects of another
    /// backup copied over its names are refused before any byte reaches `sink`
    /// (version 1 streams name none, and are read only for format 1 manifests).
    func decrypt(_ object: BackupObject? = nil, into sink: @escaping @Sendable (ByteChannel) async throws -> Void) async throws -> Int64 {
        let object = object ?? manifest.dump
        let key = object.key
        let store = self.store
        let decryptor = DecryptingReader(keyring: keyring, expectedContext: manifest.streamContext(globals: object != manifest.dump),
                                         requireContext: manifest.requiresStreamContext)
        let decompressor = try ZstdDecompressor()
        // Backups written before issue 15 recorded the plaintext's SHA-256:
        // check it when it is there. Newer ones rely on the authenticated
        // stream and zstd's frame checksum (docs/FORMAT.md §9): size only.
        let plainHash = HashingCounter(hashing: object.plaintextSHA256 != nil)
        let cipherHash = HashingCounter()
        // The four stages run on one thread: together they use a fraction
        // of a core, and each decrypted segment goes straight into zstd
        // (its buffer reused at once) instead of through a channel and a
        // thread hand-off.
        let progress = self.progress
        do {
            try await Pipeline.run(source: { out in
                let dl = try await store.get(key: key, range: nil)
                do {
                    var read: Int64 = 0
                    while let chunk = try await dl.body.receive() {
                        try await out.send(chunk)
                        read += Int64(chunk.count)
                        progress?(read)
                    }
                } catch {
                    dl.body.cancel(error)
                    throw error
                }
            }, stages: [ChainedTransform([cipherHash, decryptor, decompressor, plainHash])], sink: sink)
        } catch let e as CairnError where e.streamFormatError == .contextMismatch {
            throw CairnError(e.code, "backup \(manifest.id): stored object \(key): \(e.message)", cause: e.cause)
        }
        guard cipherHash.byteCount == object.ciphertextSize, cipherHash.sha256?.hexString == object.ciphertextSHA256 else {
            throw CairnError(.integrity, "backup \(manifest.id): stored object \(key) does not match its manifest (size or SHA-256)")
        }
        guard plainHash.byteCount == object.plaintextSize,
              object.plaintextSHA256 == nil || plainHash.sha256?.hexString == object.plaintextSHA256 else {
            throw CairnError(.integrity, "backup \(manifest.id): restored \(object == manifest.dump ? "dump" : object.key) does not match the manifest's size or SHA-256")
        }
        return plainHash.byteCount
    }

    func createDatabase(_ conninfo: String) async throws {
        let info = try ConnInfo(conninfo)
        guard let db = info["dbname"], !db.isEmpty else {
            throw CairnError(.usage, "--create needs a database name in the target connection string")
        }
        let admin = try await PGConnection.connect(info.with("dbname", "postgres").keywordString)
        do {
            try await admin.execute("CREATE DATABASE \(quoteIdentifier(db))")
        } catch {
            await admin.close()
            throw CairnError.wrap(error, .database, "cannot create database \(db)")
        }
        await admin.close()
    }
}
