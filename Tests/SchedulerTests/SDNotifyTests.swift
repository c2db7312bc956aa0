import Foundation
@testable import Scheduler
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A bound `SOCK_DGRAM` Unix socket standing in for systemd's notify socket.
final class NotifyReceiver {
    let fd: Int32
    /// What goes into NOTIFY_SOCKET: a path or `@name`.
    let address: String
    private let dir: String?

    /// A path socket in a fresh temp dir, or an abstract one when `abstract`.
    init(abstract: Bool = false) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes: [UInt8]
        if abstract {
            let name = "cairn-test-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            address = "@" + name
            bytes = [0] + Array(name.utf8)
            dir = nil
        } else {
            let d = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-notify-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            dir = d
            address = d + "/notify"
            bytes = Array(address.utf8) + [0]
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let len = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard rc == 0 else { let e = errno; close(fd); throw POSIXError(.init(rawValue: e)!) }
    }

    deinit {
        close(fd)
        if let dir { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// The next datagram, waiting up to `timeoutMs`; nil if none came.
    func receive(timeoutMs: Int32 = 2000) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) == 1 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self)
    }
}

@Suite struct SDNotifyTests {
    @Test func eachMessageKindArrivesAsOneDatagramWithExactContent() throws {
        let r = try NotifyReceiver()
        let n = try #require(SDNotifier(env: ["NOTIFY_SOCKET": r.address]))

        n.ready(status: "next: db-backup at 2026-01-02 03:00 UTC")
        #expect(r.receive() == "READY=1\nSTATUS=next: db-backup at 2026-01-02 03:00 UTC")
        n.status("idle")
        #expect(r.receive() == "STATUS=idle")
        n.watchdog()
        #expect(r.receive() == "WATCHDOG=1")
        n.ready()
        #expect(r.receive() == "READY=1")
        n.stopping(status: "stopping: waiting for 1 job")
        #expect(r.receive() == "STOPPING=1\nSTATUS=stopping: waiting for 1 job")
        n.stopping()
        #expect(r.receive() == "STOPPING=1")
        n.send("EXTEND_TIMEOUT_USEC=5000000")
        #expect(r.receive() == "EXTEND_TIMEOUT_USEC=5000000")
        #expect(r.receive(timeoutMs: 50) == nil)
    }

    @Test func reloadingCarriesTheCurrentMonotonicClock() throws {
        let r = try NotifyReceiver()
        let n = try #require(SDNotifier(env: ["NOTIFY_SOCKET": r.address]))
        let before = SDNotifier.monotonicMicroseconds()
        n.reloading()
        let after = SDNotifier.monotonicMicroseconds()
        let msg = try #require(r.receive())
        let lines = msg.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "RELOADING=1")
        let usec = try #require(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil })
        #expect(usec >= before && usec <= after)
    }

    @Test func statusWithLineBreaksStaysOneAssignment() throws {
        let r = try NotifyReceiver()
        let n = try #require(SDNotifier(env: ["NOTIFY_SOCKET": r.address]))
        n.status("a\nREADY=1\r\nb")
        #expect(r.receive() == "STATUS=a READY=1 b")
    }

    @Test func abstractNamespaceSocketReceivesMessages() throws {
        let r = try NotifyReceiver(abstract: true)
        #expect(r.address.hasPrefix("@"))
        let n = try #require(SDNotifier(env: ["NOTIFY_SOCKET": r.address]))
        n.ready(status: "up")
        #expect(r.receive() == "READY=1\nSTATUS=up")
        n.watchdog()
        #expect(r.receive() == "WATCHDOG=1")
    }

    @Test func nilWhenNotifySocketIsUnsetOrEmpty() {
        #expect(SDNotifier(env: [:]) == nil)
        #expect(SDNotifier(env: ["NOTIFY_SOCKET": ""]) == nil)
        #expect(SDNotifier(env: ["NOTIFY_SOCKET": "relative/path"]) == nil)
    }

    @Test func sendingToAMissingSocketNeitherThrowsNorCrashes() throws {
        let n = try #require(SDNotifier(env: ["NOTIFY_SOCKET": "/nonexistent-dir-\(UUID().uuidString)/notify"]))
        n.ready(status: "nobody listens")   // logged at debug, no throw
        #expect(throws: (any Error).self) { try n.sendChecked("READY=1") }
        let tooLong = try #require(SDNotifier(env: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]))
        #expect(throws: (any Error).self) { try tooLong.sendChecked("READY=1") }
    }

    @Test func watchdogIntervalHonoursWatchdogPid() throws {
        let me = getpid()
        #expect(SDNotifier.watchdogInterval(env: ["WATCHDOG_USEC": "60000000"], pid: me) == .seconds(60))
        #expect(SDNotifier.watchdogInterval(env: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(me)"], pid: me) == .seconds(30))
        #expect(SDNotifier.watchdogInterval(env: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(me + 1)"], pid: me) == nil)
        #expect(SDNotifier.watchdogInterval(env: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "junk"], pid: me) == nil)
        #expect(SDNotifier.watchdogInterval(env: ["WATCHDOG_USEC": "0"], pid: me) == nil)
        #expect(SDNotifier.watchdogInterval(env: ["WATCHDOG_USEC": "soon"], pid: me) == nil)
        #expect(SDNotifier.watchdogInterval(env: [:], pid: me) == nil)
        #expect(SDNotifier.watchdogInterval(env: ["WATCHDOG_USEC": "1500"], pid: me) == .microseconds(1500))

        let r = try NotifyReceiver()
        let n = try #require(SDNotifier(env: ["NOTIFY_SOCKET": r.address, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "\(me)"]))
        #expect(n.watchdogInterval == .seconds(20))
        let other = try #require(SDNotifier(env: ["NOTIFY_SOCKET": r.address, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"]))
        #expect(other.watchdogInterval == nil)
        let none = try #require(SDNotifier(env: ["NOTIFY_SOCKET": r.address]))
        #expect(none.watchdogInterval == nil)
    }
}
