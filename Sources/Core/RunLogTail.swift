import Foundation

/// The last log lines of each job's current run, for alerts that carry
/// "the tail of the run's log" (Sentry's event, a healthchecks `/fail` body).
/// The executable's log handler appends every line that names a job
/// (`job=` metadata, at the configured level); an alert observer clears a
/// job's lines when its run starts and reads them when it ends.
public final class RunLogTail: @unchecked Sendable {
    public static let shared = RunLogTail()

    private let lock = NSLock()
    private var lines: [String: [String]] = [:]
    /// Lines kept per job.
    public let capacity: Int

    public init(capacity: Int = 40) { self.capacity = capacity }

    public func append(job: String, line: String) {
        lock.lock()
        defer { lock.unlock() }
        var l = lines[job] ?? []
        l.append(line)
        if l.count > capacity { l.removeFirst(l.count - capacity) }
        lines[job] = l
    }

    public func clear(job: String) {
        lock.lock()
        lines[job] = nil
        lock.unlock()
    }

    /// The job's lines since its run started, oldest first; nil when none.
    public func tail(job: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard let l = lines[job], !l.isEmpty else { return nil }
        return l.joined(separator: "\n")
    }
}
