import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A fixed pool of threads that runs Swift concurrency jobs, FIFO, and sleeps
/// on a condition variable when there is no work: no timers, no polling.
///
/// Why: on Linux the default global executor is libdispatch's non-overcommit
/// root queues, and the first worker thread they start arms libdispatch's
/// workqueue monitor, a 1 s timer that wakes the process every second for as
/// long as it lives (`_dispatch_workq_init_once` in libdispatch's
/// src/event/workqueue.c). An idle `cairn serve` must not wake between due
/// times (issue 15), so the daemon installs this pool as the global executor
/// (`installAsGlobalExecutor`), through the runtime's
/// `swift_task_enqueueGlobal_hook` (the hook SwiftNIO uses to take over the
/// global executor). Sleeping is `Sleep` (its own timer thread), not
/// `Task.sleep`, whose deadlines go to libdispatch's global queues.
///
/// The pool never grows: like the cooperative pool it replaces, work on it
/// must not block (blocking calls go to `BlockingPool`). Its threads are
/// named `cairn-pool-N` (`top -H`, /proc/PID/task/*/comm). Tests drive it
/// with plain closures (`submit`); the global hook is exercised by every
/// integration test that starts `cairn serve`.
public final class CooperativePool: @unchecked Sendable {
    enum Work {
        case job(UnownedJob)
        case closure(@Sendable () -> Void)
    }
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// A ring buffer of jobs: `head` is the next to run, `count` are queued.
    private var ring: [Work?] = Array(repeating: nil, count: 256)
    private var head = 0
    private var count = 0
    private var idle = 0
    /// Jobs run so far (for tests).
    private var ran: UInt64 = 0

    /// Starts `threads` threads named `name-1`, `name-2`, ...
    public init(threads: Int, name: String = "cairn-pool") {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        for i in 1...max(1, threads) {
            let t = Thread { [self] in
                ThreadName.set("\(name)-\(i)")
                self.work()
            }
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// The number of threads the daemon uses: one per CPU it may run on, at
    /// least two (what libdispatch's cooperative width is on this host).
    public static var defaultThreadCount: Int { max(2, ProcessInfo.processInfo.activeProcessorCount) }

    /// Runs `work` on a pool thread, after the work queued before it.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        push(.closure(work))
    }

    /// Jobs run since the pool started.
    public var jobsRun: UInt64 {
        pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }
        return ran
    }

    func push(_ job: Work) {
        pthread_mutex_lock(mutex)
        if count == ring.count {
            // Grow: unroll the ring into a buffer twice the size.
            var bigger: [Work?] = Array(repeating: nil, count: ring.count * 2)
            for i in 0..<count { bigger[i] = ring[(head + i) % ring.count] }
            ring = bigger
            head = 0
        }
        ring[(head + count) % ring.count] = job
        count += 1
        let wake = idle > 0
        pthread_mutex_unlock(mutex)
        if wake { pthread_cond_signal(cond) }
    }

    private func work() {
        while true {
            pthread_mutex_lock(mutex)
            while count == 0 {
                idle += 1
                pthread_cond_wait(cond, mutex)
                idle -= 1
            }
            let work = ring[head]!
            ring[head] = nil
            head = (head + 1) % ring.count
            count -= 1
            ran &+= 1
            pthread_mutex_unlock(mutex)
            switch work {
            case .job(let job): cairnSwiftJobRun(job, Self.genericExecutor)
            case .closure(let body): body()
            }
        }
    }

    // MARK: The global executor

    nonisolated(unsafe) private static var installed: CooperativePool?

    /// The runtime's "generic" executor (`SerialExecutorRef::generic()`: no
    /// identity): what libdispatch's global executor runs jobs on.
    private static let genericExecutor = unsafeBitCast((UInt(0), UInt(0)), to: UnownedSerialExecutor.self)

    /// Makes a new pool of `threads` threads the process's global executor:
    /// every task not bound to an actor runs on it from now on. Call it once,
    /// first thing in `main` (a second call returns the same pool).
    @discardableResult
    public static func installAsGlobalExecutor(threads: Int = defaultThreadCount) -> CooperativePool {
        if let installed { return installed }
        let pool = CooperativePool(threads: threads, name: "cairn-pool")
        installed = pool
        typealias Original = @convention(thin) (UnownedJob) -> Void
        typealias Hook = @convention(thin) (UnownedJob, Original) -> Void
        let hook: Hook = { job, _ in CooperativePool.installed!.push(.job(job)) }
        cairn_set_enqueue_global_hook(unsafeBitCast(hook, to: UnsafeMutableRawPointer.self))
        return pool
    }
}

/// The runtime's entry point to run a job on an executor (what the stdlib's
/// own `UnownedJob.runSynchronously(on:)` calls).
@_silgen_name("swift_job_run")
private func cairnSwiftJobRun(_ job: UnownedJob, _ executor: UnownedSerialExecutor)
