import Foundation
import Logging

/// Dedicated threads for blocking C calls (curl_easy_perform, read(2) on a
/// pipe, libpq, zstd on big buffers), so that the cooperative thread pool
/// (two threads on a two-core host) is never blocked.
///
/// Threads are created on demand, kept while idle for a while, and capped at
/// `maxThreads`; work beyond that waits in a FIFO queue.
///
/// Items block for as long as their stream lasts (a pipe pump, a transfer),
/// and an item queued behind them may be the very one they wait for, so the
/// cap is a guard against runaway thread creation, not a working limit: 512
/// threads (1 MiB stacks, touched only as used). With 64, a test process
/// running many suites at once filled the pool, and a control-socket write
/// waited behind transfers for longer than the server's 10 s first-message limit.
public final class BlockingPool: @unchecked Sendable {
    public static let shared = BlockingPool(name: "cairn-blocking", maxThreads: 512)

    private let name: String
    private let maxThreads: Int
    private let cond = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var threads = 0
    private var idle = 0
    private var warnedFull = false

    public init(name: String, maxThreads: Int) {
        self.name = name
        self.maxThreads = max(1, maxThreads)
    }

    /// Runs `work` on a pool thread.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        cond.lock()
        queue.append(work)
        // Spawn unless an idle thread is left for every queued item: work
        // items can block for a long time (a pipeline stage runs until its
        // stream ends), so an item must never wait behind another.
        let pending = queue.count - head
        if pending > idle && threads < maxThreads {
            threads += 1
            let t = Thread { [self] in
                ThreadName.set(name)
                self.loop()
            }
            t.stackSize = 1 << 20
            t.start()
        } else {
            cond.signal()
        }
        let full = pending > idle && threads >= maxThreads && !warnedFull
        if full { warnedFull = true }
        cond.unlock()
        if full {
            Logger.cairn("core").warning("blocking thread pool full: work waits in a queue", metadata: ["pool": "\(name)", "threads": "\(maxThreads)"])
        }
    }

    private func loop() {
        while true {
            cond.lock()
            while head >= queue.count {
                idle += 1
                let ok = cond.wait(until: Date().addingTimeInterval(30))
                idle -= 1
                if !ok && head >= queue.count {
                    threads -= 1
                    cond.unlock()
                    return
                }
            }
            let work = queue[head]
            queue[head] = {}   // drop the reference now: work items capture request bodies
            head += 1
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            cond.unlock()
            work()
        }
    }

    /// Runs a blocking closure on a pool thread and returns its result.
    /// Cancellation is not forwarded: `body` must observe its own cancellation
    /// flag (see `CancellationFlag`) if it can run long.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            submit {
                do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
            }
        }
    }
}

/// Runs a blocking closure on a dedicated thread (never the cooperative pool).
public func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await BlockingPool.shared.run(body)
}

/// A thread-safe flag that blocking code polls to notice task cancellation.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var _set = false
    public init() {}
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return _set }
    public func set() { lock.lock(); _set = true; lock.unlock() }
}

/// Runs blocking `body` on a dedicated thread; if the calling task is
/// cancelled, `flag` is set so that `body` can stop early.
public func runBlockingCancellable<T: Sendable>(_ body: @escaping @Sendable (CancellationFlag) throws -> T) async throws -> T {
    let flag = CancellationFlag()
    return try await withTaskCancellationHandler {
        try await BlockingPool.shared.run { try body(flag) }
    } onCancel: {
        flag.set()
    }
}
