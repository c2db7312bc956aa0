import Core
import Foundation

/// A regular file found under the source directory.
public struct WalkedFile: Sendable, Equatable {
    /// Path relative to the source, `/`-separated, exactly as on disk (no Unicode normalisation).
    public var path: String
    /// The file to read: the path itself, or for a symlink inside the source, its resolved target.
    public var readPath: String
    public var size: Int64
    public var mtimeNs: Int64
    /// For a symlink: its target, relative to the source.
    public var symlinkTo: String?
}

/// Something under the source that is not uploaded, and why.
public struct WalkIssue: Sendable, Equatable {
    public enum Kind: String, Sendable { case skipped, failed }
    /// The relative path; bytes that are not valid UTF-8 are shown as `\xNN`.
    public var path: String
    public var kind: Kind
    public var reason: String
}

public struct WalkResult: Sendable {
    /// In lexical (UTF-8 byte) order of their paths.
    public var files: [WalkedFile]
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

    /// Blocking: call through `runBlocking`.
    public func walk(cancel: CancellationFlag? = nil) throws -> WalkResult {
        var st = stat()
        guard stat(root, &st) == 0 else {
            throw CairnError(errno == ENOENT ? .notFound : .io, "migration source \(root): \(errnoString())")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw CairnError(.config, "migration source \(root) is not a directory") }
        guard let realRootC = realpath(root, nil) else { throw CairnError(.io, "migration source \(root): \(errnoString())") }
        let realRoot = String(cString: realRootC)
        free(realRootC)

        var files: [(bytes: [UInt8], file: WalkedFile)] = []
        var issues: [WalkIssue] = []
        var excludedFiles = 0, excludedDirectories = 0
        let rootBytes = Array(root.utf8)
        // depth-first over directories; relative paths as raw bytes
        var stack: [[UInt8]] = [[]]
        while let rel = stack.popLast() {
            if cancel?.isSet == true { throw CancellationError() }
            let dirPath = rel.isEmpty ? rootBytes : rootBytes + [UInt8(ascii: "/")] + rel
            let names: [[UInt8]]
            switch Self.readDirectory(dirPath) {
            case .success(let n): names = n
            case .failure(let err):
                issues.append(WalkIssue(path: rel.isEmpty ? "." : Self.display(rel) + "/", kind: .failed,
                                        reason: "cannot read directory: \(errnoString(err.code))"))
                continue
            }
            var subdirs: [[UInt8]] = []
            for name in names {
                let relPath = rel.isEmpty ? name : rel + [UInt8(ascii: "/")] + name
                let abs = rootBytes + [UInt8(ascii: "/")] + relPath
                var ls = stat()
                let rc = abs.withCString { lstat($0, &ls) }
                if rc != 0 {
                    let e = errno
                    if e == ENOENT { continue }   // vanished while walking
                    issues.append(WalkIssue(path: Self.display(relPath), kind: .failed, reason: "cannot stat: \(errnoString(e))"))
                    continue
                }
                let type = ls.st_mode & S_IFMT
                if !exclude.isEmpty, exclude.exclusion(of: String(decoding: relPath, as: UTF8.self), isDirectory: type == S_IFDIR) != nil {
                    if type == S_IFDIR { excludedDirectories += 1 } else { excludedFiles += 1 }
                    continue
                }
                if type == S_IFDIR { subdirs.append(relPath); continue }
                guard let relString = String(validating: relPath, as: UTF8.self) else {
                    issues.append(WalkIssue(path: Self.display(relPath), kind: .failed,
                                            reason: "name is not valid UTF-8, so it cannot be an object key; rename it"))
                    continue
                }
                switch type {
                case S_IFREG:
                    if let issue = keyIssue(relString) { issues.append(issue); continue }
                    files.append((relPath, WalkedFile(path: relString, readPath: String(decoding: abs, as: UTF8.self),
                                                      size: Int64(ls.st_size), mtimeNs: Self.mtimeNs(ls))))
                case S_IFLNK:
                    switch resolveLink(String(decoding: abs, as: UTF8.self), realRoot: realRoot) {
                    case .file(let target, let tst):
                        if let issue = keyIssue(relString) { issues.append(issue); continue }
                        files.append((relPath, WalkedFile(path: relString, readPath: target, size: Int64(tst.st_size),
                                                          mtimeNs: Self.mtimeNs(tst),
                                                          symlinkTo: String(target.dropFirst(realRoot.count + 1)))))
                    case .skip(let why):
                        issues.append(WalkIssue(path: relString, kind: .skipped, reason: why))
                    }
                case S_IFSOCK: issues.append(WalkIssue(path: relString, kind: .skipped, reason: "socket (not a regular file)"))
                case S_IFIFO: issues.append(WalkIssue(path: relString, kind: .skipped, reason: "FIFO (not a regular file)"))
                case S_IFCHR: issues.append(WalkIssue(path: relString, kind: .skipped, reason: "character device (not a regular file)"))
                case S_IFBLK: issues.append(WalkIssue(path: relString, kind: .skipped, reason: "block device (not a regular file)"))
                default: issues.append(WalkIssue(path: relString, kind: .skipped, reason: "not a regular file"))
                }
            }
            // reversed so that the stack pops them in order
            stack.append(contentsOf: subdirs.reversed())
        }
        files.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        return WalkResult(files: files.map(\.file), issues: issues,
                          excludedFiles: excludedFiles, excludedDirectories: excludedDirectories)
    }

    private func keyIssue(_ rel: String) -> WalkIssue? {
        let n = keyPrefixBytes + rel.utf8.count
        guard n > Self.maxKeyBytes else { return nil }
        return WalkIssue(path: rel, kind: .failed, reason: "object key would be \(n) bytes; S3 allows at most \(Self.maxKeyBytes)")
    }

    enum LinkResolution { case file(String, stat), skip(String) }

    private func resolveLink(_ abs: String, realRoot: String) -> LinkResolution {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(abs, &buf, buf.count - 1)
        let target = n >= 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        guard let rc = realpath(abs, nil) else {
            return .skip("symlink to \(target) cannot be resolved (\(errnoString())): not uploaded")
        }
        let resolved = String(cString: rc)
        free(rc)
        guard resolved.hasPrefix(realRoot + "/") else {
            return .skip("symlink to \(target) points outside the source: not followed")
        }
        var st = stat()
        guard stat(resolved, &st) == 0 else { return .skip("symlink to \(target): \(errnoString())") }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .file(resolved, st)
        case S_IFDIR: return .skip("symlink to directory \(target): directories are not followed")
        default: return .skip("symlink to \(target), which is not a regular file")
        }
    }

    static func mtimeNs(_ st: stat) -> Int64 { Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) }

    /// A path for messages: valid UTF-8 as is, other bytes as `\xNN`.
    static func display(_ bytes: [UInt8]) -> String {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        var out = ""
        var i = 0
        while i < bytes.count {
            // take the longest valid UTF-8 scalar at i, else escape one byte
            var taken = false
            for len in stride(from: min(4, bytes.count - i), through: 1, by: -1) {
                if let s = String(validating: bytes[i..<i + len], as: UTF8.self), s.unicodeScalars.count == 1 {
                    out += s; i += len; taken = true; break
                }
            }
            if !taken { out += String(format: "\\x%02X", bytes[i]); i += 1 }
        }
        return out
    }

    static func readDirectory(_ path: [UInt8]) -> Result<[[UInt8]], Errno> {
        guard let dir = path.withCString({ opendir($0) }) else { return .failure(Errno(code: errno)) }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        errno = 0
        while let ent = readdir(dir) {
            let name: [UInt8] = withUnsafePointer(to: &ent.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { c in Array(UnsafeBufferPointer(start: c, count: strlen(UnsafeRawPointer(c).assumingMemoryBound(to: CChar.self)))) }
            }
            if name == [46] || name == [46, 46] { continue }
            names.append(name)
        }
        if errno != 0 { return .failure(Errno(code: errno)) }
        names.sort { $0.lexicographicallyPrecedes($1) }
        return .success(names)
    }

    struct Errno: Error { var code: Int32 }
}

fileprivate extension Array where Element == UInt8 {
    func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (self + [0]).withUnsafeBufferPointer { p in
            try p.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}
