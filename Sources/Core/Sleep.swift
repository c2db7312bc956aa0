import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Sleeping in a task, as `Task.sleep` does (throws `CancellationError` when
/// the task is cancelled, before or during the sleep), but on Cairn's own
/// timer thread: a condition variable waited on with the earliest deadline
/// (`CLOCK_MONOTONIC`), which wakes only when a sleep is due or a new earlier
/// one arrives. `Task.sleep` hands its deadline to libdispatch's global
/// queues, whose first worker thread starts libdispatch's 1 Hz workqueue
/// monitor (see `CooperativePool`): an idle daemon would wake every second.
public enum Sleep {
    /// Sleeps for `duration` (nothing for a zero or negative one, but a
    /// cancelled task still throws).
    public static func `for`(_ duration: Duration) async throws {
        try await until(monotonicNs: TimerThread.now() &+ duration.nanosecondsClamped)
    }

    /// Sleeps until `instant` of the continuous clock.
    public static func until(_ instant: ContinuousClock.Instant) async throws {
        try await self.for(ContinuousClock.now.duration(to: instant))
    }

    /// Sleeps until the wall-clock `date` (measured now: a later clock step
    /// does not move the wake-up).
    public static func until(_ date: Date) async throws {
        let seconds = max(0, date.timeIntervalSinceNow)
        try await self.for(.nanoseconds(Int64(min(seconds * 1e9, Double(Int64.max / 2)))))
    }

    static func until(monotonicNs deadline: UInt64) async throws {
        try Task.checkCancellation()
        let entry = TimerThread.Entry(deadline: deadline)
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                TimerThread.shared.add(entry, c)
            }
        } onCancel: {
            TimerThread.shared.cancel(entry)
        }
    }
}

extension Duration {
    /// Whole nanoseconds, 0 for a negative duration, capped far in the future.
    var nanosecondsClamped: UInt64 {
        let (s, atto) = components
        if s < 0 || (s == 0 && atto <= 0) { return 0 }
        if s >= Int64(UInt64.max / 4 / 1_000_000_000) { return UInt64.max / 4 }
        return UInt64(s) * 1_000_000_000 + UInt64(atto / 1_000_000_000)
    }
}

/// The thread behind `Sleep`: pending sleeps ordered by deadline; the thread
/// waits for the first one (or for ever when there is none) and resumes each
/// sleeper when its deadline passes.
final class TimerThread: @unchecked Sendable {
    static let shared = TimerThread()

    final class Entry: @unchecked Sendable {
        let deadline: UInt64
        /// The rest is guarded by the timer's mutex. `id` orders equal deadlines.
        var id: UInt64 = 0
        var continuation: CheckedContinuation<Void, any Error>?
        var cancelled = false
        var done = false
        init(deadline: UInt64) { self.deadline = deadline }
    }

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Sorted by deadline, latest first: the next due is `last`.
    private var pending: [Entry] = []
    private var started = false
    private var nextID: UInt64 = 0

    private init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    func add(_ entry: Entry, _ c: CheckedContinuation<Void, any Error>) {
        pthread_mutex_lock(mutex)
        if entry.cancelled {
            entry.done = true
            pthread_mutex_unlock(mutex)
            c.resume(throwing: CancellationError())
            return
        }
        entry.continuation = c
        nextID &+= 1
        entry.id = nextID
        // Insert keeping `pending` sorted latest-first (binary search).
        var lo = 0, hi = pending.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let m = pending[mid]
            if m.deadline > entry.deadline || (m.deadline == entry.deadline && m.id > entry.id) { lo = mid + 1 } else { hi = mid }
        }
        pending.insert(entry, at: lo)
        let isFirst = lo == pending.count - 1
        if !started {
            started = true
            let t = Thread { [self] in
                ThreadName.set("cairn-sleep")
                self.loop()
            }
            t.stackSize = 128 << 10
            t.start()
        }
        pthread_mutex_unlock(mutex)
        if isFirst { pthread_cond_signal(cond) }
    }

    func cancel(_ entry: Entry) {
        pthread_mutex_lock(mutex)
        entry.cancelled = true
        var resume: CheckedContinuation<Void, any Error>?
        var wasFirst = false
        if !entry.done, let c = entry.continuation {
            entry.done = true
            entry.continuation = nil
            resume = c
            if let i = pending.lastIndex(where: { $0 === entry }) {
                wasFirst = i == pending.count - 1
                pending.remove(at: i)
            }
        }
        pthread_mutex_unlock(mutex)
        // The thread waits for the first deadline: tell it that one is gone,
        // so that it does not wake for nothing.
        if wasFirst { pthread_cond_signal(cond) }
        resume?.resume(throwing: CancellationError())
    }

    private func loop() {
        pthread_mutex_lock(mutex)
        while true {
            guard let first = pending.last else {
                pthread_cond_wait(cond, mutex)
                continue
            }
            let now = Self.now()
            if first.deadline > now {
                var ts = timespec(tv_sec: Int(first.deadline / 1_000_000_000), tv_nsec: Int(first.deadline % 1_000_000_000))
                pthread_cond_timedwait(cond, mutex, &ts)
                continue
            }
            var due: [CheckedContinuation<Void, any Error>] = []
            while let e = pending.last, e.deadline <= now {
                pending.removeLast()
                e.done = true
                if let c = e.continuation { due.append(c) }
                e.continuation = nil
            }
            pthread_mutex_unlock(mutex)
            for c in due { c.resume() }
            pthread_mutex_lock(mutex)
        }
    }
}
