import CLinux
import Core
import Foundation
import Logging

/// One line of the control protocol: JSON, newline-terminated, both ways.
///
/// Requests: `{"op":"run","job":"db","wait":true}`, `{"op":"status"}`.
/// Answers to `run`: `accepted` or `queued` (with `run`), or `refused`; with
/// `wait`, then `started`, `progress` (about every second), `retry`, and
/// finally `finished` with `result` and, on failure, `error` and `code`.
public struct ControlMessage: Codable, Sendable, Equatable {
    public var op: String?
    public var type: String?
    public var job: String?
    public var wait: Bool?
    public var run: Int?
    public var attempt: Int?
    public var line: String?
    public var result: String?
    public var summary: String?
    public var error: String?
    /// The `ErrorCode` raw value of a failure, so the client exits with the right status.
    public var code: String?
    public var at: Date?
    /// `status`: one entry per job.
    public var jobs: [JobStatus]?

    public init(op: String? = nil, type: String? = nil, job: String? = nil, wait: Bool? = nil, run: Int? = nil,
                attempt: Int? = nil, line: String? = nil, result: String? = nil, summary: String? = nil,
                error: String? = nil, code: String? = nil, at: Date? = nil, jobs: [JobStatus]? = nil) {
        self.op = op; self.type = type; self.job = job; self.wait = wait; self.run = run; self.attempt = attempt
        self.line = line; self.result = result; self.summary = summary; self.error = error; self.code = code
        self.at = at; self.jobs = jobs
    }

    public struct JobStatus: Codable, Sendable, Equatable {
        public var job: String
        /// "running", "waiting" (for a slot), "queued", "retrying", or "idle".
        public var state: String
        public var next: Date?
        public var progress: String?
        public init(job: String, state: String, next: Date?, progress: String?) {
            self.job = job; self.state = state; self.next = next; self.progress = progress
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    func encodedLine() -> Data {
        var d = (try? Self.encoder.encode(self)) ?? Data("{}".utf8)
        d.append(0x0A)
        return d
    }
}

/// A connected control-socket peer (either side).
public final class ControlConnection: @unchecked Sendable {
    let fd: Int32
    /// The peer's uid and pid (SO_PEERCRED), for the log.
    public let peerUID: uid_t
    public let peerPID: pid_t
    private let lock = NSLock()
    private var closed = false
    private var reading = false
    private var fdClosed = false
    private var buffer = Data()

    init(fd: Int32) {
        self.fd = fd
        var uid: uid_t = 0, pid: pid_t = 0
        if cairn_peer_credentials(fd, &uid, &pid) != 0 { uid = uid_t.max; pid = 0 }
        peerUID = uid
        peerPID = pid
    }

    deinit { close() }

    /// Sends one message; false when the peer is gone.
    @discardableResult
    public func send(_ message: ControlMessage) async -> Bool {
        let data = message.encodedLine()
        return (try? await runBlocking { [self] in self.writeAll(data) }) ?? false
    }

    private func writeAll(_ data: Data) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if closed { return false }
        return data.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
    }

    /// Reads the next message (blocking, on a pool thread); nil at end of stream.
    public func receive() async throws -> ControlMessage? {
        try await runBlocking { [self] in try self.readMessage() }
    }

    private func readMessage() throws -> ControlMessage? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex..<nl]
                buffer = Data(buffer[(nl + 1)...])
                if line.isEmpty { continue }
                do { return try ControlMessage.decoder.decode(ControlMessage.self, from: line) } catch {
                    throw CairnError(.usage, "control socket: malformed message: \(String(decoding: line.prefix(200), as: UTF8.self))")
                }
            }
            guard buffer.count < 1 << 20 else { throw CairnError(.usage, "control socket: message longer than 1 MiB") }
            var chunk = [UInt8](repeating: 0, count: 4096)
            guard let n = receiveChunk(&chunk) else { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw CairnError(.timeout, "control socket: no message within the time limit") }
                throw CairnError(.io, "control socket: read failed: \(errnoString())")
            }
            if n == 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// One recv(2), or nil when the connection is closed. A `close()` while
    /// the recv blocks only shuts the socket down (which ends the recv); the
    /// descriptor is closed here, after it, so a recv never runs on a number
    /// that another thread has reused.
    private func receiveChunk(_ chunk: inout [UInt8]) -> Int? {
        lock.lock()
        if closed { lock.unlock(); return nil }
        reading = true
        lock.unlock()
        let n = recv(fd, &chunk, chunk.count, 0)
        let err = errno
        lock.lock()
        reading = false
        if closed && !fdClosed { fdClosed = true; Glibc.close(fd) }
        lock.unlock()
        errno = err
        return n
    }

    /// Sets a receive time limit (the server uses it for the first line).
    func setReceiveTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public func close() {
        lock.lock(); defer { lock.unlock() }
        if closed { return }
        closed = true
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        if !reading { fdClosed = true; Glibc.close(fd) }
    }
}

/// The daemon's side: a Unix stream socket, mode 0660, accepting on a thread
/// of its own; each connection's first message goes to `handler`.
public final class ControlServer: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false
    /// Whether the accept thread runs: then it, not `stop()`, closes `fd`
    /// when it exits. Closing the listening descriptor under a thread that may
    /// call accept() on it again let that thread accept (and drop) a
    /// connection on whatever socket another thread had opened under the same
    /// number meanwhile: a test's client saw its connection closed at once.
    private var accepting = false
    private let logger = Logger.cairn("control")

    /// Binds the socket. Fails when another daemon answers on it; a stale
    /// socket (one nobody answers on) is replaced. Anything else at `path`
    /// (a file, directory, link) is never removed: `.config`, naming it.
    public init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: dir) {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            } catch {
                throw CairnError(.io, "control socket: cannot create directory \(dir): \(error.localizedDescription)")
            }
        }
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw CairnError(.config, "control socket path \(path) is \(Self.describe(mode: st.st_mode)), not a socket: cairn serve removes only a stale socket there (move it away or set socket in [daemon])")
            }
            do {
                let probe = try ControlClient.connect(path: path)
                probe.close()
                throw CairnError(.busy, "another cairn serve is running (it answers on \(path))")
            } catch let e as CairnError where e.code == .notFound {
                unlink(path)   // a socket nobody answers on: left by a daemon that died
            }
        }
        var addr = try unixAddress(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CairnError(.io, "control socket: socket(): \(errnoString())") }
        // No umask() around bind: the umask is process-wide, and files other
        // threads create meanwhile would get it. The socket starts with the
        // process's umask (systemd's UMask=0077 → 0700: nobody else can
        // connect) and is opened to the group by the chmod below.
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let why = errnoString()
            Glibc.close(fd)
            throw CairnError(.io, "control socket: cannot bind \(path): \(why)")
        }
        guard chmod(path, 0o660) == 0 else {
            let why = errnoString()
            Glibc.close(fd)
            throw CairnError(.io, "control socket: cannot chmod \(path): \(why)")
        }
        guard listen(fd, 16) == 0 else {
            let why = errnoString()
            Glibc.close(fd)
            throw CairnError(.io, "control socket: cannot listen on \(path): \(why)")
        }
    }

    /// What a non-socket file at the socket path is, for the error.
    static func describe(mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symbolic link"
        case S_IFIFO: return "a named pipe"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        default: return "a file of type \(String(mode & S_IFMT, radix: 8))"
        }
    }

    /// Accepts connections on a dedicated thread until `stop()`. A client
    /// that sends no first message within `firstMessageTimeout` seconds is
    /// refused (an idle connection must not hold a task forever).
    public func start(firstMessageTimeout: Int = 10, handler: @escaping @Sendable (ControlMessage, ControlConnection) async -> Void) {
        let fd = self.fd, logger = self.logger
        lock.lock()
        if stopped || accepting { lock.unlock(); return }
        accepting = true
        lock.unlock()
        let thread = Thread { [self] in
            defer { Glibc.close(fd) }
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    if self.isStopped { return }
                    logger.error("control socket: accept failed", metadata: ["error": "\(errnoString())"])
                    usleep(100_000)
                    continue
                }
                if self.isStopped { Glibc.close(c); return }
                _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                let conn = ControlConnection(fd: c)
                conn.setReceiveTimeout(seconds: firstMessageTimeout)
                Task {
                    do {
                        guard let request = try await conn.receive() else { conn.close(); return }
                        conn.setReceiveTimeout(seconds: 0)
                        await handler(request, conn)
                    } catch {
                        await conn.send(ControlMessage(type: "refused", error: "\(error)", code: ErrorCode.usage.rawValue))
                    }
                    conn.close()
                }
            }
        }
        thread.name = "cairn-control"
        thread.start()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    /// Stops accepting and removes the socket file. The accept thread (when
    /// started) closes the descriptor as it exits; `shutdown` wakes it and
    /// makes every later accept() on it fail.
    public func stop() {
        lock.lock()
        let was = stopped
        stopped = true
        let threadCloses = accepting
        lock.unlock()
        if was { return }
        unlink(path)
        Glibc.shutdown(fd, Int32(SHUT_RDWR))   // wakes the blocked accept()
        if !threadCloses { Glibc.close(fd) }
    }
}

/// The CLI's side.
public enum ControlClient {
    /// Connects to a running daemon; nil when none listens there (no socket file, or a stale one).
    public static func connectIfRunning(path: String) throws -> ControlConnection? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do { return try connect(path: path) } catch let e as CairnError where e.code == .notFound {
            return nil
        }
    }

    static func connect(path: String) throws -> ControlConnection {
        var addr = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CairnError(.io, "control socket: socket(): \(errnoString())") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            let err = errno
            let why = errnoString()
            Glibc.close(fd)
            switch err {
            case ENOENT, ECONNREFUSED: throw CairnError(.notFound, "no cairn serve answers on \(path)")
            case EACCES, EPERM: throw CairnError(.io, "control socket \(path): permission denied (the socket is mode 0660: run as the daemon's user or a member of its group)")
            default: throw CairnError(.io, "control socket \(path): \(why)")
            }
        }
        return ControlConnection(fd: fd)
    }
}

private func unixAddress(_ path: String) throws -> sockaddr_un {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: addr.sun_path)
    guard bytes.count < capacity else {
        throw CairnError(.config, "control socket path is \(bytes.count) bytes, longer than the \(capacity - 1) a Unix socket allows: \(path)")
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return addr
}
