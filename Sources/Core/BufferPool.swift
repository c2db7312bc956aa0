import Foundation

/// Reusable fixed-size byte buffers, handed out as `Data` that gives its
/// buffer back to the pool when the last reference goes away.
///
/// For producers that read MiB-sized chunks (a child's stdout): a fresh
/// 1 MiB `Data` per chunk is a fresh `mmap` (glibc's threshold is 256 KiB in
/// cairn, see MemoryTuning) whose 256 pages each fault and are zeroed by the
/// kernel, then unmapped; a reused buffer is already mapped. At most
/// `maxFree` idle buffers are kept; buffers in use are bounded by whoever
/// holds the `Data` (the channels' capacities).
public final class BufferPool: @unchecked Sendable {
    public let bufferSize: Int
    public let maxFree: Int
    private let lock = NSLock()
    private var free: [UnsafeMutableRawPointer] = []

    public init(bufferSize: Int, maxFree: Int = 8) {
        self.bufferSize = bufferSize
        self.maxFree = maxFree
    }

    deinit {
        for p in free { p.deallocate() }
    }

    /// A buffer of `bufferSize` bytes: give it back with `give`, or wrap it with `data`.
    public func take() -> UnsafeMutableRawPointer {
        lock.lock()
        if let p = free.popLast() { lock.unlock(); return p }
        lock.unlock()
        return UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
    }

    /// Returns a buffer from `take` to the pool (or frees it when enough are idle).
    public func give(_ p: UnsafeMutableRawPointer) {
        lock.lock()
        if free.count < maxFree { free.append(p); lock.unlock(); return }
        lock.unlock()
        p.deallocate()
    }

    /// The first `count` bytes of `buffer` (from `take`) as `Data`, without
    /// a copy; the buffer goes back to the pool when the `Data` is released.
    /// The caller must not touch `buffer` afterwards.
    public func data(_ buffer: UnsafeMutableRawPointer, count: Int) -> Data {
        precondition(count >= 0 && count <= bufferSize)
        return Data(bytesNoCopy: buffer, count: count, deallocator: .custom { [self] p, _ in self.give(p) })
    }

    /// Idle buffers held (for tests).
    public var idleCount: Int { lock.lock(); defer { lock.unlock() }; return free.count }
}
