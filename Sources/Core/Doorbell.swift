import Foundation

/// Wakes one waiting task: `ring()` from anywhere, `wait(until:)` in the
/// task that sleeps until it is rung or a deadline passes. A ring while
/// nobody waits is kept for the next wait (never lost); several rings are
/// one. Used by loops that must sleep with no polling (the alert delivery
/// loop) and wake at once when there is work.
public final class Doorbell: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = false
    private var waiter: CheckedContinuation<Void, Never>?

    public init() {}

    public func ring() {
        lock.lock()
        let w = waiter
        waiter = nil
        if w == nil { pending = true }
        lock.unlock()
        w?.resume()
    }

    /// Returns when rung (also by a ring since the last wait), at `deadline`, or when the task is cancelled.
    public func wait(until deadline: Date?) async {
        let timer: Task<Void, Never>? = deadline.map { d in
            Task { [weak self] in
                do { try await Sleep.until(d) } catch { return }
                self?.ring()
            }
        }
        defer { timer?.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                lock.lock()
                if pending || Task.isCancelled {
                    pending = false
                    lock.unlock()
                    c.resume()
                    return
                }
                waiter = c
                lock.unlock()
            }
        } onCancel: {
            ring()
        }
    }
}
