import Core
import Foundation
import Testing
@testable import Scheduler

/// Collects WallTimer events with the wall-clock time each one arrived.
final class TimerEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [(WallTimer.Event, Date)] = []
    func add(_ e: WallTimer.Event) { lock.lock(); events.append((e, Date())); lock.unlock() }
    var all: [(WallTimer.Event, Date)] { lock.lock(); defer { lock.unlock() }; return events }
}

/// Waits for `condition`, at most `timeout` seconds × 4 (a hang guard: the
/// suite shares two cores with other suites, and no test asserts speed).
func waitUntil(_ timeout: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout * 4)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

@Suite struct WallTimerTests {
    @Test func firesAtTheInstantNeverBefore() async throws {
        let events = TimerEvents()
        let timer = try WallTimer { events.add($0) }
        defer { timer.stop() }
        let at = Date().addingTimeInterval(0.3)
        timer.arm(at: at)
        #expect(await waitUntil(10) { !events.all.isEmpty })
        let first = try #require(events.all.first)
        if case .fired = first.0 {} else { Issue.record("expected .fired, got \(first.0)") }
        #expect(first.1 >= at)
    }

    @Test func reArmingReplacesTheInstantAndNilDisarms() async throws {
        let events = TimerEvents()
        let timer = try WallTimer { events.add($0) }
        defer { timer.stop() }
        timer.arm(at: Date().addingTimeInterval(3600))
        let soon = Date().addingTimeInterval(0.2)
        timer.arm(at: soon)
        #expect(await waitUntil(10) { events.all.count == 1 })
        #expect(events.all.first!.1 >= soon)
        // Disarmed: nothing arrives although the old instant would have passed.
        timer.arm(at: Date().addingTimeInterval(0.2))
        timer.arm(at: nil)
        try await Task.sleep(for: .milliseconds(600))
        #expect(events.all.count == 1)
        // An instant in the past fires at once.
        timer.arm(at: Date().addingTimeInterval(-10))
        #expect(await waitUntil(10) { events.all.count == 2 })
    }
}

@Suite final class ControlSocketTests {
    /// One directory per test, removed with the suite instance: the servers
    /// create each socket's parent directory, and a test run used to leave
    /// ~500 of them in /tmp.
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("cs-\(UUID().uuidString.prefix(8))")
    var made = 0

    deinit { try? FileManager.default.removeItem(at: base) }

    func tempPath() -> String {
        made += 1
        return base.appendingPathComponent("\(made)/cairn.sock").path
    }

    @Test func roundTripModeAndPeerCredentials() async throws {
        let path = tempPath()
        let server = try ControlServer(path: path)
        defer { server.stop() }
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o660)
        // The first-message limit is the server's guard against idle clients, not
        // what this test is about: a test process running many suites on two
        // cores has been seen to take over 10 s to get from connect() to send().
        server.start(firstMessageTimeout: 600) { request, conn in
            await conn.send(ControlMessage(type: "echo", job: request.job, run: Int(conn.peerUID)))
            await conn.send(ControlMessage(type: "finished", job: request.job, result: "ok"))
        }
        let client = try #require(try ControlClient.connectIfRunning(path: path))
        defer { client.close() }
        #expect(await client.send(ControlMessage(op: "run", job: "db ünïcode", wait: true)))
        let echo = try #require(try await client.receive())
        #expect(echo.type == "echo" && echo.job == "db ünïcode" && echo.run == Int(getuid()))
        let fin = try #require(try await client.receive())
        #expect(fin.result == "ok")
        #expect(try await client.receive() == nil)       // the server closed the connection
    }

    @Test func aSecondServerIsRefusedAndAStaleSocketIsReplaced() async throws {
        let path = tempPath()
        let first = try ControlServer(path: path)
        first.start { _, _ in }
        do {
            _ = try ControlServer(path: path)
            Issue.record("a second server bound a live socket")
        } catch let e as CairnError {
            #expect(e.code == .busy && e.message.contains("another cairn serve"))
        }
        first.stop()
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try ControlClient.connectIfRunning(path: path) == nil)   // no daemon: the CLI runs in-process

        // A socket file nobody listens on (a killed daemon) is replaced.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let b = Array(path.utf8); raw.copyBytes(from: b); raw[b.count] = 0
        }
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(fd)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try ControlClient.connectIfRunning(path: path) == nil)
        let again = try ControlServer(path: path)
        again.stop()
    }

    @Test func malformedRequestsGetAOneLineRefusal() async throws {
        let path = tempPath()
        let server = try ControlServer(path: path)
        defer { server.stop() }
        server.start { _, conn in await conn.send(ControlMessage(type: "unexpected")) }
        let client = try #require(try ControlClient.connectIfRunning(path: path))
        defer { client.close() }
        let junk = Data("this is not json\n".utf8)
        _ = junk.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let reply = try #require(try await client.receive())
        #expect(reply.type == "refused" && reply.error?.contains("malformed") == true)
    }

    /// A server stopped while its accept thread is busy must never touch a
    /// descriptor number reused by a server opened after it: a stopped
    /// server's thread once accepted (and dropped) the next server's client on
    /// the reused number (seen in a full test run: a client's first send failed).
    @Test func aStoppedServerNeverTakesTheNextServersClients() async throws {
        for i in 0..<500 {
            let old = try ControlServer(path: tempPath())
            old.start { _, _ in }
            // A connection wakes the old server's accept thread: stop() lands
            // while it is between accept() calls.
            let c = try ControlClient.connectIfRunning(path: old.path)
            old.stop()
            c?.close()
            let next = try ControlServer(path: tempPath())   // likely gets the old number
            next.start(firstMessageTimeout: 600) { request, conn in
                await conn.send(ControlMessage(type: "echo", job: request.job))
            }
            let client = try #require(try ControlClient.connectIfRunning(path: next.path))
            let sent = await client.send(ControlMessage(op: "status", job: "j\(i)"))
            let echo = try await client.receive()
            client.close()
            next.stop()
            #expect(sent && echo?.job == "j\(i)", "connection \(i) was dropped")
            if echo == nil { break }
        }
    }

    @Test func aTooLongPathIsAConfigError() {
        let long = "/tmp/" + String(repeating: "x", count: 120) + "/cairn.sock"
        #expect(throws: CairnError.self) { _ = try ControlServer(path: long) }
    }
}
