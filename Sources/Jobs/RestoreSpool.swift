import Core
import Foundation

/// The local copy of an archive that `pg_restore --jobs` needs (it seeks in
/// its input): a new 0600 file in `directory`, written while the object
/// downloads, and removed by `remove()` (the caller's `defer`) whatever happens.
///
/// It is scratch, read back at once by pg_restore and then deleted: it is not
/// fsync'ed (pg_restore reads it from the page cache; a sync would only wait
/// for disk writes of a file about to go: ~0.7 s for 455 MB on the benchmark
/// machine, more on a slow disk), and it is written in place under a name of
/// its own (O_EXCL), not through a temporary name and a rename.
struct RestoreSpool: Sendable {
    let path: String

    /// A spool path in `directory` for backup `id`, after checking that the
    /// file system there has room for `size` bytes (and a margin, see `SpoolSpace`).
    init(directory: String, id: String, size: Int64, remedy: String) throws {
        try SpoolSpace.require(size, in: directory, remedy: remedy)
        path = URL(fileURLWithPath: directory).appendingPathComponent("cairn-restore-\(id)-\(UUID().uuidString.prefix(8)).dump").path
    }

    /// Writes `channel` to the spool file, to EOF. On failure the channel is
    /// cancelled (the pipeline stops) and the error thrown; `remove()` still
    /// has to be called.
    func write(_ channel: ByteChannel) async throws {
        let path = self.path
        try await runBlockingCancellable { flag in
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let code = errno
                let e = CairnError(.io, "cannot create the restore spool file \(path): \(errnoString(code))", cause: ErrnoError(code))
                channel.cancel(e)
                throw e
            }
            defer { close(fd) }
            do {
                while let d = try channel.receiveBlocking() {
                    if flag.isSet { throw CancellationError() }
                    let code = writeFully(fd, d)
                    if code != 0 {
                        throw CairnError(.io, "cannot write the restore spool file \(path): \(errnoString(code))", cause: ErrnoError(code))
                    }
                }
            } catch {
                channel.cancel(error)
                throw error
            }
        }
    }

    func remove() { unlink(path) }
}
