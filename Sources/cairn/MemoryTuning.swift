/// glibc malloc settings for a process that moves MiB-sized buffers between
/// threads: a fixed mmap threshold (so part buffers go back to the kernel
/// when freed instead of raising the dynamic threshold and staying in an
/// arena) and few arenas (each BlockingPool thread would otherwise get its
/// own, each holding freed memory). Measured in docs/BENCHMARKS.md.
enum MemoryTuning {
    // <malloc.h> is not part of Swift's Glibc module; the constants are glibc's ABI.
    private static let M_TRIM_THRESHOLD: Int32 = -1
    private static let M_MMAP_THRESHOLD: Int32 = -3
    private static let M_ARENA_MAX: Int32 = -8

    static func apply() {
        #if os(Linux)
        _ = cairn_mallopt(M_MMAP_THRESHOLD, 256 << 10)
        _ = cairn_mallopt(M_TRIM_THRESHOLD, 1 << 20)
        _ = cairn_mallopt(M_ARENA_MAX, 2)
        #endif
    }
}

#if os(Linux)
@_silgen_name("mallopt")
private func cairn_mallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
