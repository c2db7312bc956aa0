import Core
import Foundation

/// Live counters of a running backup, read by progress reporters: bytes
/// dumped against the database's size on disk (`pg_database_size`, taken
/// with the snapshot; an estimate: a dump has no indexes but is not
/// compressed), then, once the dump has ended, the upload's last parts.
public final class BackupProgress: @unchecked Sendable {
    public enum Phase: String, Sendable {
        case starting
        case dumping
        /// pg_dump has ended; the last parts are being uploaded.
        case completingUpload = "completing upload"
    }

    private let lock = NSLock()
    private var _dumped: Int64 = 0
    private var _uploaded: Int64 = 0
    private var _parts = 0
    private var _estimate: Int64?
    private var _phase = Phase.starting
    private var dumpStarted: ContinuousClock.Instant?
    public let started = Date()

    public init() {}

    func estimate(databaseSize: Int64) {
        lock.lock(); _estimate = databaseSize > 0 ? databaseSize : nil; _phase = .dumping; dumpStarted = .now; lock.unlock()
    }
    func addDumped(_ n: Int64) { lock.lock(); _dumped += n; lock.unlock() }
    func addPart(_ bytes: Int64) { lock.lock(); _uploaded += bytes; _parts += 1; lock.unlock() }
    func dumpEnded() { lock.lock(); _phase = .completingUpload; lock.unlock() }

    public struct Snapshot: Sendable, Equatable {
        public var phase: Phase
        public var dumped: Int64
        public var uploaded: Int64
        public var parts: Int
        /// `pg_database_size` of the database being dumped, if known.
        public var estimate: Int64?
        /// Seconds since the dump started.
        public var elapsed: Double

        public init(phase: Phase, dumped: Int64, uploaded: Int64, parts: Int, estimate: Int64?, elapsed: Double) {
            self.phase = phase; self.dumped = dumped; self.uploaded = uploaded; self.parts = parts
            self.estimate = estimate; self.elapsed = elapsed
        }

        public var dump: ProgressLine { ProgressLine(done: dumped, total: estimate, elapsed: elapsed, estimated: true) }

        /// "dumped 1.2 GiB of ~3.4 GiB (35%), 40.0 MiB/s, ETA 1m05s; uploaded 300 MiB in 3 part(s), ratio 4.10"
        public var line: String {
            let ratio = uploaded > 0 ? Double(dumped) / Double(uploaded) : 0
            let upload = "uploaded \(ByteFormat.human(uploaded)) in \(parts) part(s), ratio \(String(format: "%.2f", ratio))"
            switch phase {
            case .starting: return "starting (snapshot, pg_dump)"
            case .dumping: return "dumped \(dump.text); \(upload)"
            case .completingUpload:
                return "dump ended (\(ByteFormat.human(dumped)) dumped); completing upload: \(upload)"
            }
        }
    }

    public var snapshot: Snapshot {
        lock.lock(); defer { lock.unlock() }
        let e = dumpStarted.map { ContinuousClock.now - $0 } ?? .zero
        return Snapshot(phase: _phase, dumped: _dumped, uploaded: _uploaded, parts: _parts, estimate: _estimate,
                        elapsed: e.inSeconds)
    }
}

extension BackupProgress: JobProgress {
    public var line: String { snapshot.line }
    public var fraction: Double? {
        let s = snapshot
        return s.phase == .dumping ? s.dump.fraction : nil
    }
    public var fields: [String: String] {
        let s = snapshot
        var f = ["phase": s.phase.rawValue, "dumped": "\(s.dumped)", "uploaded": "\(s.uploaded)", "parts": "\(s.parts)"]
        if let e = s.estimate { f["database_size"] = "\(e)" }
        return f
    }
}
