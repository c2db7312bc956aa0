import Foundation

/// An output buffer being filled, taken from a `BufferPool` of its own and
/// handed out as `Data` without a copy (for stages whose output is written
/// by a C library straight into memory: zstd). The buffer goes back to the
/// pool when the last `Data` over it is released; one not handed out goes
/// back when this is freed.
public final class PooledOutput {
    private let pool: BufferPool
    private var buffer: UnsafeMutableRawPointer?
    /// Bytes written into the current buffer.
    public var filled = 0

    public init(bufferSize: Int, maxFree: Int) {
        pool = BufferPool(bufferSize: bufferSize, maxFree: maxFree)
    }

    deinit { if let buffer { pool.give(buffer) } }

    /// Size of each buffer.
    public var capacity: Int { pool.bufferSize }

    /// The buffer being filled; a fresh one from the pool (`filled` = 0) if
    /// the last was handed out.
    public func current() -> UnsafeMutableRawPointer {
        if let buffer { return buffer }
        let b = pool.take()
        buffer = b
        filled = 0
        return b
    }

    /// Hands the filled part of the current buffer to `emit` (nothing if empty).
    public func handOut(_ emit: (Data) throws -> Void) throws {
        guard let b = buffer, filled > 0 else { return }
        let d = pool.data(b, count: filled)
        buffer = nil
        filled = 0
        try emit(d)
    }
}
