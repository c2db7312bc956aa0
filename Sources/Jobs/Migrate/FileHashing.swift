import Core
import Crypto
import ObjectStore
import Foundation

/// A file's identity for change detection: size and modification time.
struct FileStamp: Sendable, Equatable {
    var size: Int64
    var mtimeNs: Int64
    init(size: Int64, mtimeNs: Int64) { self.size = size; self.mtimeNs = mtimeNs }
    init(_ st: stat) { size = Int64(st.st_size); mtimeNs = TreeWalker.mtimeNs(st) }

    /// Of the open file. Blocking.
    static func of(_ file: OpenFile) throws -> FileStamp {
        do { return FileStamp(try file.stat()) } catch let e as SyscallError { throw FileProblem.from(e.code) }
    }
}

/// A local-file failure, classified so the report can say precisely what happened.
enum FileProblem: Error, Sendable, Equatable {
    case vanished
    case unreadable(String)
    case changed(String)
    /// Not the file the walk saw any more (a symlink now, or another file):
    /// skipped for this run, never followed.
    case replaced(String)

    static func from(_ code: Int32) -> FileProblem {
        code == ENOENT ? .vanished : .unreadable(errnoString(code))
    }

    var reason: String {
        switch self {
        case .vanished: return "vanished during the run"
        case .unreadable(let why): return "cannot read: \(why)"
        case .changed(let what): return "changed while being uploaded (\(what)); not uploaded, retried by the next run"
        case .replaced(let what): return "changed during the run (\(what)); skipped, not followed"
        }
    }
}

/// The contents of a file and their digests.
struct HashedFile: Sendable {
    var stamp: FileStamp
    var sha256: String
    var md5: String?
    /// Base64 of the CRC32C (only for kept bytes: what the PUT of `data` sends).
    var crc32c: String?
    /// The bytes, for small files read into memory; nil when the upload reads the file itself.
    var data: Data?
}

enum FileHashing {
    /// Reads the open `file` from its start, hashing it (SHA-256, and MD5 when `md5`), keeping the
    /// bytes (and their CRC32C) when the file is at most `keepLimit` bytes. The size and mtime are taken from the open file before
    /// and after the read; a difference, or a byte count other than the size,
    /// throws `.changed`. Blocking.
    static func hash(_ file: OpenFile, md5 wantMD5: Bool, keepLimit: Int64, cancel: CancellationFlag?,
                     onBytes: ((Int) -> Void)? = nil) throws -> HashedFile {
        let st: stat
        do { st = try file.stat() } catch let e as SyscallError { throw FileProblem.from(e.code) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileProblem.replaced("no longer a regular file") }
        let before = FileStamp(st)
        let keep = before.size <= keepLimit
        let sha = Hasher(.sha256)
        let md5 = wantMD5 ? Hasher(.md5) : nil
        var kept = keep ? Data(capacity: Int(before.size)) : nil
        var crc = CRC32C()
        let bufSize = keep ? max(1, min(Int(before.size) + 1, 1 << 20)) : 1 << 20
        var buf = [UInt8](repeating: 0, count: bufSize)
        var total: Int64 = 0
        while true {
            if cancel?.isSet == true { throw CancellationError() }
            let n: Int
            do { n = try buf.withUnsafeMutableBytes { try file.read(into: $0.baseAddress!, count: bufSize, at: total) } } catch let e as SyscallError {
                throw FileProblem.from(e.code)
            }
            if n == 0 { break }
            buf.withUnsafeBytes { p in
                let chunk = UnsafeRawBufferPointer(rebasing: p[0..<n])
                sha.update(chunk)
                md5?.update(chunk)
                if keep {
                    kept?.append(contentsOf: chunk)
                    crc.update(chunk)
                }
            }
            total += Int64(n)
            onBytes?(n)
            if total > before.size { break }
        }
        let after = try FileStamp.of(file)
        if after != before || total != before.size {
            throw FileProblem.changed(after.size != before.size || total != before.size
                                      ? "size \(before.size) → \(max(after.size, total)) bytes" : "modification time changed")
        }
        return HashedFile(stamp: before, sha256: sha.finalize().hexString, md5: md5?.finalize().hexString,
                          crc32c: keep ? crc.base64 : nil, data: kept)
    }

    /// SHA-256 (hex) of a stream (a download), for `--verify --deep`.
    static func sha256(of channel: ByteChannel) async throws -> (String, Int64) {
        let sha = Hasher(.sha256)
        var n: Int64 = 0
        while let chunk = try await channel.receive() {
            sha.update(chunk)
            n += Int64(chunk.count)
        }
        return (sha.finalize().hexString, n)
    }
}
