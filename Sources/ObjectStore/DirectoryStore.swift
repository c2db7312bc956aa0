import Foundation
import Core
import Crypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An `ObjectStore` on a local directory (`file:///srv/backups`), with S3's
/// semantics as far as a file system allows:
///
/// - an object `KEY` is the file `ROOT/KEY`; its metadata (ETag, content type,
///   cache control, user metadata, object lock) lives in the sidecar
///   `ROOT/.cairn-meta/KEY.json`; multipart uploads in progress live in
///   `ROOT/.cairn-multipart/<uploadId>/`. Internal directories and temporary
///   files are never listed.
/// - every write is atomic: a temporary file `.<name>.tmp-<random>` in the
///   target directory, fsync, rename, fsync of the directory.
/// - ETags are S3's: `"<hex md5>"`, and `"<hex md5 of the part md5s>-<N>"`
///   for multipart objects.
/// - multipart parts must all have the same size except the last, which may
///   be smaller (Cloudflare R2's rule), and be at least `minimumPartSize`
///   (S3's 5 MiB by default).
/// - listings are in UTF-8 byte order, like S3.
///
/// Differences from S3 that cannot be avoided: a key cannot be both an object
/// and a "directory" of other keys (`a` and `a/b`); keys cannot have empty,
/// `.` or `..` segments, or a segment that looks like a temporary file
/// (`.NAME.tmp-…`); the top-level names `.cairn-*` are reserved. Such keys are
/// refused with a `.usage` error. Object lock settings are recorded, not
/// enforced. An object whose sidecar is missing or stale (the file was
/// replaced outside Cairn) is reported without ETag or metadata.
///
/// Every file operation runs on `BlockingPool`, never on the cooperative pool.
public final class DirectoryStore: ObjectStore {
    /// The absolute root directory, without a trailing slash (except `/`).
    public let root: String
    /// The smallest allowed part size except for the last part (S3: 5 MiB).
    public let minimumPartSize: Int64
    public var displayName: String { "file://" + root }

    static let chunkSize = 1 << 20
    static let channelCapacity = 4 << 20
    static let metaDirName = ".cairn-meta"
    static let multipartDirName = ".cairn-multipart"
    static let maxKeyBytes = 1024
    /// Leaves room for the `.json` sidecar suffix within NAME_MAX (255).
    static let maxSegmentBytes = 250

    /// Serialises the renames that publish an object and its sidecar, so that
    /// concurrent puts of one key leave a matching pair.
    private let commitLock = NSLock()

    /// `root` is an absolute directory path (a relative one is resolved
    /// against the current directory). It must exist when the store is used.
    public init(root: String, minimumPartSize: Int64 = 5 << 20) {
        var r = root
        if !Bytes.hasPrefix(r, "/") {
            r = FileManager.default.currentDirectoryPath + "/" + r
        }
        r = (r as NSString).standardizingPath
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r.isEmpty ? "/" : r
        self.minimumPartSize = minimumPartSize
    }

    /// Accepts `file:///abs/path` (or `file://localhost/abs/path`);
    /// percent-escapes in the path are decoded.
    public convenience init(url: String, minimumPartSize: Int64 = 5 << 20) throws {
        guard url.hasPrefix("file://") else {
            throw CairnError(.config, "\(url): not a file:// URL (expected file:///absolute/path)")
        }
        var rest = String(url.dropFirst("file://".count))
        if rest.hasPrefix("localhost/") { rest = String(rest.dropFirst("localhost".count)) }
        guard rest.hasPrefix("/") else {
            throw CairnError(.config, "\(url): a file URL needs an absolute path (file:///absolute/path)")
        }
        guard !rest.contains("?"), !rest.contains("#"), let path = rest.removingPercentEncoding, !path.contains("\0") else {
            throw CairnError(.config, "\(url): not a valid file URL path")
        }
        self.init(root: path, minimumPartSize: minimumPartSize)
    }

    // MARK: - paths and keys

    private var metaRoot: String { join(root, Self.metaDirName) }
    private var multipartRoot: String { join(root, Self.multipartDirName) }

    private func join(_ dir: String, _ rel: String) -> String {
        dir == "/" ? "/" + rel : dir + "/" + rel
    }

    func objectPath(_ key: String) -> String { join(root, key) }
    func metaPath(_ key: String) -> String { join(metaRoot, key + ".json") }
    private func uploadDir(_ id: String) -> String { join(multipartRoot, id) }

    static func isTempName(_ name: String) -> Bool {
        Bytes.hasPrefix(name, ".") && Bytes.contains(name, ".tmp-")
    }

    /// Refuses keys that cannot map safely to a path under the root.
    func validate(_ key: String) throws {
        func bad(_ why: String) -> CairnError {
            CairnError(.usage, "\(displayName): invalid key \(key.debugDescription): \(why)")
        }
        if key.isEmpty { throw bad("empty key") }
        if key.utf8.count > Self.maxKeyBytes { throw bad("longer than \(Self.maxKeyBytes) bytes") }
        if key.utf8.contains(0) { throw bad("contains a NUL byte") }
        // Byte-wise throughout: a combining mark after "/" joins it into one Swift
        // Character, so Character-based splitting would miss a "../" before it.
        if Bytes.hasPrefix(key, "/") { throw bad("starts with /") }
        let segments = Bytes.components(key)
        for (i, seg) in segments.enumerated() {
            if seg.isEmpty { throw bad(i == segments.count - 1 ? "ends with /" : "has an empty path segment (//)") }
            if seg.utf8.elementsEqual(".".utf8) || seg.utf8.elementsEqual("..".utf8) { throw bad("has a \(seg) path segment") }
            if seg.utf8.count > Self.maxSegmentBytes { throw bad("a path segment is longer than \(Self.maxSegmentBytes) bytes") }
            if Self.isTempName(seg) { throw bad("a path segment looks like a temporary file (.NAME.tmp-…)") }
        }
        if Bytes.hasPrefix(segments[0], ".cairn-") { throw bad("names beginning with .cairn- are reserved for the store") }
    }

    private static let uploadIdChars = Set("0123456789abcdef".utf8)
    private func validUploadId(_ id: String) -> Bool {
        id.utf8.count == 32 && id.utf8.allSatisfy { Self.uploadIdChars.contains($0) }
    }

    // MARK: - errors

    func ioError(_ verb: String, _ what: String, _ err: Int32) -> CairnError {
        if err == ENOENT, !FS.isDirectory(root) {
            return CairnError(.notFound, "\(displayName): the store's directory does not exist (cannot \(verb) \(what))")
        }
        return CairnError(.io, "\(displayName): cannot \(verb) \(what): \(errnoString(err))")
    }

    private func noSuchUpload(_ key: String, _ id: String) -> CairnError {
        CairnError(.notFound, "\(displayName): NoSuchUpload: no multipart upload \(id) for key \(key)")
    }

    // MARK: - sidecars

    struct Sidecar: Codable {
        var version = 1
        var etag: String
        var size: Int64
        var inode: UInt64
        var mtimeNanos: Int64
        var contentType: String?
        var cacheControl: String?
        var metadata: [String: String]
        var lockMode: String?
        var lockRetainUntil: Double?
    }

    struct UploadRecord: Codable {
        var key: String
        var initiated: Double
        var contentType: String?
        var cacheControl: String?
        var metadata: [String: String]
        var lockMode: String?
        var lockRetainUntil: Double?
    }

    struct PartRecord: Codable {
        var etag: String
        var size: Int64
        var inode: UInt64
        var mtimeNanos: Int64
    }

    private static func encode<T: Encodable>(_ v: T) -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        // Encoding these plain structs cannot fail.
        return (try? enc.encode(v)) ?? Data()
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ path: String) -> T? {
        guard let d = try? FS.readSmallFile(path) else { return nil }
        return try? JSONDecoder().decode(type, from: d)
    }

    private static func normalizedMetadata(_ m: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in m { out[k.lowercased()] = v }
        return out
    }

    /// The sidecar of an object, if it describes the file with this stat.
    private func sidecar(_ key: String, matching st: FS.Stat) -> Sidecar? {
        guard let s = Self.decode(Sidecar.self, metaPath(key)),
              s.inode == st.inode, s.size == st.size, s.mtimeNanos == st.mtimeNanos else { return nil }
        return s
    }

    private func info(_ key: String, _ st: FS.Stat, _ side: Sidecar?, full: Bool) -> ObjectInfo {
        ObjectInfo(key: key, size: st.size, etag: side?.etag, lastModified: st.mtime,
                   metadata: full ? (side?.metadata ?? [:]) : [:],
                   contentType: full ? side?.contentType : nil)
    }

    // MARK: - atomic writes

    /// Creates the directories of `path` below `base` (which must exist),
    /// fsyncing each parent whose entries changed.
    private func makeParents(of path: String, below base: String, key: String) throws {
        guard let rel = Bytes.relative(path, to: base) else { return }
        var current = base
        for comp in Bytes.components(rel).dropLast() where !comp.isEmpty {
            let next = join(current, comp)
            if mkdir(next, 0o755) == 0 {
                try? FS.fsyncDirectory(current)
            } else {
                let e = errno
                if e != EEXIST { throw ioError("create directory for", key, e) }
            }
            current = next
        }
    }

    /// Makes sure `base` (an internal directory directly under the root) exists.
    private func makeInternalDir(_ base: String, key: String) throws {
        if mkdir(base, 0o755) == 0 {
            try? FS.fsyncDirectory(root)
        } else {
            let e = errno
            if e != EEXIST { throw ioError("create \(Bytes.lastComponent(base)) for", key, e) }
        }
    }

    /// A temporary file next to `finalPath`, created exclusively; retries the
    /// parent creation if a concurrent delete removed an empty directory.
    private func createTemp(for finalPath: String, below base: String, key: String) throws -> (fd: Int32, path: String) {
        let dir = Bytes.parent(finalPath)
        var name = Bytes.lastComponent(finalPath)
        while name.utf8.count > 200 { name.removeLast() }
        for attempt in 0..<8 {
            try makeParents(of: finalPath, below: base, key: key)
            let suffix = ((try? SecureRandom.bytes(8)) ?? Data((0..<8).map { _ in UInt8.random(in: 0...255) })).hexString
            let tmp = join(dir, ".\(name).tmp-\(suffix)")
            let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 { return (fd, tmp) }
            let e = errno
            if (e == ENOENT || e == EEXIST) && attempt < 7 { continue }
            throw ioError("write", key, e)
        }
        throw ioError("write", key, ENOENT)
    }

    /// A temp file written by `fill`, fsynced and closed; the caller renames it.
    struct Written {
        var tempPath: String
        var stat: FS.Stat
    }

    private func writeTemp(for finalPath: String, below base: String, key: String,
                           _ fill: (Int32) throws -> Void) throws -> Written {
        let (fd, tmp) = try createTemp(for: finalPath, below: base, key: key)
        do {
            try fill(fd)
            if fsync(fd) != 0 { throw ioError("write", key, errno) }
            let st = try FS.fstat(fd).get(orThrow: { self.ioError("write", key, $0) })
            close(fd)
            return Written(tempPath: tmp, stat: st)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
    }

    private func writeTempData(_ data: Data, for finalPath: String, below base: String, key: String) throws -> Written {
        try writeTemp(for: finalPath, below: base, key: key) { fd in
            try data.withUnsafeBytes { buf in
                if let e = FS.writeAll(fd, buf) { throw self.ioError("write", key, e) }
            }
        }
    }

    /// Copies an upload body into `fd`, hashing it; returns the MD5.
    private func copyBody(_ body: UploadBody, to fd: Int32, key: String, flag: CancellationFlag) throws -> Data {
        let md5 = Hasher(.md5)
        func copyRange(_ src: Int32, _ path: String, _ offset: Int64, _ length: Int64) throws {
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
            defer { buf.deallocate() }
            var done: Int64 = 0
            while done < length {
                if flag.isSet { throw CairnError(.cancelled, "\(displayName): writing \(key): cancelled") }
                let want = Int(min(Int64(Self.chunkSize), length - done))
                let n = pread(src, buf.baseAddress, want, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioError("read source file \(path) for", key, errno)
                }
                if n == 0 {
                    throw CairnError(.io, "\(displayName): cannot write \(key): source file \(path) ended after \(done) of \(length) bytes")
                }
                let chunk = UnsafeRawBufferPointer(rebasing: buf[0..<n])
                md5.update(chunk)
                if let e = FS.writeAll(fd, chunk) { throw ioError("write", key, e) }
                done += Int64(n)
            }
        }
        switch body {
        case .data(let d):
            var off = 0
            while off < d.count {
                if flag.isSet { throw CairnError(.cancelled, "\(displayName): writing \(key): cancelled") }
                let n = min(Self.chunkSize, d.count - off)
                try d.withUnsafeBytes { all in
                    let buf = UnsafeRawBufferPointer(rebasing: all[off..<(off + n)])
                    md5.update(buf)
                    if let e = FS.writeAll(fd, buf) { throw self.ioError("write", key, e) }
                }
                off += n
            }
        case .file(let path, let offset, let length):
            let src = open(path, O_RDONLY | O_CLOEXEC)
            if src < 0 { throw ioError("read source file \(path) for", key, errno) }
            defer { close(src) }
            try copyRange(src, path, offset, length)
        case .descriptor(let file, let offset, let length):
            try copyRange(file.fd, "(open file)", offset, length)
        }
        return md5.finalize()
    }

    /// Publishes a written object and its sidecar, then syncs both directories.
    private func commit(key: String, data: Written, options: PutOptions, etag: String) throws -> ObjectInfo {
        let final = objectPath(key)
        let side = Sidecar(etag: etag, size: data.stat.size, inode: data.stat.inode, mtimeNanos: data.stat.mtimeNanos,
                           contentType: options.contentType, cacheControl: options.cacheControl,
                           metadata: Self.normalizedMetadata(options.metadata),
                           lockMode: options.objectLock?.mode.rawValue,
                           lockRetainUntil: options.objectLock?.retainUntil.timeIntervalSince1970)
        let metaFinal = metaPath(key)
        let meta: Written
        do {
            try makeInternalDir(metaRoot, key: key)
            meta = try writeTempData(Self.encode(side), for: metaFinal, below: metaRoot, key: key)
        } catch {
            unlink(data.tempPath)
            throw error
        }
        commitLock.lock()
        var failure: CairnError?
        if rename(data.tempPath, final) != 0 {
            let e = errno
            failure = ioError("write", key, e)
            if e == EISDIR || e == ENOTEMPTY || e == ENOTDIR {
                failure = CairnError(.io, "\(displayName): cannot write \(key): \(errnoString(e)) (a key cannot be both an object and a prefix of other objects in a directory store)")
            }
        } else if rename(meta.tempPath, metaFinal) != 0 {
            failure = ioError("write metadata of", key, errno)
        }
        commitLock.unlock()
        if let failure {
            unlink(data.tempPath)
            unlink(meta.tempPath)
            throw failure
        }
        do {
            try FS.fsyncDirectory(Bytes.parent(final))
            try FS.fsyncDirectory(Bytes.parent(metaFinal))
        } catch let e as FS.Errno {
            throw ioError("sync directory of", key, e.code)
        }
        return info(key, data.stat, side, full: true)
    }

    // MARK: - ObjectStore: objects

    public func put(key: String, body: UploadBody, options: PutOptions) async throws -> ObjectInfo {
        try validate(key)
        return try await runBlockingCancellable { flag in
            let final = self.objectPath(key)
            var md5 = Data()
            let written = try self.writeTemp(for: final, below: self.root, key: key) { fd in
                md5 = try self.copyBody(body, to: fd, key: key, flag: flag)
            }
            return try self.commit(key: key, data: written, options: options, etag: "\"\(md5.hexString)\"")
        }
    }

    public func get(key: String, range: ByteRange?) async throws -> ObjectDownload {
        try validate(key)
        if let range {
            if range.start < 0 || (range.end.map { $0 < range.start } ?? false) {
                throw CairnError(.usage, "\(displayName): invalid range \(range.headerValue) for \(key)")
            }
        }
        let opened: (fd: Int32, info: ObjectInfo, start: Int64, length: Int64) = try await runBlocking {
            let fd = open(self.objectPath(key), O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                let e = errno
                if e == ENOENT || e == ENOTDIR, FS.isDirectory(self.root) {
                    throw CairnError(.notFound, "\(self.displayName): NoSuchKey: \(key) does not exist")
                }
                throw self.ioError("read", key, e)
            }
            do {
                let st = try FS.fstat(fd).get(orThrow: { self.ioError("read", key, $0) })
                guard st.isRegular else {
                    throw CairnError(.notFound, "\(self.displayName): NoSuchKey: \(key) does not exist")
                }
                let info = self.info(key, st, self.sidecar(key, matching: st), full: true)
                var start: Int64 = 0
                var length = st.size
                if let range {
                    guard range.start < st.size else {
                        throw CairnError(.storage, "\(self.displayName): InvalidRange: \(range.headerValue) is outside \(key) (\(st.size) bytes)")
                    }
                    start = range.start
                    let end = min(range.end ?? (st.size - 1), st.size - 1)
                    length = end - start + 1
                    // info.size stays the whole object's size, as S3 reports it (Content-Range total)
                }
                return (fd, info, start, length)
            } catch {
                close(fd)
                throw error
            }
        }
        let channel = ByteChannel(capacity: Self.channelCapacity)
        let name = displayName
        BlockingPool.shared.submit {
            Self.produce(fd: opened.fd, start: opened.start, length: opened.length, into: channel, store: name, key: key)
        }
        return ObjectDownload(info: opened.info, body: channel)
    }

    /// Reads `length` bytes from `start` in 1 MiB chunks into the channel; runs on a pool thread.
    private static func produce(fd: Int32, start: Int64, length: Int64, into channel: ByteChannel, store: String, key: String) {
        defer { close(fd) }
        // Each chunk is read into a pooled buffer and sent without a copy; the
        // buffer comes back when the consumer releases it (no fresh 1 MiB
        // allocation, with its page faults, per chunk).
        let pool = BufferPool(bufferSize: chunkSize, maxFree: 4)
        var done: Int64 = 0
        while done < length {
            let want = Int(min(Int64(chunkSize), length - done))
            let buf = pool.take()
            let n = pread(fd, buf, want, off_t(start + done))
            if n <= 0 { pool.give(buf) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                channel.finish(throwing: CairnError(.io, "\(store): cannot read \(key): \(errnoString(e))", cause: ErrnoError(e)))
                return
            }
            if n == 0 {
                channel.finish(throwing: CairnError(.integrity, "\(store): \(key) was truncated while being read (\(done) of \(length) bytes)"))
                return
            }
            do {
                try channel.sendBlocking(pool.data(buf, count: n))
            } catch {
                return // the consumer cancelled
            }
            done += Int64(n)
        }
        channel.finish()
    }

    public func head(key: String) async throws -> ObjectInfo? {
        try validate(key)
        return try await runBlocking {
            switch FS.lstat(self.objectPath(key)) {
            case .success(let st):
                guard st.isRegular else { return nil }
                return self.info(key, st, self.sidecar(key, matching: st), full: true)
            case .failure(let e):
                if e.code == ENOENT || e.code == ENOTDIR {
                    if !FS.isDirectory(self.root) { throw self.ioError("read", key, e.code) }
                    return nil
                }
                throw self.ioError("read", key, e.code)
            }
        }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        try await runBlocking {
            guard FS.isDirectory(self.root) else {
                throw CairnError(.notFound, "\(self.displayName): the store's directory does not exist")
            }
            var out: [ObjectInfo] = []
            try self.walk(dir: self.root, keyPrefix: "", prefix: prefix, into: &out)
            out.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            return out
        }
    }

    private func walk(dir: String, keyPrefix: String, prefix: String, into out: inout [ObjectInfo]) throws {
        let names: [String]
        switch FS.listDirectory(dir) {
        case .success(let n): names = n
        case .failure(let e):
            if e.code == ENOENT && !keyPrefix.isEmpty { return } // removed concurrently
            throw ioError("list", keyPrefix.isEmpty ? "the root directory" : keyPrefix, e.code)
        }
        for name in names {
            if keyPrefix.isEmpty && Bytes.hasPrefix(name, ".cairn-") { continue }
            if Self.isTempName(name) { continue }
            let key = keyPrefix + name
            let path = join(dir, name)
            guard case .success(let st) = FS.lstat(path) else { continue } // vanished
            if st.isDirectory {
                let sub = key + "/"
                if sub.utf8.starts(with: prefix.utf8) || prefix.utf8.starts(with: sub.utf8) {
                    try walk(dir: path, keyPrefix: sub, prefix: prefix, into: &out)
                }
            } else if st.isRegular, key.utf8.starts(with: prefix.utf8) {
                out.append(info(key, st, sidecar(key, matching: st), full: false))
            }
        }
    }

    public func delete(keys: [String]) async throws {
        for key in keys { try validate(key) }
        try await runBlocking {
            for key in keys {
                let path = self.objectPath(key)
                if case .success(let st) = FS.lstat(path), !st.isDirectory {
                    if unlink(path) != 0, errno != ENOENT { throw self.ioError("delete", key, errno) }
                }
                let meta = self.metaPath(key)
                if unlink(meta) != 0, errno != ENOENT, errno != ENOTDIR, errno != EISDIR {
                    throw self.ioError("delete metadata of", key, errno)
                }
                self.removeEmptyParents(of: path, below: self.root)
                self.removeEmptyParents(of: meta, below: self.metaRoot)
            }
        }
    }

    private func removeEmptyParents(of path: String, below base: String) {
        var dir = Bytes.parent(path)
        while let rel = Bytes.relative(dir, to: base), !rel.isEmpty {
            if rmdir(dir) != 0 { return }
            dir = Bytes.parent(dir)
        }
    }

    // MARK: - ObjectStore: multipart

    public func createMultipartUpload(key: String, options: PutOptions) async throws -> String {
        try validate(key)
        return try await runBlocking {
            guard FS.isDirectory(self.root) else {
                throw CairnError(.notFound, "\(self.displayName): the store's directory does not exist")
            }
            let id = try SecureRandom.bytes(16).hexString
            try self.makeInternalDir(self.multipartRoot, key: key)
            let dir = self.uploadDir(id)
            if mkdir(dir, 0o755) != 0 { throw self.ioError("start a multipart upload for", key, errno) }
            let rec = UploadRecord(key: key, initiated: Date().timeIntervalSince1970,
                                   contentType: options.contentType, cacheControl: options.cacheControl,
                                   metadata: Self.normalizedMetadata(options.metadata),
                                   lockMode: options.objectLock?.mode.rawValue,
                                   lockRetainUntil: options.objectLock?.retainUntil.timeIntervalSince1970)
            let final = self.join(dir, "upload.json")
            let w = try self.writeTempData(Self.encode(rec), for: final, below: self.multipartRoot, key: key)
            if rename(w.tempPath, final) != 0 {
                let e = errno
                unlink(w.tempPath)
                throw self.ioError("start a multipart upload for", key, e)
            }
            try? FS.fsyncDirectory(dir)
            try? FS.fsyncDirectory(self.multipartRoot)
            return id
        }
    }

    /// The upload's record, or NoSuchUpload if it does not exist or belongs to another key.
    private func upload(_ key: String, _ id: String) throws -> UploadRecord {
        guard validUploadId(id), let rec = Self.decode(UploadRecord.self, join(uploadDir(id), "upload.json")),
              rec.key == key else { throw noSuchUpload(key, id) }
        return rec
    }

    private static func partName(_ n: Int) -> String {
        let s = String(n)
        return "part-" + String(repeating: "0", count: max(0, 5 - s.count)) + s
    }

    private func checkPartNumber(_ n: Int, _ key: String) throws {
        guard (1...10_000).contains(n) else {
            throw CairnError(.usage, "\(displayName): InvalidArgument: part number \(n) for \(key) is outside 1...10000")
        }
    }

    public func uploadPart(key: String, uploadId: String, partNumber: Int, body: UploadBody) async throws -> CompletedPart {
        try validate(key)
        try checkPartNumber(partNumber, key)
        return try await runBlockingCancellable { flag in
            _ = try self.upload(key, uploadId)
            let dir = self.uploadDir(uploadId)
            let final = self.join(dir, Self.partName(partNumber))
            var md5 = Data()
            let w = try self.writeTemp(for: final, below: dir, key: key) { fd in
                md5 = try self.copyBody(body, to: fd, key: key, flag: flag)
            }
            let etag = "\"\(md5.hexString)\""
            let rec = PartRecord(etag: etag, size: w.stat.size, inode: w.stat.inode, mtimeNanos: w.stat.mtimeNanos)
            let recFinal = final + ".json"
            let rw: Written
            do {
                rw = try self.writeTempData(Self.encode(rec), for: recFinal, below: dir, key: key)
            } catch {
                unlink(w.tempPath)
                throw error
            }
            self.commitLock.lock()
            var err: Int32 = 0
            if rename(w.tempPath, final) != 0 { err = errno } else if rename(rw.tempPath, recFinal) != 0 { err = errno }
            self.commitLock.unlock()
            if err != 0 {
                unlink(w.tempPath)
                unlink(rw.tempPath)
                if err == ENOENT { throw self.noSuchUpload(key, uploadId) }
                throw self.ioError("write part \(partNumber) of", key, err)
            }
            try? FS.fsyncDirectory(dir)
            return CompletedPart(partNumber: partNumber, etag: etag, size: w.stat.size)
        }
    }

    /// The parts of an upload whose records match their data files, by number.
    private func storedParts(_ id: String) throws -> [Int: (record: PartRecord, path: String)] {
        let dir = uploadDir(id)
        guard case .success(let names) = FS.listDirectory(dir) else { return [:] }
        var out: [Int: (PartRecord, String)] = [:]
        for name in names where Bytes.hasPrefix(name, "part-") {
            guard let n = Int(String(decoding: name.utf8.dropFirst(5), as: UTF8.self)), n >= 1 else { continue }
            let path = join(dir, name)
            guard case .success(let st) = FS.lstat(path), st.isRegular,
                  let rec = Self.decode(PartRecord.self, path + ".json"),
                  rec.inode == st.inode, rec.size == st.size, rec.mtimeNanos == st.mtimeNanos else { continue }
            out[n] = (rec, path)
        }
        return out
    }

    private static func unquoted(_ etag: String) -> String {
        var s = Substring(etag)
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        if s.hasPrefix("\"") { s = s.dropFirst() }
        if s.hasSuffix("\"") { s = s.dropLast() }
        return s.lowercased()
    }

    public func completeMultipartUpload(key: String, uploadId: String, parts: [CompletedPart]) async throws -> ObjectInfo {
        try validate(key)
        return try await runBlockingCancellable { flag in
            let rec = try self.upload(key, uploadId)
            let name = self.displayName
            guard !parts.isEmpty else {
                throw CairnError(.storage, "\(name): MalformedXML: completing \(key) (upload \(uploadId)) with no parts")
            }
            for (a, b) in zip(parts, parts.dropFirst()) where b.partNumber <= a.partNumber {
                throw CairnError(.storage, "\(name): InvalidPartOrder: parts of \(key) must be in ascending order (part \(b.partNumber) after \(a.partNumber))")
            }
            let stored = try self.storedParts(uploadId)
            var chosen: [(record: PartRecord, path: String)] = []
            for p in parts {
                guard let s = stored[p.partNumber] else {
                    throw CairnError(.storage, "\(name): InvalidPart: part \(p.partNumber) of \(key) (upload \(uploadId)) was not uploaded")
                }
                guard Self.unquoted(s.record.etag) == Self.unquoted(p.etag) else {
                    throw CairnError(.storage, "\(name): InvalidPart: part \(p.partNumber) of \(key) has ETag \(s.record.etag), not \(p.etag)")
                }
                chosen.append(s)
            }
            let partSize = chosen[0].record.size
            for (i, c) in chosen.enumerated() {
                let isLast = i == chosen.count - 1
                if !isLast && c.record.size < self.minimumPartSize {
                    throw CairnError(.storage, "\(name): EntityTooSmall: part \(parts[i].partNumber) of \(key) is \(c.record.size) bytes, below the minimum \(self.minimumPartSize)")
                }
                if !isLast && c.record.size != partSize {
                    throw CairnError(.storage, "\(name): InvalidPart: all parts of \(key) except the last must have the same size (part \(parts[i].partNumber) is \(c.record.size) bytes, part \(parts[0].partNumber) is \(partSize))")
                }
                if isLast && chosen.count > 1 && c.record.size > partSize {
                    throw CairnError(.storage, "\(name): InvalidPart: the last part of \(key) (\(c.record.size) bytes) is larger than the others (\(partSize) bytes)")
                }
            }
            // Concatenate. Each part was hashed (its ETag, an MD5) as it was
            // written; `storedParts` took only parts whose file still has the
            // inode, size and mtime recorded then, so they are not hashed
            // again here (that second MD5 pass was a fifth of the directory
            // store's CPU in a backup: docs/BENCHMARKS.md "Backup, issue 15").
            // A backup's content is checked end to end anyway: the manifest's
            // ciphertext SHA-256 and the authenticated stream (docs/FORMAT.md).
            let final = self.objectPath(key)
            let etagHasher = Hasher(.md5)
            let written = try self.writeTemp(for: final, below: self.root, key: key) { out in
                let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
                defer { buf.deallocate() }
                for (i, c) in chosen.enumerated() {
                    let src = open(c.path, O_RDONLY | O_CLOEXEC)
                    if src < 0 { throw self.ioError("read part \(parts[i].partNumber) of", key, errno) }
                    defer { close(src) }
                    var done: Int64 = 0
                    while true {
                        if flag.isSet { throw CairnError(.cancelled, "\(name): completing \(key): cancelled") }
                        let n = read(src, buf.baseAddress, Self.chunkSize)
                        if n < 0 {
                            if errno == EINTR { continue }
                            throw self.ioError("read part \(parts[i].partNumber) of", key, errno)
                        }
                        if n == 0 { break }
                        if let e = FS.writeAll(out, UnsafeRawBufferPointer(rebasing: buf[0..<n])) { throw self.ioError("write", key, e) }
                        done += Int64(n)
                    }
                    guard done == c.record.size, let digest = Data(hexString: Self.unquoted(c.record.etag)), digest.count == 16 else {
                        throw CairnError(.integrity, "\(name): part \(parts[i].partNumber) of \(key) (upload \(uploadId)) changed on disk since it was uploaded")
                    }
                    etagHasher.update(digest)
                }
            }
            let etag = "\"\(etagHasher.finalize().hexString)-\(chosen.count)\""
            let options = PutOptions(contentType: rec.contentType, cacheControl: rec.cacheControl, metadata: rec.metadata,
                                     objectLock: rec.lockMode.flatMap { ObjectLock.Mode(rawValue: $0) }.map {
                                         ObjectLock(mode: $0, retainUntil: Date(timeIntervalSince1970: rec.lockRetainUntil ?? 0))
                                     })
            let info = try self.commit(key: key, data: written, options: options, etag: etag)
            self.removeUploadDir(uploadId)
            return info
        }
    }

    private func removeUploadDir(_ id: String) {
        let dir = uploadDir(id)
        for _ in 0..<5 {
            if case .success(let names) = FS.listDirectory(dir) {
                // upload.json goes last so that a half-removed upload is invisible.
                for n in names where n != "upload.json" { unlink(join(dir, n)) }
                unlink(join(dir, "upload.json"))
            }
            if rmdir(dir) == 0 || errno == ENOENT { break }
        }
        try? FS.fsyncDirectory(multipartRoot)
    }

    public func abortMultipartUpload(key: String, uploadId: String) async throws {
        try validate(key)
        try await runBlocking {
            _ = try self.upload(key, uploadId)
            self.removeUploadDir(uploadId)
        }
    }

    public func listParts(key: String, uploadId: String) async throws -> [CompletedPart] {
        try validate(key)
        return try await runBlocking {
            _ = try self.upload(key, uploadId)
            return try self.storedParts(uploadId)
                .sorted { $0.key < $1.key }
                .map { CompletedPart(partNumber: $0.key, etag: $0.value.record.etag, size: $0.value.record.size) }
        }
    }

    public func listMultipartUploads(prefix: String) async throws -> [MultipartUploadInfo] {
        try await runBlocking {
            guard FS.isDirectory(self.root) else {
                throw CairnError(.notFound, "\(self.displayName): the store's directory does not exist")
            }
            let ids: [String]
            switch FS.listDirectory(self.multipartRoot) {
            case .success(let n): ids = n
            case .failure(let e):
                if e.code == ENOENT { return [] }
                throw self.ioError("list", "multipart uploads", e.code)
            }
            var out: [MultipartUploadInfo] = []
            for id in ids where self.validUploadId(id) {
                guard let rec = Self.decode(UploadRecord.self, self.join(self.uploadDir(id), "upload.json")),
                      rec.key.utf8.starts(with: prefix.utf8) else { continue }
                out.append(MultipartUploadInfo(key: rec.key, uploadId: id, initiated: Date(timeIntervalSince1970: rec.initiated)))
            }
            // S3 orders by key, then by initiation time.
            out.sort {
                if $0.key != $1.key { return $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                return ($0.initiated ?? .distantPast) < ($1.initiated ?? .distantPast)
            }
            return out
        }
    }
}

// MARK: - thin POSIX helpers

enum FS {
    struct Errno: Error { var code: Int32 }

    struct Stat {
        var inode: UInt64
        var size: Int64
        var mode: UInt32
        var mtimeNanos: Int64
        var isRegular: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFREG) }
        var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
        var mtime: Date { Date(timeIntervalSince1970: Double(mtimeNanos) / 1e9) }

        init(_ st: stat) {
            inode = UInt64(st.st_ino)
            size = Int64(st.st_size)
            mode = UInt32(st.st_mode)
            #if canImport(Darwin)
            mtimeNanos = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
            #else
            mtimeNanos = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            #endif
        }
    }

    static func lstat(_ path: String) -> Result<Stat, Errno> {
        var st = stat()
        #if canImport(Glibc)
        let rc = Glibc.lstat(path, &st)
        #elseif canImport(Musl)
        let rc = Musl.lstat(path, &st)
        #else
        let rc = Darwin.lstat(path, &st)
        #endif
        return rc == 0 ? .success(Stat(st)) : .failure(Errno(code: errno))
    }

    static func fstat(_ fd: Int32) -> Result<Stat, Errno> {
        var st = stat()
        #if canImport(Glibc)
        let rc = Glibc.fstat(fd, &st)
        #elseif canImport(Musl)
        let rc = Musl.fstat(fd, &st)
        #else
        let rc = Darwin.fstat(fd, &st)
        #endif
        return rc == 0 ? .success(Stat(st)) : .failure(Errno(code: errno))
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (UInt32(st.st_mode) & UInt32(S_IFMT)) == UInt32(S_IFDIR)
    }

    /// Writes the whole buffer; returns errno on failure.
    static func writeAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer) -> Int32? {
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            off += n
        }
        return nil
    }

    static func fsyncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw Errno(code: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw Errno(code: errno) }
    }

    static func readSmallFile(_ path: String) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw Errno(code: errno) }
        defer { close(fd) }
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw Errno(code: errno) }
            if n == 0 { return out }
            out.append(contentsOf: buf[0..<n])
            if out.count > 16 << 20 { throw Errno(code: EFBIG) }
        }
    }

    /// Entry names except `.` and `..`; names that are not valid UTF-8 are skipped
    /// (they cannot be keys).
    static func listDirectory(_ path: String) -> Result<[String], Errno> {
        guard let d = opendir(path) else { return .failure(Errno(code: errno)) }
        defer { closedir(d) }
        var names: [String] = []
        while let ent = readdir(d) {
            let name: String? = withUnsafePointer(to: &ent.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { c in
                    let len = strlen(UnsafeRawPointer(c).assumingMemoryBound(to: CChar.self))
                    return String(validating: UnsafeBufferPointer(start: c, count: len), as: UTF8.self)
                }
            }
            guard let name, name != ".", name != ".." else { continue }
            names.append(name)
        }
        return .success(names)
    }
}

extension Result where Failure == FS.Errno {
    func get(orThrow make: (Int32) -> CairnError) throws -> Success {
        switch self {
        case .success(let v): return v
        case .failure(let e): throw make(e.code)
        }
    }
}

/// Path and key operations on UTF-8 bytes, never on Swift `Character`s (grapheme
/// clusters can swallow a `/`, and `String ==` equates NFC and NFD forms).
enum Bytes {
    static let slash = UInt8(ascii: "/")

    static func hasPrefix(_ s: String, _ p: String) -> Bool { s.utf8.starts(with: p.utf8) }

    static func contains(_ s: String, _ needle: String) -> Bool {
        let h = Array(s.utf8), n = Array(needle.utf8)
        guard n.count <= h.count else { return false }
        for i in 0...(h.count - n.count) where h[i..<(i + n.count)].elementsEqual(n) { return true }
        return false
    }

    /// Split on "/" bytes, keeping empty components.
    static func components(_ s: String) -> [String] {
        s.utf8.split(separator: slash, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The path without its last component (`/` for a top-level path).
    static func parent(_ path: String) -> String {
        let b = Array(path.utf8)
        guard let i = b.lastIndex(of: slash) else { return "." }
        return i == 0 ? "/" : String(decoding: b[..<i], as: UTF8.self)
    }

    static func lastComponent(_ path: String) -> String {
        let b = Array(path.utf8)
        guard let i = b.lastIndex(of: slash) else { return path }
        return String(decoding: b[(i + 1)...], as: UTF8.self)
    }

    /// `path` relative to directory `base` ("" when equal), nil when outside it.
    static func relative(_ path: String, to base: String) -> String? {
        let p = Array(path.utf8), b = Array(base.utf8)
        if p == b { return "" }
        let dir = b == [slash] ? b : b + [slash]
        guard p.starts(with: dir) else { return nil }
        return String(decoding: p[dir.count...], as: UTF8.self)
    }
}
