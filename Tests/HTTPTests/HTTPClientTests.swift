import Testing
import Foundation
@testable import HTTP
import Core

/// A real HTTP server (python3 stdlib) started for the suite; it exits when
/// its stdin closes.
final class EchoServer: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    let port: Int

    init() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("echo_server.py").path
        let out = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script]
        process.standardOutput = out
        process.standardInput = stdin
        try process.run()
        var line = Data()
        while true {
            let b = out.fileHandleForReading.readData(ofLength: 1)
            if b.isEmpty || b == Data("\n".utf8) { break }
            line.append(b)
        }
        guard let p = Int(String(decoding: line, as: UTF8.self)) else { throw CairnError(.internal, "echo server did not start") }
        port = p
    }

    var base: String { "http://127.0.0.1:\(port)" }
    deinit { try? stdin.fileHandleForWriting.close(); process.terminate() }
}

func pattern(_ n: Int) -> Data {
    let base = (0..<251).map { UInt8(($0 * 7 + 3) % 251) }
    var d = Data(capacity: n)
    while d.count < n { d.append(contentsOf: base.prefix(n - d.count)) }
    return d
}

func json(_ data: Data) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Suite(.serialized) struct HTTPClientTests {
    static let server = try! EchoServer()
    let client = HTTPClient()

    @Test func putsDataBodyWithContentLengthAndNoExpect() async throws {
        let body = pattern(3 << 20)
        var h = HTTPHeaders(); h["X-Test"] = "a  b"
        let r = try await client.send(HTTPRequest(method: "PUT", url: Self.server.base + "/echo?x=1", headers: h, body: .data(body)))
        #expect(r.status == 200)
        let j = try json(r.body)
        #expect(j["length"] as? Int == body.count)
        #expect(j["method"] as? String == "PUT")
        #expect(j["expect"] is NSNull)
        #expect(j["transfer_encoding"] is NSNull)
        let headers = try #require(j["headers"] as? [String: String])
        #expect(headers["x-test"] == "a  b")
        #expect(headers["content-length"] == String(body.count))
    }

    @Test func postsFileRangeBody() async throws {
        let path = NSTemporaryDirectory() + "cairn-http-\(UUID().uuidString)"
        let content = pattern(1_000_000)
        try content.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try await client.send(HTTPRequest(method: "POST", url: Self.server.base + "/echo", body: .file(path: path, offset: 1000, length: 500_000)))
        let j = try json(r.body)
        #expect(j["length"] as? Int == 500_000)
        let want = content.subdata(in: 1000..<501_000)
        #expect(j["sha256"] as? String == sha256hex(want))
        #expect(j["method"] as? String == "POST")
    }

    @Test func streamsChannelBody() async throws {
        let ch = ByteChannel(capacity: 64 << 10)
        let total = 2_000_000
        let producer = Task {
            let d = pattern(total)
            var off = 0
            while off < total { let n = min(10_000, total - off); try await ch.send(d.subdata(in: off..<off + n)); off += n }
            ch.finish()
        }
        let r = try await client.send(HTTPRequest(method: "PUT", url: Self.server.base + "/echo", body: .channel(ch, length: Int64(total))))
        try await producer.value
        let j = try json(r.body)
        #expect(j["length"] as? Int == total)
        #expect(j["sha256"] as? String == sha256hex(pattern(total)))
    }

    @Test func streamingGetDeliversWholeBodyWithBoundedBuffer() async throws {
        let n = 20 << 20
        let r = try await client.stream(HTTPRequest(method: "GET", url: Self.server.base + "/bytes?n=\(n)"), bufferSize: 256 << 10)
        #expect(r.status == 200)
        var got = 0
        var maxBuffered = 0
        let h = IncrementalSHA()
        for try await chunk in r.body {
            got += chunk.count
            h.update(chunk)
            maxBuffered = max(maxBuffered, r.body.bufferedBytes)
            if got < 1 << 20 { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(got == n)
        #expect(h.hex == r.headers["X-Sha256"])
        #expect(maxBuffered <= 256 << 10 + 64 << 10)
    }

    @Test func errorStatusIsReturnedWithBody() async throws {
        let r = try await client.send(HTTPRequest(method: "GET", url: Self.server.base + "/status?code=503"))
        #expect(r.status == 503)
        #expect(String(decoding: r.body, as: UTF8.self).contains("<Code>Test</Code>"))
        let s = try await client.stream(HTTPRequest(method: "GET", url: Self.server.base + "/status?code=404"))
        #expect(s.status == 404)
        #expect(String(decoding: try await s.collect(), as: UTF8.self).contains("Test"))
    }

    @Test func headRequestHasNoBody() async throws {
        let r = try await client.send(HTTPRequest(method: "HEAD", url: Self.server.base + "/echo"))
        #expect(r.status == 200)
        #expect(r.body.isEmpty)
        #expect(r.headers["Content-Type"] == "application/json")
    }

    @Test func connectionRefusedIsANetworkError() async throws {
        // a port nobody listens on: bind and close
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in(); addr.sin_family = sa_family_t(AF_INET); addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        close(fd)
        do {
            _ = try await client.send(HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)/x?secret=abc"))
            Issue.record("expected an error")
        } catch let e as CairnError {
            #expect(e.code == .network)
            #expect(!e.message.contains("secret=abc"))
            #expect(e.message.contains("127.0.0.1:\(port)/x"))
        }
    }

    @Test func droppedConnectionMidBodyFailsTheStream() async throws {
        let r = try await client.stream(HTTPRequest(method: "GET", url: Self.server.base + "/drop"))
        #expect(r.status == 200)
        await #expect(throws: CairnError.self) { _ = try await r.collect() }
    }

    @Test func lowSpeedTimeoutAbortsStalledTransfer() async throws {
        let c = HTTPClient(configuration: .init(lowSpeedLimit: 100, lowSpeedTime: 1))
        do {
            _ = try await c.send(HTTPRequest(method: "GET", url: Self.server.base + "/stall?s=5"))
            Issue.record("expected a timeout")
        } catch let e as CairnError {
            #expect(e.code == .timeout)
        }
    }

    @Test func cancellationAbortsTransfer() async throws {
        let t = Task { try await client.send(HTTPRequest(method: "GET", url: Self.server.base + "/stall?s=10")) }
        try await Task.sleep(for: .milliseconds(300))
        t.cancel()
        // Not a timeout or a (late) answer: the transfer ended because it was cancelled.
        do {
            let r = try await t.value
            Issue.record("the cancelled request completed: HTTP \(r.status)")
        } catch {
            #expect(error is CancellationError, "\(error)")
        }
    }

    @Test func connectionsAreReused() async throws {
        var ports = Set<Int>()
        for _ in 0..<5 {
            let r = try await client.send(HTTPRequest(method: "GET", url: Self.server.base + "/echo"))
            ports.insert(try json(r.body)["peer_port"] as! Int)
        }
        #expect(ports.count == 1)
    }

    /// A kept-alive connection that the server closed just as a PUT went out
    /// on it: curl rewinds the body and sends it again on a new connection
    /// (no "necessary data rewind wasn't possible"), for data and file bodies.
    @Test(arguments: ["data", "file"])
    func bodyIsRewoundWhenAReusedConnectionDies(kind: String) async throws {
        let payload = pattern(300_000)
        let path = NSTemporaryDirectory() + "cairn-rewind-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let body: HTTPRequestBody
        if kind == "data" {
            body = .data(payload)
        } else {
            try (Data(count: 1000) + payload).write(to: URL(fileURLWithPath: path))
            body = .file(path: path, offset: 1000, length: Int64(payload.count))
        }
        // A first request leaves a connection in the cache; the PUT reuses it.
        _ = try await client.send(HTTPRequest(method: "GET", url: Self.server.base + "/echo"))
        let token = UUID().uuidString
        let r = try await client.send(HTTPRequest(method: "PUT", url: Self.server.base + "/close-once?token=\(token)", body: body))
        #expect(r.status == 200)
        let info = try json(r.body)
        #expect(info["hits"] as? Int == 2)
        #expect(info["length"] as? Int == payload.count)
        #expect(info["sha256"] as? String == sha256hex(payload))
    }

    @Test func tlsVerificationFailsAgainstPlainServerWithClearError() async throws {
        do {
            _ = try await client.send(HTTPRequest(method: "GET", url: "https://127.0.0.1:\(Self.server.port)/echo"))
            Issue.record("expected an error")
        } catch let e as CairnError {
            #expect(e.code == .network || e.code == .tls)
        }
    }
}
