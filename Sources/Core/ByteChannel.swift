import Foundation

/// A bounded, backpressured single-consumer channel of byte chunks.
///
/// It joins pipeline stages and bridges blocking threads with async code:
/// a producer can be an async task (`send`) or a dedicated thread
/// (`sendBlocking`), and so can the consumer (`receive` / `receiveBlocking`).
/// A send waits while `capacity` bytes are buffered (a single chunk larger
/// than the capacity is accepted when the buffer is empty, so the bound is
/// `max(capacity, largest chunk)`).
///
/// Either side can end the channel: the producer with `finish(throwing:)`
/// (the consumer sees EOF or the error after draining what is buffered), the
/// consumer with `cancel(_:)` (pending and later sends throw that error).
public final class ByteChannel: @unchecked Sendable {
    public let capacity: Int
    private let cond = NSCondition()
    private var chunks: [Data] = []
    private var head = 0
    private var buffered = 0
    private var finished = false
    private var failure: (any Error)?
    private var cancelledWith: (any Error)?
    private var reader: CheckedContinuation<Step, Never>?
    private var writers: [CheckedContinuation<Step, Never>] = []

    private enum Step: @unchecked Sendable {
        case retry
        case accepted
        case data(Data)
        case eof
        case failed(any Error)
    }

    public init(capacity: Int) {
        self.capacity = Swift.max(1, capacity)
    }

    /// Bytes currently buffered.
    public var bufferedBytes: Int { cond.lock(); defer { cond.unlock() }; return buffered }

    // MARK: producer

    private func canAccept(_ n: Int) -> Bool { buffered == 0 || buffered + n <= capacity }

    private func appendLocked(_ data: Data) {
        chunks.append(data)
        buffered += data.count
        if let r = reader { reader = nil; r.resume(returning: .retry) }
        cond.broadcast()
    }

    private func checkSendableLocked() throws {
        if let e = cancelledWith { throw e }
        if finished { throw CairnError(.internal, "send on a finished channel") }
    }

    /// Sends a chunk, suspending while the buffer is full.
    public func send(_ data: Data) async throws {
        if data.isEmpty { return }
        while true {
            let step = await withCheckedContinuation { (c: CheckedContinuation<Step, Never>) in sendStep(data, c) }
            switch step {
            case .accepted: return
            case .failed(let e): throw e
            default: continue
            }
        }
    }

    private func sendStep(_ data: Data, _ c: CheckedContinuation<Step, Never>) {
        cond.lock()
        defer { cond.unlock() }
        do { try checkSendableLocked() } catch { c.resume(returning: .failed(error)); return }
        if canAccept(data.count) {
            appendLocked(data)
            c.resume(returning: .accepted)
        } else {
            writers.append(c)
        }
    }

    /// Sends a chunk from a dedicated (non-cooperative) thread, blocking while full.
    public func sendBlocking(_ data: Data) throws {
        if data.isEmpty { return }
        cond.lock()
        defer { cond.unlock() }
        while true {
            try checkSendableLocked()
            if canAccept(data.count) { appendLocked(data); return }
            cond.wait()
        }
    }

    /// True once the producer has ended the stream cleanly and the consumer
    /// has taken every chunk: only EOF is left to read.
    public var isAtEnd: Bool {
        cond.lock(); defer { cond.unlock() }
        return finished && failure == nil && cancelledWith == nil && head == chunks.count
    }

    /// Ends the stream: EOF, or `error` for the consumer after the buffered data.
    public func finish(throwing error: (any Error)? = nil) {
        cond.lock()
        if !finished {
            finished = true
            failure = error
        }
        if let r = reader { reader = nil; r.resume(returning: .retry) }
        cond.broadcast()
        cond.unlock()
    }

    // MARK: consumer

    private func wakeWritersLocked() {
        for c in writers { c.resume(returning: .retry) }
        writers.removeAll()
        cond.broadcast()
    }

    private func takeLocked() -> Data? {
        guard head < chunks.count else { return nil }
        let d = chunks[head]
        chunks[head] = Data()   // drop the reference: a channel that never drains must not keep consumed chunks
        head += 1
        buffered -= d.count
        if head == chunks.count {
            chunks.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 {
            chunks.removeFirst(head)
            head = 0
        }
        return d
    }

    /// The next chunk, or nil at the end of the stream. Throws the producer's error.
    public func receive() async throws -> Data? {
        while true {
            let step = await withCheckedContinuation { (c: CheckedContinuation<Step, Never>) in receiveStep(c) }
            switch step {
            case .data(let d): return d
            case .eof: return nil
            case .failed(let e): throw e
            default: continue
            }
        }
    }

    private func receiveStep(_ c: CheckedContinuation<Step, Never>) {
        cond.lock()
        defer { cond.unlock() }
        if let e = cancelledWith { c.resume(returning: .failed(e)); return }
        if let d = takeLocked() {
            wakeWritersLocked()
            c.resume(returning: .data(d))
            return
        }
        if finished {
            if let f = failure { c.resume(returning: .failed(f)) } else { c.resume(returning: .eof) }
            return
        }
        reader = c
    }

    /// Blocking variant of `receive` for dedicated threads.
    public func receiveBlocking() throws -> Data? {
        cond.lock()
        defer { cond.unlock() }
        while true {
            if let e = cancelledWith { throw e }
            if let d = takeLocked() {
                wakeWritersLocked()
                return d
            }
            if finished {
                if let f = failure { throw f }
                return nil
            }
            cond.wait()
        }
    }

    /// The consumer gives up: buffered data is dropped and producers get `error`.
    public func cancel(_ error: any Error = CancellationError()) {
        cond.lock()
        if cancelledWith == nil { cancelledWith = error }
        chunks.removeAll()
        head = 0
        buffered = 0
        let w = writers
        writers.removeAll()
        let r = reader
        reader = nil
        cond.broadcast()
        cond.unlock()
        for c in w { c.resume(returning: .retry) }
        r?.resume(returning: .retry)
    }
}

extension ByteChannel {
    /// Reads up to `count` bytes exactly (fewer only at EOF), re-chunking,
    /// into a buffer taken from `pool` (whose `bufferSize` is at least
    /// `count`), handed out without a copy: the buffer goes back to the pool
    /// when the returned `Data` is released. Single consumer by contract.
    /// For a producer of large parts (the multipart uploader), which would
    /// otherwise map, fault in and unmap a fresh part-sized buffer per part.
    /// An empty result at the end of the stream holds no buffer.
    public func read(exactly count: Int, carry: inout Data, pool: BufferPool) async throws -> Data {
        precondition(count <= pool.bufferSize, "read(exactly:) of \(count) bytes from a pool of \(pool.bufferSize)-byte buffers")
        let buffer = pool.take()
        var filled = 0
        var pending = carry
        carry = Data()
        do {
            while true {
                if !pending.isEmpty {
                    let take = Swift.min(count - filled, pending.count)
                    pending.withUnsafeBytes { (buffer + filled).copyMemory(from: $0.baseAddress!, byteCount: take) }
                    filled += take
                    if take < pending.count {
                        carry = pending.dropFirst(take)   // a slice: no copy
                        return pool.data(buffer, count: filled)
                    }
                }
                if filled == count { return pool.data(buffer, count: filled) }
                guard let d = try await receive() else {
                    if filled == 0 { pool.give(buffer); return Data() }
                    return pool.data(buffer, count: filled)
                }
                pending = d
            }
        } catch {
            pool.give(buffer)
            throw error
        }
    }
}

extension ByteChannel: AsyncSequence {
    public typealias Element = Data
    public struct AsyncIterator: AsyncIteratorProtocol {
        let channel: ByteChannel
        public mutating func next() async throws -> Data? { try await channel.receive() }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: self) }
}
