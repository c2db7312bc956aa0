import Core
import Foundation

/// Live counters of a migration, read by the CLI's progress bar and the daemon's log.
public final class MigrateProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var _phase = "walking"
    private var _totalFiles = 0
    private var _totalBytes: Int64 = 0
    private var _doneFiles = 0
    private var _doneBytes: Int64 = 0
    private var _uploadedBytes: Int64 = 0
    private var _failed = 0
    private var transferStarted: ContinuousClock.Instant?

    public init() {}

    public struct Snapshot: Sendable, Equatable {
        public var phase: String
        public var totalFiles: Int
        public var totalBytes: Int64
        public var doneFiles: Int
        /// Bytes of the files to process that are finished (uploaded, found present, or failed).
        public var doneBytes: Int64
        /// Bytes actually sent.
        public var uploadedBytes: Int64
        public var failed: Int
        /// Seconds since the transfers started.
        public var elapsed: Double
    }

    public var snapshot: Snapshot {
        lock.lock(); defer { lock.unlock() }
        let e = transferStarted.map { ContinuousClock.now - $0 } ?? .zero
        return Snapshot(phase: _phase, totalFiles: _totalFiles, totalBytes: _totalBytes, doneFiles: _doneFiles,
                        doneBytes: _doneBytes, uploadedBytes: _uploadedBytes, failed: _failed,
                        elapsed: e.inSeconds)
    }

    func setPhase(_ p: String) { lock.lock(); _phase = p; lock.unlock() }
    func begin(files: Int, bytes: Int64) {
        lock.lock()
        _phase = "uploading"; _totalFiles = files; _totalBytes = bytes; transferStarted = .now
        lock.unlock()
    }
    /// Files found to upload while the walk goes on: the totals grow with them.
    func planned(files: Int, bytes: Int64) { lock.lock(); _totalFiles += files; _totalBytes += bytes; lock.unlock() }
    /// Bytes sent (a part or a whole small file).
    func sent(_ n: Int64) { lock.lock(); _uploadedBytes += n; _doneBytes += n; lock.unlock() }
    /// A file is finished; `unsentBytes` are its bytes that were not sent (found present, resumed parts, failed).
    func fileFinished(unsentBytes: Int64, failed: Bool) {
        lock.lock(); _doneFiles += 1; _doneBytes += unsentBytes; if failed { _failed += 1 }; lock.unlock()
    }
    /// Bytes already at the destination (resumed parts) count as done.
    func skippedBytes(_ n: Int64) { lock.lock(); _doneBytes += n; lock.unlock() }

    /// Bytes per second sent so far.
    public var rate: Double {
        let s = snapshot
        return s.elapsed > 0.2 ? Double(s.uploadedBytes) / s.elapsed : 0
    }

    /// A bar such as `[#########-----------]` of `width` cells, by bytes.
    public func bar(width: Int = 24) -> String {
        let s = snapshot
        let frac = s.totalBytes > 0 ? Double(s.doneBytes) / Double(s.totalBytes) : (s.totalFiles > 0 ? Double(s.doneFiles) / Double(s.totalFiles) : 0)
        let filled = max(0, min(width, Int((frac * Double(width)).rounded(.down))))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    static func duration(_ secs: Double) -> String {
        guard secs.isFinite, secs >= 0 else { return "?" }
        let s = Int(secs.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}

extension MigrateProgress: JobProgress {
    public var fraction: Double? {
        let s = snapshot
        return s.phase == "uploading" && s.totalBytes > 0 ? min(1, Double(s.doneBytes) / Double(s.totalBytes)) : nil
    }

    public var line: String {
        let s = snapshot
        guard s.phase == "uploading" else { return s.phase }
        let rate = s.elapsed > 0.2 ? Double(s.uploadedBytes) / s.elapsed : 0
        let remaining = Double(max(0, s.totalBytes - s.doneBytes))
        let eta = rate > 0 ? MigrateProgress.duration(remaining / rate) : "?"
        var out = "\(s.doneFiles)/\(s.totalFiles) files, \(ByteFormat.human(s.doneBytes))/\(ByteFormat.human(s.totalBytes)), \(ByteFormat.human(Int64(rate)))/s, ETA \(eta)"
        if s.failed > 0 { out += ", \(s.failed) failed" }
        return out
    }

    public var fields: [String: String] {
        let s = snapshot
        return ["phase": s.phase, "files_done": "\(s.doneFiles)", "files_total": "\(s.totalFiles)",
                "bytes_done": "\(s.doneBytes)", "bytes_total": "\(s.totalBytes)", "bytes_sent": "\(s.uploadedBytes)",
                "failed": "\(s.failed)"]
    }
}
