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
