import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Creating Cairn's own files and directories (state database, job locks,
/// checkpoint databases, mapping files) readable by their owner only:
/// directories 0700, files 0600, whatever the umask. The mode is given to
/// mkdir/open and set again with chmod/fchmod on what was just created; the
/// umask itself is never changed (it is process-wide, and files other
/// threads create meanwhile would get it). What already exists keeps its
/// mode: an operator may have chosen it.
public enum PrivateFiles {
    public static let directoryMode: mode_t = 0o700
    public static let fileMode: mode_t = 0o600

    /// Creates `path` and its missing parents, each 0700. Blocking.
    public static func createDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            var st = stat()
            if lstat(prefix, &st) == 0 { continue }
            let e = errno
            guard e == ENOENT else { throw failure(e, "cannot inspect directory \(prefix)") }
            if mkdir(prefix, directoryMode) != 0 {
                let e = errno
                if e == EEXIST { continue }  // made meanwhile by another process
                throw failure(e, "cannot create directory \(prefix)")
            }
            guard chmod(prefix, directoryMode) == 0 else { throw failure(errno, "cannot set the mode of directory \(prefix)") }
        }
    }

    /// Creates `path` as an empty 0600 file unless something is there
    /// already (a database SQLite then opens: SQLite gives its -wal, -shm
    /// and -journal files the database file's mode). Blocking.
    public static func createFile(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, fileMode)
        if fd < 0 {
            let e = errno
            if e == EEXIST { return }
            throw failure(e, "cannot create \(path)")
        }
        defer { close(fd) }
        guard fchmod(fd, fileMode) == 0 else { throw failure(errno, "cannot set the mode of \(path)") }
    }

    private static func failure(_ code: Int32, _ what: String) -> CairnError {
        CairnError(.io, what, cause: ErrnoError(code))
    }
}
