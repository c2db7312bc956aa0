import Foundation

/// A file as `lstat` sees it: enough to notice that it was replaced, edited,
/// truncated or touched since it was last looked at.
public struct FileIdentity: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var mtimeNs: Int64
    public var ctimeNs: Int64

    public init(device: UInt64, inode: UInt64, size: Int64, mtimeNs: Int64, ctimeNs: Int64) {
        self.device = device; self.inode = inode; self.size = size; self.mtimeNs = mtimeNs; self.ctimeNs = ctimeNs
    }

    public init(_ st: stat) {
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                  mtimeNs: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                  ctimeNs: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec))
    }

    /// Blocking: the regular file at `path` (a symlink is not followed); nil
    /// when there is none (missing, a symlink, a directory, unreadable).
    public static func of(path: String) -> FileIdentity? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return FileIdentity(st)
    }

    /// Blocking: the open file `fd`.
    public static func of(fd: Int32) -> FileIdentity? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return FileIdentity(st)
    }
}

/// What the last mapping file written from a checkpoint was made from, kept
/// in the checkpoint: a run whose rows did not change (same `generation`)
/// for the same file (same path, same identity on disk) and the same storage
/// address (`basis`) leaves the mapping file as it is.
public struct MappingStamp: Sendable, Equatable {
    /// The mapping file's path.
    public var path: String
    /// The checkpoint's change counter when the rows were read (`CheckpointStore.generation()`).
    public var generation: Int64
    /// Everything else the file's content depends on (the storage's key
    /// prefix and URL base, the line format's version).
    public var basis: String
    /// Lines written.
    public var entries: Int
    /// The file as written (after its rename into place).
    public var file: FileIdentity

    public init(path: String, generation: Int64, basis: String, entries: Int, file: FileIdentity) {
        self.path = path; self.generation = generation; self.basis = basis; self.entries = entries; self.file = file
    }

    /// Whether the file on disk (`onDisk`, nil when missing or not a regular
    /// file) is still the one this stamp describes, for the same rows and basis.
    public func isCurrent(path: String, generation: Int64, basis: String, onDisk: FileIdentity?) -> Bool {
        guard let onDisk else { return false }
        return self.path == path && self.generation == generation && self.basis == basis && self.file == onDisk
    }
}
