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
        var d = data
        for s in stages {
            if d.isEmpty { return d }
            d = try s.update(d)
        }
        return d
    }

    /// Finishes each stage in order, feeding its tail through the stages after it.
    public func finish() throws -> Data {
        var out = Data()
        for (i, s) in stages.enumerated() {
            var tail = try s.finish()
            for next in stages[(i + 1)...] where !tail.isEmpty { tail = try next.update(tail) }
            out.append(tail)
        }
        return out
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
                let out = try stage.update(chunk)
                if !out.isEmpty { try output.sendBlocking(out) }
            }
            let tail = try stage.finish()
            if !tail.isEmpty { try output.sendBlocking(tail) }
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
