import Core
import Foundation

/// Live progress of a restore: ciphertext bytes read of the manifest's total
/// (`dump.ciphertextSize`), fed by `RestoreJob.progress`.
public final class RestoreProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var _read: Int64 = 0
    private var started: ContinuousClock.Instant?
    public let total: Int64

    public init(total: Int64) { self.total = total }

    /// Records that `bytes` of the object have been read in all.
    public func read(_ bytes: Int64) {
        lock.lock()
        if started == nil { started = .now }
        _read = bytes
        lock.unlock()
    }

    public var progressLine: ProgressLine {
        lock.lock(); defer { lock.unlock() }
        let e = started.map { ContinuousClock.now - $0 } ?? .zero
        return ProgressLine(done: _read, total: total,
                            elapsed: e.inSeconds)
    }
}

extension RestoreProgress: JobProgress {
    public var line: String {
        let p = progressLine
        if p.done >= total && total > 0 { return "read all \(ByteFormat.human(total)); finishing (pg_restore, checks)" }
        return "read " + p.text
    }
    public var fraction: Double? { progressLine.fraction }
    public var fields: [String: String] { ["read": "\(progressLine.done)", "total": "\(total)"] }
}
