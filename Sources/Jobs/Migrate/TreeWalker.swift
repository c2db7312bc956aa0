import Core
import Foundation

/// A regular file found under the source directory.
public struct WalkedFile: Sendable, Equatable {
    /// Path relative to the source, `/`-separated, exactly as on disk (no Unicode normalisation).
    public var path: String
    public var size: Int64
    public var mtimeNs: Int64
    /// The identity the walk saw; the file opened later must be this one.
    public var device: UInt64
    public var inode: UInt64
    /// For a symlink: its target, relative to the source.
    public var symlinkTo: String?

    public init(path: String, size: Int64, mtimeNs: Int64, device: UInt64, inode: UInt64, symlinkTo: String? = nil) {
        self.path = path; self.size = size; self.mtimeNs = mtimeNs
        self.device = device; self.inode = inode; self.symlinkTo = symlinkTo
    }

    /// The file to read, relative to the source root: the path itself, or for
    /// a symlink inside the source, its resolved target. Opened component by
    /// component from the root's descriptor, never following a symlink.
    /// Computed when a file is opened (most files of a re-run never are).
    public var readComponents: [[UInt8]] { Beneath.components((symlinkTo ?? path).utf8) }
}

/// Something under the source that is not uploaded, and why.
public struct WalkIssue: Sendable, Equatable {
    public enum Kind: String, Sendable { case skipped, failed }
    /// The relative path, escaped for display (`PathText`).
    public var path: String
    public var kind: Kind
    public var reason: String
}

public struct WalkResult: Sendable {
    /// In lexical (UTF-8 byte) order of their paths.
    public var files: [WalkedFile]
    /// The source root as opened by the walk: every file is opened beneath it.
    public var root: OpenFile
    public var issues: [WalkIssue]
    /// Files and directories left out by the exclude patterns (a directory
    /// counts once; nothing under it is looked at).
    public var excludedFiles = 0
    public var excludedDirectories = 0
}

/// Walks a source tree deterministically (entries in byte order) without
/// following symlinked directories.
///
/// - Regular files are listed with size and mtime (nanoseconds).
/// - A symlink to a regular file inside the source is listed under its own
///   path with the target's contents (so URLs of both names work); a symlink
///   to a directory, a dangling one, or one that leaves the source is skipped
///   and reported.
/// - Sockets, FIFOs and devices are skipped and reported.
/// - An unreadable directory, a name that is not valid UTF-8, or a path whose
///   object key would be longer than S3's 1,024 bytes is a failure, reported
///   with its reason; the walk goes on.
public struct TreeWalker: Sendable {
    public var root: String
    /// UTF-8 bytes the key prefix adds to every path (for the 1,024-byte limit).
    public var keyPrefixBytes: Int
    /// Paths left out entirely: not uploaded, not reported one by one.
    public var exclude: PathFilter
    public static let maxKeyBytes = 1024

    public init(root: String, keyPrefixBytes: Int = 0, exclude: PathFilter = PathFilter()) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        self.keyPrefixBytes = keyPrefixBytes
        self.exclude = exclude
    }

    /// Blocking: call through `runBlocking`. The whole tree at once (tests,
    /// small trees); a migration reads it in batches with `start()`.
    public func walk(cancel: CancellationFlag? = nil) throws -> WalkResult {
        let cursor = try start()
        var files: [WalkedFile] = []
        while true {
            let batch = try cursor.next(max: 4096, cancel: cancel)
            if batch.isEmpty { break }
            files.append(contentsOf: batch)
        }
        return WalkResult(files: files, root: cursor.root, issues: cursor.issues,
                          excludedFiles: cursor.excludedFiles, excludedDirectories: cursor.excludedDirectories)
    }

    /// Blocking: opens the root and returns a cursor that yields the files in
    /// lexical (UTF-8 byte) order of their paths, a batch at a time.
    ///
    /// The root is opened once (a symlink as the root itself is followed, as
    /// configured); below it every directory is opened relative to its
    /// parent's descriptor with `O_NOFOLLOW | O_DIRECTORY` and every entry
    /// that `readdir` does not say is a directory is looked at with
    /// `fstatat(AT_SYMLINK_NOFOLLOW)`, so nothing is reached through a
    /// symlink. At most the descriptors of one directory path are open.
    public func start() throws -> TreeCursor {
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else {
            let e = errno
            if e == ENOTDIR { throw CairnError(.config, "migration source \(PathText.escape(root)) is not a directory") }
            throw CairnError(e == ENOENT ? .notFound : .io, "migration source \(PathText.escape(root)): \(errnoString(e))", cause: SyscallError(e))
        }
        let rootFile = OpenFile(fd: rootFD)
        guard let realRootC = realpath(root, nil) else { throw CairnError(.io, "migration source \(PathText.escape(root)): \(errnoString())", cause: SyscallError(errno)) }
        let realRoot = String(cString: realRootC)
        free(realRootC)
        return TreeCursor(walker: self, root: rootFile, realRoot: realRoot)
    }

    /// The entries of one directory, looked at and sorted so that a
    /// depth-first walk yields full paths in byte order: a directory sorts as
    /// `name/`, so its whole subtree comes where its paths belong
    /// (`a.txt` < `a/b` < `a0`). Files are listed with their `WalkedFile`;
    /// problems go to `issues`. The directory is `name` in the open directory
    /// `parentFD` (one `openat`, no symlink followed), or for the root
    /// (`name` nil) `parentFD` itself; it is returned open, for its
    /// subdirectories to be opened from (nil when it could not be read).
    func readEntries(_ rel: [UInt8], name dirName: [UInt8]?, parentFD: Int32, realRoot: String, into cursor: TreeCursor) -> (DirectoryStream?, [TreeCursor.Entry]) {
        let dir: DirectoryStream
        let names: [(name: [UInt8], type: UInt8)]
        do {
            dir = try DirectoryStream(parentFD, dirName)
            names = try dir.entries()
        } catch let e as SyscallError {
            if e.code == ENOENT && !rel.isEmpty { return (nil, []) }   // vanished while walking
            let why = e.code == ELOOP || e.code == ENOTDIR
                ? "replaced by a symlink or a file during the walk: not followed" : "cannot read directory: \(e)"
            cursor.issues.append(WalkIssue(path: rel.isEmpty ? "." : PathText.escape(rel) + "/", kind: .failed, reason: why))
            return (nil, [])
        } catch {
            cursor.issues.append(WalkIssue(path: rel.isEmpty ? "." : PathText.escape(rel) + "/", kind: .failed, reason: "cannot read directory: \(error)"))
            return (nil, [])
        }
        var entries: [TreeCursor.Entry] = []
        for (name, dType) in names {
            let relPath = rel.isEmpty ? name : rel + [UInt8(ascii: "/")] + name
            var ls = stat()
            let type: mode_t
            if dType == UInt8(DT_DIR) {
                // A directory needs no stat: it is opened with O_DIRECTORY | O_NOFOLLOW,
                // which fails if it was replaced by anything else since.
                type = S_IFDIR
            } else {
                let rc = (name + [0]).withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) { fstatat(dir.fd, $0.baseAddress!, &ls, AT_SYMLINK_NOFOLLOW) }
                }
                if rc != 0 {
                    let e = errno
                    if e == ENOENT { continue }   // vanished while walking
                    cursor.issues.append(WalkIssue(path: PathText.escape(relPath), kind: .failed, reason: "cannot stat: \(errnoString(e))"))
                    continue
                }
                type = ls.st_mode & S_IFMT
            }
            if !exclude.isEmpty, exclude.exclusion(of: String(decoding: relPath, as: UTF8.self), isDirectory: type == S_IFDIR) != nil {
                if type == S_IFDIR { cursor.excludedDirectories += 1 } else { cursor.excludedFiles += 1 }
                continue
            }
            if type == S_IFDIR { entries.append(TreeCursor.Entry(sortKey: name + [UInt8(ascii: "/")], directory: relPath, name: name)); continue }
            guard let relString = String(validating: relPath, as: UTF8.self) else {
                cursor.issues.append(WalkIssue(path: PathText.escape(relPath), kind: .failed,
                                               reason: "name is not valid UTF-8, so it cannot be an object key; rename it"))
                continue
            }
            var shown: String { PathText.escape(relPath) }   // only for a problem
            switch type {
            case S_IFREG:
                if let issue = keyIssue(relString) { cursor.issues.append(issue); continue }
                entries.append(TreeCursor.Entry(sortKey: name, file: WalkedFile(
                    path: relString, size: Int64(ls.st_size), mtimeNs: Self.mtimeNs(ls),
                    device: UInt64(ls.st_dev), inode: UInt64(ls.st_ino))))
            case S_IFLNK:
                switch resolveLink(dirFD: dir.fd, name: name, abs: root + "/" + relString, realRoot: realRoot) {
                case .file(let target, let tst):
                    if let issue = keyIssue(relString) { cursor.issues.append(issue); continue }
                    entries.append(TreeCursor.Entry(sortKey: name, file: WalkedFile(
                        path: relString, size: Int64(tst.st_size), mtimeNs: Self.mtimeNs(tst),
                        device: UInt64(tst.st_dev), inode: UInt64(tst.st_ino), symlinkTo: target)))
                case .skip(let why):
                    cursor.issues.append(WalkIssue(path: shown, kind: .skipped, reason: why))
                }
            case S_IFSOCK: cursor.issues.append(WalkIssue(path: shown, kind: .skipped, reason: "socket (not a regular file)"))
            case S_IFIFO: cursor.issues.append(WalkIssue(path: shown, kind: .skipped, reason: "FIFO (not a regular file)"))
            case S_IFCHR: cursor.issues.append(WalkIssue(path: shown, kind: .skipped, reason: "character device (not a regular file)"))
            case S_IFBLK: cursor.issues.append(WalkIssue(path: shown, kind: .skipped, reason: "block device (not a regular file)"))
            default: cursor.issues.append(WalkIssue(path: shown, kind: .skipped, reason: "not a regular file"))
            }
        }
        entries.sort { $0.sortKey.lexicographicallyPrecedes($1.sortKey) }
        return (dir, entries)
    }

    private func keyIssue(_ rel: String) -> WalkIssue? {
        let n = keyPrefixBytes + rel.utf8.count
        guard n > Self.maxKeyBytes else { return nil }
        return WalkIssue(path: PathText.escape(rel), kind: .failed, reason: "object key would be \(n) bytes; S3 allows at most \(Self.maxKeyBytes)")
    }

    /// A symlink's target relative to the source (for a regular file inside it), or why it is skipped.
    enum LinkResolution { case file(String, stat), skip(String) }

    private func resolveLink(dirFD: Int32, name: [UInt8], abs: String, realRoot: String) -> LinkResolution {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { readlinkat(dirFD, $0.baseAddress!, &buf, buf.count - 1) }
        }
        let target = n >= 0 ? PathText.escape(buf[0..<n].map { UInt8(bitPattern: $0) }) : "?"
        // realpath only decides whether the target is inside the source; the
        // file is opened later beneath the root without following anything.
        guard let rc = realpath(abs, nil) else {
            return .skip("symlink to \(target) cannot be resolved (\(errnoString())): not uploaded")
        }
        let resolved = String(cString: rc)
        free(rc)
        guard resolved.hasPrefix(realRoot == "/" ? "/" : realRoot + "/"), resolved != realRoot else {
            return .skip("symlink to \(target) points outside the source: not followed")
        }
        var st = stat()
        guard stat(resolved, &st) == 0 else { return .skip("symlink to \(target): \(errnoString())") }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .file(String(resolved.dropFirst(realRoot == "/" ? 1 : realRoot.count + 1)), st)
        case S_IFDIR: return .skip("symlink to directory \(target): directories are not followed")
        default: return .skip("symlink to \(target), which is not a regular file")
        }
    }

    static func mtimeNs(_ st: stat) -> Int64 { Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) }

}

/// One open directory of a walk: its descriptor (for `openat`/`fstatat` of
/// its entries) and the directory stream that reads it, both closed with it.
/// Opening and reading costs `openat`, `fdopendir`'s `fstat` and `fcntl`,
/// the `getdents64` calls and one `close`: no `dup`, no second descriptor.
final class DirectoryStream {
    private let stream: OpaquePointer
    let fd: Int32

    /// Opens `name` (one component) in the open directory `parentFD` without
    /// following a symlink, or `parentFD` itself again (`name` nil). Throws `SyscallError`.
    init(_ parentFD: Int32, _ name: [UInt8]?) throws {
        let component = name ?? [UInt8(ascii: ".")]
        if component.isEmpty || component == [46, 46] || component.contains(UInt8(ascii: "/")) { throw SyscallError(EINVAL) }
        let fd = (component + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { openat(parentFD, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        }
        guard fd >= 0 else { throw SyscallError(errno) }
        guard let s = fdopendir(fd) else { let e = errno; close(fd); throw SyscallError(e) }
        stream = s
        self.fd = fd
    }

    deinit { closedir(stream) }   // closes `fd`

    /// The entries (not `.`/`..`) with their `d_type` (`DT_UNKNOWN` where the
    /// file system does not say), sorted by name bytes. Once per stream. Throws `SyscallError`.
    func entries() throws -> [(name: [UInt8], type: UInt8)] {
        var out: [(name: [UInt8], type: UInt8)] = []
        errno = 0
        while let ent = readdir(stream) {
            let name: [UInt8] = withUnsafePointer(to: &ent.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { c in Array(UnsafeBufferPointer(start: c, count: strlen(UnsafeRawPointer(c).assumingMemoryBound(to: CChar.self)))) }
            }
            if name == [46] || name == [46, 46] { continue }
            out.append((name, ent.pointee.d_type))
        }
        if errno != 0 { throw SyscallError(errno) }
        out.sort { $0.name.lexicographicallyPrecedes($1.name) }
        return out
    }
}

/// A walk in progress: yields the tree's files in byte order of their paths,
/// a batch at a time, holding only the entries of the directories on the
/// current path (memory does not grow with the number of files). Not
/// thread-safe: one caller at a time (the run calls it from blocking threads,
/// one call after another). Blocking.
public final class TreeCursor: @unchecked Sendable {
    struct Entry {
        var sortKey: [UInt8]
        var file: WalkedFile?
        var directory: [UInt8]?
        /// A directory's own name (its last component).
        var name: [UInt8] = []
        init(sortKey: [UInt8], file: WalkedFile) { self.sortKey = sortKey; self.file = file }
        init(sortKey: [UInt8], directory: [UInt8], name: [UInt8]) { self.sortKey = sortKey; self.directory = directory; self.name = name }
    }
    /// A directory on the current path: open (its subdirectories are opened
    /// from it with one `openat` each) and its entries not yet yielded.
    struct Frame {
        var dir: DirectoryStream?
        /// Reversed: the next is last.
        var entries: [Entry]
    }
    let walker: TreeWalker
    /// The source root as opened by the walk: every file is opened beneath it.
    public let root: OpenFile
    let realRoot: String
    /// Each directory on the current path, open, with its entries not yet yielded.
    private var frames: [Frame] = []
    private var started = false
    /// Problems found so far (complete once `next` returned an empty batch).
    public internal(set) var issues: [WalkIssue] = []
    public internal(set) var excludedFiles = 0
    public internal(set) var excludedDirectories = 0
    /// Files yielded so far.
    public private(set) var filesSeen = 0

    init(walker: TreeWalker, root: OpenFile, realRoot: String) {
        self.walker = walker
        self.root = root
        self.realRoot = realRoot
    }

    /// The next files (at most `max`, at least one unless the walk is over).
    public func next(max: Int, cancel: CancellationFlag? = nil) throws -> [WalkedFile] {
        if !started {
            started = true
            let (dir, entries) = walker.readEntries([], name: nil, parentFD: root.fd, realRoot: realRoot, into: self)
            frames = [Frame(dir: dir, entries: entries.reversed())]
        }
        var out: [WalkedFile] = []
        out.reserveCapacity(max)
        while out.count < max, !frames.isEmpty {
            guard let e = frames[frames.count - 1].entries.popLast() else { frames.removeLast(); continue }
            if let f = e.file { out.append(f); continue }
            if let d = e.directory, let parent = frames[frames.count - 1].dir {
                if cancel?.isSet == true { throw CancellationError() }
                let (dir, entries) = walker.readEntries(d, name: e.name, parentFD: parent.fd, realRoot: realRoot, into: self)
                frames.append(Frame(dir: dir, entries: entries.reversed()))
            }
        }
        filesSeen += out.count
        return out
    }
}

extension WalkedFile {
    /// Opens the file the walk saw, beneath the walk's root descriptor, never
    /// following a symlink, and checks that it is still that file (same device
    /// and inode, still regular). Blocking. Throws `FileProblem`.
    func open(beneath root: OpenFile) throws -> OpenFile {
        let file: OpenFile
        do {
            file = try Beneath.openFile(root.fd, readComponents)
        } catch let e as SyscallError {
            switch e.code {
            case ENOENT: throw FileProblem.vanished
            case ELOOP, ENOTDIR: throw FileProblem.replaced("it or a parent directory is now a symlink")
            case ENXIO, EWOULDBLOCK: throw FileProblem.replaced("no longer a regular file")
            default: throw FileProblem.unreadable(e.description)
            }
        }
        let st: stat
        do { st = try file.stat() } catch { throw FileProblem.unreadable("\(error)") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileProblem.replaced("no longer a regular file") }
        guard UInt64(st.st_dev) == device, UInt64(st.st_ino) == inode else {
            throw FileProblem.replaced("a different file is at its path now")
        }
        return file
    }
}
