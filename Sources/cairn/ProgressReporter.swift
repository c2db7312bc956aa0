import Core
import Foundation
import Jobs

/// Shows a running job's progress: on a TTY a line (with a bar for a
/// migration) redrawn twice a second; otherwise one plain line on stderr
/// ("cairn: JOB: …", for logs and the journal) every 10 seconds and at every
/// 10 % of the total (`ProgressLogThrottle`).
final class ProgressReporter: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private let tty = isatty(2) == 1
    private let job: String

    init(job: String) { self.job = job }

    func start(_ progress: any JobProgress) {
        let tty = self.tty, job = self.job
        let interval: Duration = tty ? .milliseconds(500) : .seconds(1)
        let t = Task {
            let start = ContinuousClock.now
            var throttle = ProgressLogThrottle()
            while !Task.isCancelled {
                try? await Sleep.for(interval)
                if Task.isCancelled { break }
                if tty {
                    var cols = winsize()
                    let width = ioctl(2, UInt(TIOCGWINSZ), &cols) == 0 && cols.ws_col > 40 ? Int(cols.ws_col) : 100
                    var text = (progress as? MigrateProgress).map { "\($0.bar(width: 20)) " } ?? "  "
                    text += progress.line
                    if text.count > width - 1 { text = String(text.prefix(width - 1)) }
                    FileHandle.standardError.write(Data(("\r" + text + "\u{1B}[K").utf8))
                } else {
                    let e = ContinuousClock.now - start
                    let elapsed = e.inSeconds
                    guard throttle.shouldLog(elapsed: elapsed, fraction: progress.fraction) else { continue }
                    FileHandle.standardError.write(Data("cairn: \(job): \(progress.line)\n".utf8))
                }
            }
        }
        lock.withLock {
            task?.cancel()
            task = t
        }
    }

    func stop() {
        let t: Task<Void, Never>? = lock.withLock { let t = task; task = nil; return t }
        guard let t else { return }
        t.cancel()
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// An error as the run history records it: one line; a cancellation says so.
func historyText(_ error: any Error) -> String {
    if error is CancellationError { return "cancelled (interrupted by a signal)" }
    return "\(error)"
}
