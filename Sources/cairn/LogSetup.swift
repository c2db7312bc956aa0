import Foundation
import Core
import Logging

/// logfmt-style lines on stderr: `2026-11-27T13:00:00Z warning cairn.s3: retrying S3 request op=PutObject attempt=1`.
/// Only the executable bootstraps logging (design §4.9).
enum LogSetup {
    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var h = LogfmtHandler(label: label)
            h.logLevel = level
            return h
        }
    }
}

struct LogfmtHandler: LogHandler {
    let label: String
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
        var s = "\(Self.timestamp()) \(level) \(label): \(Self.oneLine("\(message)"))"
        for (k, v) in all.sorted(by: { $0.key < $1.key }) {
            let text = Self.oneLine("\(v)")
            let needsQuotes = text.contains(" ") || text.contains("\"") || text.isEmpty
            s += " \(k)=" + (needsQuotes ? "\"\(text.replacingOccurrences(of: "\"", with: "\\\""))\"" : text)
        }
        s += "\n"
        FileHandle.standardError.write(Data(s.utf8))
    }

    /// A message or value with a control character (a newline from a file
    /// name, an escape sequence) is escaped with `PathText`, so one log
    /// record stays one line; callers escape names themselves, which leaves
    /// nothing for this to do.
    static func oneLine(_ text: String) -> String {
        text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) } ? PathText.escape(text) : text
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
