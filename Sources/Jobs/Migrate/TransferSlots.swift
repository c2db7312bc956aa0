import Foundation

/// A counting semaphore for async tasks: at most `limit` transfers at once,
/// shared by small-file PUTs and the parts of large files. Waiters are served
/// in FIFO order; a cancelled waiter leaves the queue and throws.
final class TransferSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var available: Int
    private var waiters: [(id: UInt64, c: CheckedContinuation<Void, any Error>)] = []
    private var nextID: UInt64 = 0

    init(_ limit: Int) { available = max(1, limit) }

    /// Takes a free slot (nil), or returns a waiter id.
    private func takeOrTicket() -> UInt64? {
        lock.withLock {
            if available > 0 && waiters.isEmpty {
                available -= 1
                return nil
            }
            nextID += 1
            return nextID
        }
    }

    func acquire() async throws {
        guard let id = takeOrTicket() else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                lock.lock()
                if Task.isCancelled {
                    lock.unlock()
                    c.resume(throwing: CancellationError())
                    return
                }
                if available > 0 && waiters.isEmpty {
                    available -= 1
                    lock.unlock()
                    c.resume()
                    return
                }
                waiters.append((id, c))
                lock.unlock()
            }
        } onCancel: {
            lock.lock()
            if let i = waiters.firstIndex(where: { $0.id == id }) {
                let w = waiters.remove(at: i)
                lock.unlock()
                w.c.resume(throwing: CancellationError())
            } else {
                lock.unlock()
            }
        }
    }

    func release() {
        lock.lock()
        if !waiters.isEmpty {
            let w = waiters.removeFirst()
            lock.unlock()
            w.c.resume()
        } else {
            available += 1
            lock.unlock()
        }
    }

    /// Runs `body` holding one slot.
    func with<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }
}
