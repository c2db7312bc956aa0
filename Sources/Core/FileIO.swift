import Foundation

/// Reads a file (or standard input for "-") into a ByteChannel on a dedicated thread.
public struct FileReader: Sendable {
    public let path: String
    public let chunkSize: Int
    public init(path: String, chunkSize: Int = 1 << 20) { self.path = path; self.chunkSize = chunkSize }

    public func pump(into channel: ByteChannel) async throws {
        let path = self.path, chunkSize = self.chunkSize
        try await runBlockingCancellable { flag in
            let fd: Int32 = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let e = CairnError(.io, "cannot open \(path): \(errnoString())")
                channel.finish(throwing: e)
                throw e
            }
            defer { if fd != 0 { close(fd) } }
            var buf = [UInt8](repeating: 0, count: chunkSize)
            while !flag.isSet {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, chunkSize) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 {
                    let e = CairnError(.io, "cannot read \(path): \(errnoString())")
                    channel.finish(throwing: e)
                    throw e
                }
                if n == 0 { channel.finish(); return }
                try channel.sendBlocking(Data(buf[0..<n]))
            }
            channel.finish(throwing: CancellationError())
            throw CancellationError()
        }
    }
}

/// Writes a ByteChannel to a file (atomically: temp file + fsync + rename) or standard output.
public struct FileWriter: Sendable {
    public let path: String
    public let mode: mode_t
    public init(path: String, mode: mode_t = 0o600) { self.path = path; self.mode = mode }

    public func drain(_ channel: ByteChannel) async throws {
        let path = self.path, mode = self.mode
        try await runBlockingCancellable { flag in
            if path == "-" {
                while let d = try channel.receiveBlocking() { try writeAll(1, d, path: "standard output") }
                return
            }
            let dir = (path as NSString).deletingLastPathComponent
            let tmp = (dir.isEmpty ? "." : dir) + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            guard fd >= 0 else {
                channel.cancel(CairnError(.io, "cannot create \(path)"))
                throw CairnError(.io, "cannot create \(tmp): \(errnoString())")
            }
            do {
                while let d = try channel.receiveBlocking() {
                    if flag.isSet { throw CancellationError() }
                    try writeAll(fd, d, path: path)
                }
                guard fsync(fd) == 0 else { throw CairnError(.io, "cannot sync \(path): \(errnoString())") }
                close(fd)
                guard rename(tmp, path) == 0 else { throw CairnError(.io, "cannot rename to \(path): \(errnoString())") }
            } catch {
                close(fd)
                unlink(tmp)
                channel.cancel(error)
                throw error
            }
        }
    }
}

/// The whole text of a file the kernel generates (`/proc/self/maps`,
/// `/proc/self/smaps`): read(2) until end of file. Such files report size 0
/// and hand out a page per read, so a single read (what
/// `String(contentsOfFile:)` does with size 0) sees only the first ~4 KiB.
/// Blocking.
public func readKernelFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return nil }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return String(decoding: out, as: UTF8.self)
}

/// write(2) until every byte is written; the errno of a failure (0 when all is written).
public func writeFully(_ fd: Int32, _ data: Data) -> Int32 {
    data.withUnsafeBytes { (p: UnsafeRawBufferPointer) -> Int32 in
        var off = 0
        while off < p.count {
            let n = write(fd, p.baseAddress! + off, p.count - off)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return n < 0 ? errno : EIO }
            off += n
        }
        return 0
    }
}

/// write(2) until every byte is written.
public func writeAll(_ fd: Int32, _ data: Data, path: String) throws {
    try data.withUnsafeBytes { (p: UnsafeRawBufferPointer) in
        var off = 0
        while off < p.count {
            let n = write(fd, p.baseAddress! + off, p.count - off)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CairnError(.io, "cannot write \(path): \(errnoString())") }
            off += n
        }
    }
}

/// An open file descriptor, closed when the last reference goes. Reads are
/// positional (`pread`), so several readers (the parts of one multipart
/// upload) can share it.
public final class OpenFile: Sendable {
    public let fd: Int32
    public init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    public func stat() throws -> FileStatus {
        var st = FileStatus()
        guard fstat(fd, &st) == 0 else { throw SyscallError(errno) }
        return st
    }

    /// Reads up to `count` bytes at `offset` (retrying EINTR); 0 at the end.
    public func read(into p: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws -> Int {
        while true {
            let n = pread(fd, p, count, off_t(offset))
            if n >= 0 { return n }
            if errno != EINTR { throw SyscallError(errno) }
        }
    }
}

/// `struct stat` (a name the method `OpenFile.stat()` hides).
public typealias FileStatus = stat

/// A failed system call's errno, kept as data.
public struct SyscallError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
    public var description: String { errnoString(code) }
}

/// Opening files beneath a directory descriptor without ever following a
/// symlink: each component is opened relative to its parent's descriptor
/// with `O_NOFOLLOW` (directories also with `O_DIRECTORY`), so a component
/// replaced by a symlink fails (`ELOOP`/`ENOTDIR`) instead of leading out.
public enum Beneath {
    /// Opens directory `components` under `dirFD` (empty: a new descriptor of `dirFD` itself).
    public static func openDirectory(_ dirFD: Int32, _ components: [[UInt8]]) throws -> OpenFile {
        var current = try openAt(dirFD, [UInt8(ascii: ".")], O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        for c in components {
            current = try openAt(current.fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        return current
    }

    /// Opens the directory `name` (one component) in `dirFD`, not following a
    /// symlink: one `openat` (`openDirectory` also reopens `dirFD` itself).
    public static func openSubdirectory(_ dirFD: Int32, _ name: [UInt8]) throws -> OpenFile {
        try openAt(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    }

    /// Opens the regular file at `components` (a relative path, split at `/`)
    /// under `dirFD` for reading. Throws `SyscallError` (ELOOP: a component is a symlink).
    public static func openFile(_ dirFD: Int32, _ components: [[UInt8]]) throws -> OpenFile {
        guard let last = components.last else { throw SyscallError(EINVAL) }
        let parent = try openDirectory(dirFD, Array(components.dropLast()))
        return try openAt(parent.fd, last, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
    }

    /// `/`-separated relative path → components (empty ones and "." dropped).
    public static func components<C: Collection>(_ path: C) -> [[UInt8]] where C.Element == UInt8 {
        path.split(separator: UInt8(ascii: "/")).map(Array.init).filter { $0 != [UInt8(ascii: ".")] }
    }

    static func openAt(_ dirFD: Int32, _ name: [UInt8], _ flags: Int32) throws -> OpenFile {
        if name.isEmpty || name == [46, 46] || name.contains(UInt8(ascii: "/")) { throw SyscallError(EINVAL) }
        let fd = (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { openat(dirFD, $0.baseAddress!, flags) }
        }
        guard fd >= 0 else { throw SyscallError(errno) }
        return OpenFile(fd: fd)
    }
}
