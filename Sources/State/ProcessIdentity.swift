import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who is running a run: this host's boot, a process id and that process's
/// start time (clock ticks since boot, /proc/PID/stat field 22). Together
/// they name one process for good: a pid reused after the process ended has
/// another start time, and a reboot has another boot id.
public struct ProcessIdentity: Sendable, Equatable, CustomStringConvertible {
    public var bootID: String
    public var pid: Int32
    public var startTicks: UInt64

    /// The calling process.
    public static let current: ProcessIdentity? = of(pid: getpid())

    /// The process `pid` as it is now; nil when there is none (or /proc cannot tell).
    public static func of(pid: Int32) -> ProcessIdentity? {
        guard let boot = bootID, let ticks = startTicks(pid: pid) else { return nil }
        return ProcessIdentity(bootID: boot, pid: pid, startTicks: ticks)
    }

    /// Stored form: "BOOT:PID:TICKS".
    public var description: String { "\(bootID):\(pid):\(startTicks)" }

    public init(bootID: String, pid: Int32, startTicks: UInt64) {
        self.bootID = bootID; self.pid = pid; self.startTicks = startTicks
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, let pid = Int32(parts[1]), let ticks = UInt64(parts[2]) else { return nil }
        self.init(bootID: String(parts[0]), pid: pid, startTicks: ticks)
    }

    /// True when this process still runs: same boot, and the pid's start time
    /// unchanged. A process this one may not see in /proc (another user's,
    /// under systemd's `ProtectProc=invisible`, as the daemon runs) but that
    /// `kill(pid, 0)` finds counts as alive: its start time cannot be read,
    /// and a run is marked interrupted only when its process is known to be
    /// gone (otherwise the job's lock settles it, `markInterrupted`).
    public var isAlive: Bool {
        guard let boot = Self.bootID else { return true }   // cannot tell: assume it does
        guard boot == bootID else { return false }
        let pid = self.pid
        return Self.isAlive(recorded: startTicks, seen: Self.startTicks(pid: pid), probe: { Self.signalProbe(pid: pid) })
    }

    /// The decision, from what /proc shows (`seen`: the pid's start time, nil
    /// when /proc has no entry for it) and, only when it shows nothing, what
    /// `probe` (`kill(pid, 0)`: 0 or an errno) says.
    static func isAlive(recorded: UInt64, seen: UInt64?, probe: () -> Int32) -> Bool {
        if let seen { return seen == recorded }
        // ESRCH: no such process. EPERM: it exists, and belongs to someone this
        // process may not signal; 0 with no /proc entry: /proc hides it.
        return probe() != ESRCH
    }

    /// `kill(pid, 0)`: 0 when a signal could be sent, else the errno.
    static func signalProbe(pid: Int32) -> Int32 {
        guard pid > 0 else { return ESRCH }
        return kill(pid, 0) == 0 ? 0 : errno
    }

    static let bootID: String? = {
        guard let s = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8) else { return nil }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }()

    /// Field 22 of /proc/PID/stat (after the command name, which may hold spaces and parentheses).
    static func startTicks(pid: Int32) -> UInt64? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = s.lastIndex(of: ")") else { return nil }
        let fields = s[s.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
