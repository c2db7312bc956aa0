import Foundation
import Core
import Logging

/// How log lines look on stderr. Only the executable bootstraps logging (design §4.9).
enum LogFormat: String, CaseIterable {
    /// `time=2026-11-27T13:00:00.000Z level=warning logger=cairn.s3 msg="retrying S3 request" attempt=1 op=PutObject`
    case logfmt
    /// `{"time":"…","level":"warning","logger":"cairn.s3","msg":"retrying S3 request","attempt":"1","op":"PutObject"}`
    case json
}

enum LogSetup {
    static func bootstrap(level: Logger.Level, format: LogFormat = .logfmt, env: [String: String] = ProcessInfo.processInfo.environment) {
        let journal = JournalStream.isStderr(env: env)
        LoggingSystem.bootstrap { label in
            var h = LineLogHandler(label: label, format: format, journal: journal)
            h.logLevel = level
            return h
        }
    }
}

/// stderr is the journal when `JOURNAL_STREAM` (set by systemd for a
/// service's stdout/stderr) names the device and inode of fd 2 (sd-daemon(3),
/// systemd.exec(5)): a copy inherited by a child whose stderr went elsewhere
/// does not count.
enum JournalStream {
    static func isStderr(env: [String: String]) -> Bool {
        guard let value = env["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    /// The sd-daemon priority prefix of a level (`<3>` for errors), which journald turns into the entry's priority.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}

/// One line per event: logfmt or JSON; to the journal with a priority
/// prefix and without a timestamp of its own (journald stamps each entry).
struct LineLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    let journal: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        var all = metadata
        if let explicit { all.merge(explicit) { $1 } }
        let s = Self.render(level: level, label: label, message: "\(message)", metadata: all, format: format,
                            time: journal ? nil : Self.timestamp(), journal: journal)
        FileHandle.standardError.write(Data(s.utf8))
        // The run's log tail, for alerts (Sentry, a ping's /fail body): lines that name a job.
        if case .string(let job)? = all["job"] {
            RunLogTail.shared.append(job: job, line: Self.render(level: level, label: label, message: "\(message)", metadata: all,
                                                                 format: .logfmt, time: Self.timestamp(), journal: false)
                                                         .trimmingCharacters(in: .newlines))
        }
    }

    static func render(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, format: LogFormat,
                       time: String?, journal: Bool) -> String {
        var fields: [(String, String)] = []
        if let time { fields.append(("time", time)) }
        fields += [("level", level.rawValue), ("logger", label), ("msg", message)]
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) where !["time", "level", "logger", "msg"].contains(k) {
            fields.append((k, "\(v)"))
        }
        var s = journal ? "<\(JournalStream.priority(level))>" : ""
        switch format {
        case .logfmt:
            s += fields.map { k, v in
                let text = oneLine(v)
                let needsQuotes = text.isEmpty || text.contains(" ") || text.contains("\"") || text.contains("=")
                return "\(k)=" + (needsQuotes ? "\"\(text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"" : text)
            }.joined(separator: " ")
        case .json:
            s += "{" + fields.map { k, v in "\(jsonString(k)):\(jsonString(v))" }.joined(separator: ",") + "}"
        }
        return s + "\n"
    }

    /// A message or value with a control character (a newline from a file
    /// name, an escape sequence) is escaped with `PathText`, so one log
    /// record stays one line; callers escape names themselves, which leaves
    /// nothing for this to do.
    static func oneLine(_ text: String) -> String {
        text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) } ? PathText.escape(text) : text
    }

    /// A JSON string literal (control characters escaped, so a record stays one line).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    static func timestamp() -> String {
        // clock_gettime, not time(): time() reads the coarse clock, which can lag a few ms behind.
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 32)
        strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%S", &tmv)
        return String(cString: buf) + String(format: ".%03dZ", Int(ts.tv_nsec / 1_000_000))
    }
}
