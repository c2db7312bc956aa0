import Core
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Talks to the service manager through `$NOTIFY_SOCKET` (the sd_notify
/// protocol), written directly rather than through libsystemd.
///
/// A message is one datagram of `KEY=VALUE` lines sent to a `SOCK_DGRAM` Unix
/// socket: a path (`/run/systemd/notify`) or an abstract name (`@name`, sent
/// with a leading NUL byte). Sending never blocks (`MSG_DONTWAIT`) and never
/// throws: the service manager being gone is no reason to stop a backup, so
/// failures are logged at debug level only.
///
/// The daemon sends `READY=1` once it is serving, `STATUS=` when the next job
/// changes, `WATCHDOG=1` at half of `watchdogInterval`, `RELOADING=1` (with
/// `MONOTONIC_USEC`, as `Type=notify-reload` in systemd ≥ 253 wants; older
/// versions ignore it) then `READY=1` around a reload, and `STOPPING=1` on
/// SIGTERM.
public struct SDNotifier: Sendable {
    /// `NOTIFY_SOCKET` as given (`/path` or `@abstract`).
    public let socketPath: String
    /// The watchdog timeout systemd expects pings within (`WATCHDOG_USEC`),
    /// nil when the watchdog is off or meant for another process
    /// (`WATCHDOG_PID` set to a pid other than ours). Ping at half of it.
    public let watchdogInterval: Duration?

    private static let logger = Logger.cairn("sdnotify")

    /// nil when `NOTIFY_SOCKET` is unset or empty (not started by systemd as
    /// `Type=notify`): then there is nobody to notify.
    public init?(env: [String: String] = ProcessInfo.processInfo.environment) {
        guard let path = env["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        // Only Unix sockets are supported (systemd ≥ 254 also allows vsock:…; not used on a host).
        guard path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        self.socketPath = path
        self.watchdogInterval = Self.watchdogInterval(env: env, pid: getpid())
    }

    /// `WATCHDOG_USEC` as a duration if the watchdog is meant for process
    /// `pid`: `WATCHDOG_PID` absent, or equal to `pid`. nil when unset,
    /// zero, or unparseable.
    public static func watchdogInterval(env: [String: String], pid: pid_t) -> Duration? {
        guard let usecText = env["WATCHDOG_USEC"], let usec = UInt64(usecText), usec > 0 else { return nil }
        if let pidText = env["WATCHDOG_PID"], !pidText.isEmpty {
            guard let wpid = pid_t(pidText), wpid == pid else { return nil }
        }
        return .microseconds(Int64(clamping: usec))
    }

    // MARK: - Messages

    /// `READY=1` plus a status line: startup is complete.
    public func ready(status: String) { send("READY=1\nSTATUS=\(Self.oneLine(status))") }

    /// `READY=1`: a reload is complete.
    public func ready() { send("READY=1") }

    /// `STATUS=…`, shown by `systemctl status` (newlines become spaces).
    public func status(_ s: String) { send("STATUS=\(Self.oneLine(s))") }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the current `CLOCK_MONOTONIC` in µs).
    public func reloading() { send("RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())") }

    /// `STOPPING=1`, with a status line if given.
    public func stopping(status: String? = nil) {
        if let status { send("STOPPING=1\nSTATUS=\(Self.oneLine(status))") } else { send("STOPPING=1") }
    }

    /// `WATCHDOG=1`: the daemon is alive.
    public func watchdog() { send("WATCHDOG=1") }

    /// Sends `message` (newline-separated `KEY=VALUE` assignments) as one
    /// datagram. Never throws; failures are logged at debug level.
    public func send(_ message: String) {
        do {
            try sendChecked(message)
        } catch {
            Self.logger.debug("sd_notify failed", metadata: ["socket": "\(socketPath)", "error": "\(error)"])
        }
    }

    /// Sends `message`, throwing `CairnError(.io)` on failure (for tests and
    /// callers that care).
    public func sendChecked(_ message: String) throws {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        // A path socket needs room for its terminating NUL; an abstract name does not have one.
        guard pathBytes.count + (abstract ? 0 : 1) <= capacity else {
            throw CairnError(.io, "NOTIFY_SOCKET \(socketPath): name too long for a Unix socket")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let addrLen = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + pathBytes.count + (abstract ? 0 : 1))

        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let flags = Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)
        #else
        let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        let flags = Int32(MSG_DONTWAIT)
        #endif
        guard fd >= 0 else { throw CairnError(.io, "NOTIFY_SOCKET \(socketPath): socket: \(errnoString())") }
        defer { close(fd) }
        let bytes = Array(message.utf8)
        let sent = bytes.withUnsafeBytes { buf in
            withUnsafePointer(to: &addr) { ap in
                ap.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    sendto(fd, buf.baseAddress, buf.count, flags, sa, addrLen)
                }
            }
        }
        guard sent >= 0 else { throw CairnError(.io, "NOTIFY_SOCKET \(socketPath): sendto: \(errnoString())") }
        guard sent == bytes.count else { throw CairnError(.io, "NOTIFY_SOCKET \(socketPath): short send (\(sent) of \(bytes.count) bytes)") }
    }

    // MARK: - Helpers

    /// A value for one assignment: line breaks would start a new assignment.
    static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }

    /// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC=` wants.
    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }
}
