import Core
import Foundation

/// The free-space check before a verification (`restore_jobs > 1`) or a
/// restore (`--jobs`) spools a backup to a local file: the file needs the
/// dump's plaintext size.
enum SpoolSpace {
    /// Free bytes for an unprivileged writer in the file system holding `dir`.
    static func available(_ dir: String) throws -> Int64 {
        var s = statvfs()
        guard statvfs(dir, &s) == 0 else {
            let code = errno
            throw CairnError(.io, "cannot read the free space of \(dir): \(errnoString(code))", cause: ErrnoError(code))
        }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    /// Throws `.io` unless `dir` has room for `needed` bytes plus a margin of
    /// 1 % (at least 64 MiB); the message ends with `remedy`.
    static func require(_ needed: Int64, in dir: String, remedy: String = "free space there, or set restore_jobs = 1 to stream") throws {
        let margin = max(needed / 100, 64 << 20)
        let free = try available(dir)
        guard free >= needed + margin else {
            throw CairnError(.io, "pg_restore --jobs needs the backup spooled to \(dir), which has \(ByteFormat.human(free)) free; it needs \(ByteFormat.human(needed + margin)) (the dump's \(ByteFormat.human(needed)) and a margin): \(remedy)")
        }
    }
}
