import CLinux
import Core
import Foundation

/// Sleeps until a wall-clock instant on a thread of its own, without polling:
/// a `CLOCK_REALTIME` timerfd armed at an absolute time with
/// `TFD_TIMER_CANCEL_ON_SET`, so the kernel wakes it both when the instant
/// comes and when the wall clock is set (an NTP step, `date -s`), which the
/// scheduler must notice. Suspend/resume is covered too: an absolute realtime
/// timer that expired during suspend fires on resume.
final class WallTimer: @unchecked Sendable {
    enum Event: Sendable { case fired, clockChanged }

    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false

    init(onEvent: @escaping @Sendable (Event) -> Void) throws {
        fd = cairn_timerfd_create()
        guard fd >= 0 else { throw CairnError(.internal, "timerfd_create failed: \(errnoString())") }
        let fd = self.fd
        // The thread owns the descriptor's lifetime: it closes it when it
        // exits, so a read never lands on a number another thread reused.
        let thread = Thread { [self] in
            ThreadName.set("cairn-timer")
            while true {
                let rc = cairn_timerfd_wait(fd)
                if self.isStopped { close(fd); return }
                switch rc {
                case 1: onEvent(.fired)
                case 0: onEvent(.clockChanged)
                default: usleep(100_000)
                }
            }
        }
        thread.stackSize = 64 << 10
        thread.start()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    /// Wakes at `date` (nil: never). Re-arming replaces the previous instant.
    func arm(at date: Date?) {
        lock.lock(); defer { lock.unlock() }   // never arms a closed (and maybe reused) descriptor
        if stopped { return }
        guard let date else { _ = cairn_timerfd_arm(fd, 0, 0); return }
        // An instant in the past fires at once; never pass 0 (that disarms).
        let t = max(date.timeIntervalSince1970, 1)
        let sec = floor(t)
        _ = cairn_timerfd_arm(fd, Int64(sec), Int64((t - sec) * 1e9))
    }

    /// Stops the thread: the timer fires at once, the thread wakes, sees
    /// `stopped` and closes the descriptor as it exits.
    func stop() {
        lock.lock(); defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        _ = cairn_timerfd_arm(fd, 1, 0)
    }
}
