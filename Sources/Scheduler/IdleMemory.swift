import CLinux
import Core
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Gives back the memory an idle daemon does not need: the pages of code and
/// read-only data that start-up and the last run touched (Foundation, ICU
/// tables, SQLite, TOML parsing, the backup pipeline…) and the heap that
/// `free` kept.
///
/// Those pages are clean copies of files (the binary, its libraries), so the
/// kernel can drop them at any time and read them back on the next use; until
/// it needs the memory it keeps them, and they count in the daemon's RSS (about
/// 20 of an idle daemon's 37 MiB). `madvise(MADV_PAGEOUT)` (Linux 5.4) asks the
/// kernel to reclaim them now. It never loses data: a dirty private page
/// (relocated data, the heap) stays unless there is swap to write it to, and
/// pages that other processes map too (libc, libcrypto) are left alone by the
/// kernel. Shared file mappings (SQLite's `-shm`) are not advised at all.
///
/// What it costs: the next run faults those pages back in, from the page cache
/// or, if the kernel dropped them, from disk (a few MiB, once per run).
public enum IdleMemory {
    public struct Release: Sendable, Equatable {
        public let rssBefore: Int
        public let rssAfter: Int
        /// False when the kernel does not know MADV_PAGEOUT (before 5.4): only the heap was trimmed.
        public let pagedOut: Bool
    }

    private static let MADV_PAGEOUT: Int32 = 21
    nonisolated(unsafe) private static var pageoutUnsupported = false
    private static let lock = NSLock()

    /// Blocking (reads /proc/self/maps, one madvise per mapping; about a
    /// millisecond): call it on a blocking-pool thread.
    public static func release() -> Release {
        lock.lock(); defer { lock.unlock() }
        let before = residentBytes()
        cairn_malloc_trim()
        var pagedOut = false
        if !pageoutUnsupported, let maps = readKernelFile("/proc/self/maps") {
            pagedOut = true
            for mapping in fileMappings(maps) {
                guard let start = UnsafeMutableRawPointer(bitPattern: UInt(mapping.start)) else { continue }
                if madvise(start, mapping.length, MADV_PAGEOUT) != 0 && errno == EINVAL {
                    pageoutUnsupported = true
                    pagedOut = false
                    break
                }
            }
        }
        return Release(rssBefore: before, rssAfter: residentBytes(), pagedOut: pagedOut)
    }

    public struct Mapping: Equatable, Sendable {
        public let start: Int
        public let length: Int
    }

    /// The private mappings of files in a `/proc/PID/maps` text (pure).
    public static func fileMappings(_ maps: String) -> [Mapping] {
        var out: [Mapping] = []
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[5].trimmingCharacters(in: .whitespaces).hasPrefix("/") else { continue }   // anonymous, [heap], [stack], [vdso]
            let perms = fields[1]
            guard perms.count == 4, perms.last == "p" else { continue }           // shared mappings are left alone
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let a = Int(range[0], radix: 16), let b = Int(range[1], radix: 16), b > a else { continue }
            out.append(Mapping(start: a, length: b - a))
        }
        return out
    }

    /// This process's resident set, from /proc/self/statm.
    public static func residentBytes() -> Int {
        guard let text = readKernelFile("/proc/self/statm") else { return 0 }
        let f = text.split(separator: " ")
        guard f.count > 1, let pages = Int(f[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
