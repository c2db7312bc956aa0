import Foundation
import Core
import Crypto

/// A synchronous, incremental byte-stream transformation (zstd, encryption,
/// decryption, hashing). `update` returns the output ready so far, `finish`
/// the rest at end of input. Implementations are blocking and CPU-bound: the
/// pipeline calls them on a BlockingPool thread, one call at a time.
public protocol ByteTransform: AnyObject, Sendable {
    func update(_ data: Data) throws -> Data
    func finish() throws -> Data
    /// The same as `update`, handing each piece of output to `emit` as soon
    /// as it is ready instead of joining them into one `Data`. Stages whose
    /// output can be large (zstd -d) implement it to hand out reused buffers
    /// without a copy; the default calls `update`.
    func update(_ data: Data, emit: (Data) throws -> Void) throws
    /// `finish` with its output handed to `emit` (default: calls `finish`).
    func finish(emit: (Data) throws -> Void) throws
}

extension ByteTransform {
    public func update(_ data: Data, emit: (Data) throws -> Void) throws {
        let out = try update(data)
        if !out.isEmpty { try emit(out) }
    }

    public func finish(emit: (Data) throws -> Void) throws {
        let out = try finish()
        if !out.isEmpty { try emit(out) }
    }
}

/// Joins what an emitting transform hands out (for the `update`/`finish`
/// that return one `Data`: tests and small callers).
func collected(_ body: ((Data) throws -> Void) throws -> Void) rethrows -> Data {
    var parts: [Data] = []
    var total = 0
    try body { d in parts.append(d); total += d.count }
    if parts.count == 1 { return parts[0] }
    var out = Data(capacity: total)
    for p in parts { out.append(p) }
    return out
}

/// A pass-through stage that counts bytes and computes their SHA-256
/// (manifest sizes and digests). Read `byteCount` / `sha256` after the
/// pipeline has finished.
public final class HashingCounter: ByteTransform, @unchecked Sendable {
    private let hasher: Hasher?
    private var finished = false
    public private(set) var byteCount: Int64 = 0
    /// Set by `finish()` (nil when made with `hashing: false`).
    public private(set) var sha256: Data?

    /// - Parameter hashing: false: count bytes only (no SHA-256).
    public init(hashing: Bool = true) {
        hasher = hashing ? Hasher(.sha256) : nil
    }

    public func update(_ data: Data) throws -> Data {
        hasher?.update(data)
        byteCount += Int64(data.count)
        return data
    }

    public func finish() throws -> Data {
        guard !finished else { throw CairnError(.internal, "HashingCounter.finish called twice") }
        finished = true
        sha256 = hasher?.finalize()
        return Data()
    }
}

/// Several transforms run one after the other on one thread, with no
/// channel (and no thread hand-off) between them. For stages that are cheap
/// next to the hand-off, e.g. when zstd compresses on its own worker thread
/// and the rest (row counting, AES-GCM, SHA-256) is a fraction of a core.
public final class ChainedTransform: ByteTransform, @unchecked Sendable {
    public let stages: [any ByteTransform]

    public init(_ stages: [any ByteTransform]) { self.stages = stages }

    public func update(_ data: Data) throws -> Data {
        try collected { try update(data, emit: $0) }
    }

    public func finish() throws -> Data {
        try collected { try finish(emit: $0) }
    }

    /// Each piece a stage emits goes through the stages after it at once, so
    /// a stage's output buffer is consumed (and can be reused) before the
    /// stage produces the next one.
    public func update(_ data: Data, emit: (Data) throws -> Void) throws {
        try feed(data, into: 0, emit: emit)
    }

    /// Finishes each stage in order, feeding its tail through the stages after it.
    public func finish(emit: (Data) throws -> Void) throws {
        for i in stages.indices {
            try stages[i].finish { try feed($0, into: i + 1, emit: emit) }
        }
    }

    private func feed(_ data: Data, into i: Int, emit: (Data) throws -> Void) throws {
        if data.isEmpty { return }
        if i == stages.count { return try emit(data) }
        try stages[i].update(data) { try feed($0, into: i + 1, emit: emit) }
    }
}

/// Runs `stage` between two channels on a BlockingPool thread:
/// `receiveBlocking` → `update` → `sendBlocking`, then `finish` and EOF.
/// On any error the input is cancelled and the output finished with the error.
public func transform(input: ByteChannel, output: ByteChannel, stage: some ByteTransform) async throws {
    try await runBlockingCancellable { flag in
        do {
            while let chunk = try input.receiveBlocking() {
                if flag.isSet { throw CancellationError() }
                try stage.update(chunk) { if !$0.isEmpty { try output.sendBlocking($0) } }
            }
            try stage.finish { if !$0.isEmpty { try output.sendBlocking($0) } }
            output.finish()
        } catch {
            input.cancel(error)
            output.finish(throwing: error)
            throw error
        }
    }
}

/// Joins a source, byte transforms and a sink with bounded channels and runs
/// them concurrently in one task group.
public enum Pipeline {
    /// Capacity of each channel between stages.
    public static let defaultCapacity = 4 << 20

    /// Runs `source → stages[0] → … → stages[n-1] → sink`.
    ///
    /// `source` writes into the channel it is given (it need not finish it:
    /// returning finishes it); `sink` reads its channel to EOF. Each stage
    /// runs on its own BlockingPool thread. The first error (or cancellation
    /// of the calling task) cancels every channel, which wakes every stage,
    /// and is rethrown once all tasks have ended.
    public static func run(
        source: @escaping @Sendable (ByteChannel) async throws -> Void,
        stages: [any ByteTransform],
        sink: @escaping @Sendable (ByteChannel) async throws -> Void,
        capacity: Int = defaultCapacity
    ) async throws {
        let channels = (0...stages.count).map { _ in ByteChannel(capacity: capacity) }
        let failure = FirstError()
        @Sendable func abort(_ error: any Error) {
            let e = failure.record(error)
            for c in channels {
                c.cancel(e)
                c.finish(throwing: e)
            }
        }
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await source(channels[0])
                        channels[0].finish()
                    } catch { abort(error) }
                }
                for (i, stage) in stages.enumerated() {
                    group.addTask {
                        do { try await transform(input: channels[i], output: channels[i + 1], stage: stage) } catch { abort(error) }
                    }
                }
                group.addTask {
                    do {
                        try await sink(channels[stages.count])
                        // A sink that stops early must not leave producers blocked.
                        channels[stages.count].cancel(CairnError(.internal, "pipeline sink returned before end of stream"))
                    } catch { abort(error) }
                }
            }
        } onCancel: {
            abort(CairnError(.cancelled, "pipeline cancelled"))
        }
        if let e = failure.error { throw e }
    }
}

/// Remembers the first error of a pipeline; later errors (usually the same
/// error seen through a cancelled channel) are dropped.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var first: (any Error)?

    /// Records `error` if it is the first and returns the first error.
    func record(_ error: any Error) -> any Error {
        lock.lock(); defer { lock.unlock() }
        if first == nil { first = error }
        return first!
    }

    var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return first }
}
