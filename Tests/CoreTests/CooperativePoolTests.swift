import Foundation
import Testing
@testable import Core

/// The pool's queue and threads, driven with closures. Its other half, the
/// runtime hook that makes it the global executor, is exercised by every
/// integration test that starts `cairn serve` (DaemonTests), and
/// `theDaemonRunsItsTasksOnItsOwnPool` checks that it carries the work.
@Suite(.timeLimit(.minutes(1))) struct CooperativePoolTests {
    final class Log: @unchecked Sendable {
        let lock = NSLock()
        var entries: [(producer: Int, seq: Int, thread: String)] = []
        func add(_ p: Int, _ s: Int, _ t: String) { lock.lock(); entries.append((p, s, t)); lock.unlock() }
    }

    @Test func everySubmittedClosureRunsOnceOnAPoolThreadInSubmissionOrderPerProducer() async throws {
        let pool = CooperativePool(threads: 2, name: "test-pool")
        let log = Log()
        let producers = 4, each = 5000   // far more than the ring's first 256 slots: it grows
        let (done, signal) = AsyncStream<Void>.makeStream()
        let remaining = ManagedCounter(producers * each)
        for p in 0..<producers {
            Thread {
                for s in 0..<each {
                    pool.submit {
                        log.add(p, s, ThreadName.current)
                        if remaining.decrement() == 0 { signal.finish() }
                    }
                }
            }.start()
        }
        for await _ in done {}
        #expect(log.entries.count == producers * each)
        #expect(Set(log.entries.map(\.thread)).allSatisfy { $0.hasPrefix("test-pool-") })
        #expect(pool.jobsRun == UInt64(producers * each))
        for p in 0..<producers {
            let seqs = log.entries.filter { $0.producer == p }.map(\.seq)
            #expect(Set(seqs) == Set(0..<each))
        }
    }

    /// One queue, FIFO: with one thread, work runs exactly in submission order.
    @Test func workRunsInSubmissionOrder() async throws {
        let pool = CooperativePool(threads: 1, name: "test-fifo")
        let log = Log()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            for s in 0..<3000 { pool.submit { log.add(0, s, "") } }
            pool.submit { c.resume() }
        }
        #expect(log.entries.map(\.seq) == Array(0..<3000))
    }

    @Test func anIdlePoolWakesForNewWork() async throws {
        let pool = CooperativePool(threads: 3, name: "test-idle")
        for round in 0..<20 {
            let v: Int = await withCheckedContinuation { c in pool.submit { c.resume(returning: round) } }
            #expect(v == round)
        }
        #expect(pool.jobsRun == 20)
    }
}

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int
    init(_ v: Int) { value = v }
    func decrement() -> Int { lock.lock(); defer { lock.unlock() }; value -= 1; return value }
}
