import CZstd
import Foundation
import Core

private func zstdErrorName(_ code: Int) -> String { String(cString: ZSTD_getErrorName(code)) }

/// Streaming zstd compression (one frame). Blocking and CPU-bound: run it on
/// a BlockingPool thread. A final class owns the ZSTD_CCtx.
///
/// Compressed output is written straight into 1 MiB buffers from a pool of
/// its own and handed out (`update(_:emit:)`) without a copy, when a buffer
/// fills and at the end of each call; a buffer returns to the pool when the
/// last `Data` over it is released.
public final class ZstdCompressor: ByteTransform, @unchecked Sendable {
    public static let defaultLevel: Int32 = 3
    /// Size of each output buffer.
    public static let outputBufferSize = 1 << 20
    private let ctx: OpaquePointer
    private let out = PooledOutput(bufferSize: ZstdCompressor.outputBufferSize, maxFree: 4)
    private var finished = false
    public private(set) var inputBytes: Int64 = 0
    public private(set) var outputBytes: Int64 = 0

    /// - Parameters:
    ///   - level: zstd level (1 ... ZSTD_maxCLevel(), negative for the fast levels); default 3.
    ///   - workers: zstd's own worker threads (0 = compress on the calling thread).
    ///   - jobSize: with workers, bytes per zstd job (0: zstd's default, 4 × the
    ///     window, 8 MiB at level 3; its input and output buffers are several
    ///     jobs, hence the memory).
    public init(level: Int32 = ZstdCompressor.defaultLevel, workers: Int32 = 0, jobSize: Int32 = 0) throws {
        guard let ctx = ZSTD_createCCtx() else { throw CairnError(.internal, "ZSTD_createCCtx failed: out of memory") }
        self.ctx = ctx
        do {
            try check(ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level), "set compression level \(level)")
            try check(ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1), "enable frame checksum")
            if workers > 0 {
                try check(ZSTD_CCtx_setParameter(ctx, ZSTD_c_nbWorkers, workers), "set \(workers) workers (is libzstd built with threads?)")
                if jobSize > 0 { try check(ZSTD_CCtx_setParameter(ctx, ZSTD_c_jobSize, jobSize), "set job size \(jobSize)") }
            }
        } catch {
            ZSTD_freeCCtx(ctx)
            throw error
        }
    }

    deinit { ZSTD_freeCCtx(ctx) }

    private func check(_ rc: Int, _ what: String) throws {
        if ZSTD_isError(rc) != 0 { throw CairnError(.internal, "zstd: cannot \(what): \(zstdErrorName(rc))") }
    }

    public func update(_ data: Data) throws -> Data {
        try collected { try update(data, emit: $0) }
    }

    /// Ends the frame and returns the remaining compressed bytes.
    public func finish() throws -> Data {
        try collected { try finish(emit: $0) }
    }

    public func update(_ data: Data, emit: (Data) throws -> Void) throws {
        guard !finished else { throw CairnError(.internal, "ZstdCompressor.update after finish") }
        inputBytes += Int64(data.count)
        if data.isEmpty { return }
        try run(data, ZSTD_e_continue, emit)
        // What zstd has produced goes on now (as before pooling): a highly
        // compressible stream must not sit here until a whole buffer fills.
        try out.handOut(emit)
    }

    /// Ends the frame and hands out the remaining compressed bytes.
    public func finish(emit: (Data) throws -> Void) throws {
        guard !finished else { throw CairnError(.internal, "ZstdCompressor.finish called twice") }
        finished = true
        try run(Data(), ZSTD_e_end, emit)
        try out.handOut(emit)
    }

    private func run(_ data: Data, _ mode: ZSTD_EndDirective, _ emit: (Data) throws -> Void) throws {
        let size = out.capacity
        try data.withUnsafeBytes { inp in
            var input = ZSTD_inBuffer(src: inp.baseAddress, size: inp.count, pos: 0)
            while true {
                var output = ZSTD_outBuffer(dst: out.current(), size: size, pos: out.filled)
                let remaining = ZSTD_compressStream2(ctx, &output, &input, mode)
                if ZSTD_isError(remaining) != 0 {
                    throw CairnError(.internal, "zstd compression failed: \(zstdErrorName(remaining))")
                }
                outputBytes += Int64(output.pos - out.filled)
                out.filled = output.pos
                if output.pos == size { try out.handOut(emit) }
                // With workers, zstd may still hold input after consuming it
                // all; ZSTD_e_continue returns once the input is taken.
                let done = mode == ZSTD_e_end ? remaining == 0 : input.pos == input.size
                if done { break }
            }
        }
    }
}

/// Streaming zstd decompression (one or more concatenated frames). Errors
/// (`.integrity`) on corrupt input and, in `finish`, on input that ends
/// inside a frame or holds no frame at all. A final class owns the ZSTD_DCtx.
///
/// Output is written straight into 1 MiB buffers from a pool of its own and
/// handed out (`update(_:emit:)`) as each fills, without a copy; a buffer
/// returns to the pool when the last `Data` over it is released, so a
/// restore decompresses into the same few buffers (no fresh allocation, page
/// faults and `memmove` per input chunk). The last, partly filled buffer is
/// handed out by `finish`.
public final class ZstdDecompressor: ByteTransform, @unchecked Sendable {
    /// Size of each output buffer.
    public static let outputBufferSize = 1 << 20
    private let ctx: OpaquePointer
    private let out = PooledOutput(bufferSize: ZstdDecompressor.outputBufferSize, maxFree: 4)
    private var frameOpen = false   // bytes of a frame consumed, frame not complete
    private var sawFrame = false
    private var finished = false
    public private(set) var inputBytes: Int64 = 0
    public private(set) var outputBytes: Int64 = 0

    /// - Parameter windowLogMax: refuse frames that need a window above 2^windowLogMax bytes (memory bound, default 2^27 = 128 MiB).
    public init(windowLogMax: Int32 = 27) throws {
        guard let ctx = ZSTD_createDCtx() else { throw CairnError(.internal, "ZSTD_createDCtx failed: out of memory") }
        self.ctx = ctx
        let rc = ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, windowLogMax)
        if ZSTD_isError(rc) != 0 {
            ZSTD_freeDCtx(ctx)
            throw CairnError(.internal, "zstd: cannot set windowLogMax: \(zstdErrorName(rc))")
        }
    }

    deinit { ZSTD_freeDCtx(ctx) }

    public func update(_ data: Data) throws -> Data {
        try collected { try update(data, emit: $0) }
    }

    public func finish() throws -> Data {
        try collected { try finish(emit: $0) }
    }

    public func update(_ data: Data, emit: (Data) throws -> Void) throws {
        guard !finished else { throw CairnError(.internal, "ZstdDecompressor.update after finish") }
        if data.isEmpty { return }
        inputBytes += Int64(data.count)
        let size = out.capacity
        try data.withUnsafeBytes { inp in
            var input = ZSTD_inBuffer(src: inp.baseAddress, size: inp.count, pos: 0)
            var outputFull = false
            while input.pos < input.size || outputFull {
                var output = ZSTD_outBuffer(dst: out.current(), size: size, pos: out.filled)
                let before = input.pos
                let rc = ZSTD_decompressStream(ctx, &output, &input)
                if ZSTD_isError(rc) != 0 {
                    throw CairnError(.integrity, "zstd: corrupt compressed data at input byte \(inputBytes - Int64(inp.count) + Int64(input.pos)): \(zstdErrorName(rc))")
                }
                let produced = output.pos - out.filled
                out.filled = output.pos
                outputBytes += Int64(produced)
                let progressed = input.pos > before || produced > 0
                if progressed { sawFrame = true }
                // rc == 0: a frame ended and is fully flushed. A call that
                // neither read nor wrote (flush probe at a frame boundary)
                // returns a size hint for the next frame: no state change.
                if rc == 0 { frameOpen = false } else if progressed { frameOpen = true }
                outputFull = rc != 0 && output.pos == output.size
                if output.pos == size { try out.handOut(emit) }
            }
        }
    }

    /// Checks that the input ended at the end of a complete frame, and hands out the rest.
    public func finish(emit: (Data) throws -> Void) throws {
        guard !finished else { throw CairnError(.internal, "ZstdDecompressor.finish called twice") }
        finished = true
        if !sawFrame { throw CairnError(.integrity, "zstd: input is empty (no compressed frame)") }
        if frameOpen { throw CairnError(.integrity, "zstd: compressed data is truncated (the input ends inside a frame)") }
        try out.handOut(emit)
    }
}
