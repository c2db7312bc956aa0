import Foundation

/// The kernel's name of a thread (what `top -H`, `ps -L` and
/// /proc/PID/task/TID/comm show). Foundation's `Thread.name` does not reach
/// the kernel on Linux, so Cairn's own long-lived threads name themselves.
public enum ThreadName {
    /// Names the calling thread (at most 15 bytes are kept). Best effort.
    public static func set(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// The calling thread's name.
    public static var current: String {
        guard let d = FileManager.default.contents(atPath: "/proc/thread-self/comm") else { return "" }
        return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .newlines)
    }
}
