import Core
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process spawned with `posix_spawn`, with its standard streams
/// joined to byte channels and every blocking read, write and wait on a
/// dedicated thread of its own (never the cooperative pool, nor the shared
/// blocking pool that a full pipeline could exhaust).
///
/// - stdout, when it goes to a `ByteChannel`, is read in chunks of at most
///   `chunkSize` bytes and sent with `sendBlocking`: a slow consumer holds the
///   pipe full and so back-pressures the child. The channel is finished only
///   after the child has been reaped: cleanly on EOF + exit status 0, with the
///   process error otherwise (non-zero status, signal, cancellation).
/// - stdin, when it comes from a `ByteChannel`, is written in full; if the
///   child stops reading (EPIPE) the channel is cancelled so the producer stops.
/// - stderr is always drained; the last `stderrTailLimit` bytes are kept for
///   error messages, and so is the first line that contains `ERROR:` (a
///   PostgreSQL error, which pg_restore and psql print before the statement
///   that failed): the failure names that line rather than the last one.
/// - The child is always reaped (a dedicated thread waits for it), so it never
///   stays a zombie, whether or not anyone calls `wait()`.
///
/// The child runs in its own process group with default signal dispositions
/// and an empty signal mask; `terminate()` signals the whole group (pg_restore
/// `--jobs` workers included): SIGTERM, then SIGKILL after the grace period.
///
/// Spawning a child ignores SIGPIPE in this process (once): a write to a pipe
/// whose reader died must fail with EPIPE, not kill the daemon.
public final class ChildProcess: @unchecked Sendable {
    public enum Input: Sendable {
        case null
        case channel(ByteChannel)
        case file(String)
    }

    public enum Output: Sendable {
        case null
        case channel(ByteChannel)
        /// Created or truncated, mode 0600.
        case file(String)
    }

    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        public var isSuccess: Bool { self == .exited(0) }
        public var description: String {
            switch self {
            case .exited(let s): return "exited with status \(s)"
            case .signaled(let s): return "was killed by signal \(s)\(signalName(s).map { " (\($0))" } ?? "")"
            }
        }
    }

    /// A short name for messages (e.g. "pg_dump").
    public let name: String
    public let pid: pid_t

    private let cond = NSCondition()
    private var termination: Termination?
    private var pumpsRunning = 0
    private var stdinPumpRunning = false
    private var signalSent = false
    private var cancelled = false
    private var inputFailure: (any Error)?
    private var inputUnread = false
    private var stdoutReadError: String?
    private var stderrTail: [UInt8] = []
    private let stderrTailLimit: Int
    private var stderrDone = false
    /// The current, unfinished stderr line while no `ERROR:` line has been seen.
    private var stderrLine: [UInt8] = []
    private var firstErrorLine: String?
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let stdinChannel: ByteChannel?
    private let stdoutChannel: ByteChannel?

    private static let spawnLock = NSLock()

    /// Spawns `executable` (a path) with `arguments` (argv[1...]).
    /// - Parameter environment: the child's whole environment; nil inherits this process's.
    public init(
        name: String? = nil,
        executable: String,
        arguments: [String],
        environment: [String: String]? = nil,
        stdin: Input = .null,
        stdout: Output = .null,
        chunkSize: Int = 1 << 20,
        stderrTailLimit: Int = 64 << 10
    ) throws {
        _ = ProcessSignals.ignoreSIGPIPE
        ChildProcess.spawnLock.lock()
        defer { ChildProcess.spawnLock.unlock() }
        let name = name ?? (executable as NSString).lastPathComponent
        self.name = name
        self.stderrTailLimit = stderrTailLimit

        var parentFDs: [Int32] = []        // our ends, kept
        var childFDs: [Int32] = []         // child's ends, closed after spawn
        func closeAll(_ fds: [Int32]) { for fd in fds { _ = Glibc.close(fd) } }

        func makePipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            // pipe2 is not visible from Swift's Glibc module: pipe + FD_CLOEXEC,
            // under `spawnLock` so that no other ChildProcess spawns in between.
            guard pipe(&fds) == 0,
                  fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0,
                  fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
                let e = errno
                closeAll(parentFDs + childFDs)
                throw CairnError(.process, "cannot start \(name): pipe: \(errnoString(e))")
            }
            return (fds[0], fds[1])
        }
        func openFile(_ path: String, _ flags: Int32) throws -> Int32 {
            let fd = Glibc.open(path, flags | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let e = errno
                closeAll(parentFDs + childFDs)
                throw CairnError(.io, "cannot start \(name): cannot open \(path): \(errnoString(e))")
            }
            return fd
        }

        // stdin
        var stdinFD: Int32 = -1, stdinWrite: Int32 = -1
        switch stdin {
        case .null: stdinFD = try openFile("/dev/null", O_RDONLY); childFDs.append(stdinFD)
        case .file(let p): stdinFD = try openFile(p, O_RDONLY); childFDs.append(stdinFD)
        case .channel:
            let p = try makePipe()
            stdinFD = p.read; stdinWrite = p.write
            childFDs.append(p.read); parentFDs.append(p.write)
            // Bigger pipe, fewer wake-ups of this writer and the child: with the
            // default 64 KiB each 1 MiB chunk took 16+ blocking writes; a streamed
            // restore of 455 MB made ~30 % fewer context switches with 1 MiB
            // (best effort; F_SETPIPE_SZ = 1031, at most /proc/sys/fs/pipe-max-size,
            // 1 MiB by default).
            _ = fcntl(p.write, 1031, Int32(1 << 20))
        }
        // stdout
        var stdoutFD: Int32 = -1, stdoutRead: Int32 = -1
        switch stdout {
        case .null: stdoutFD = try openFile("/dev/null", O_WRONLY); childFDs.append(stdoutFD)
        case .file(let p): stdoutFD = try openFile(p, O_WRONLY | O_CREAT | O_TRUNC); childFDs.append(stdoutFD)
        case .channel:
            let p = try makePipe()
            stdoutFD = p.write; stdoutRead = p.read
            childFDs.append(p.write); parentFDs.append(p.read)
            // Bigger pipe, fewer wake-ups (best effort; F_SETPIPE_SZ = 1031).
            _ = fcntl(p.read, 1031, Int32(min(chunkSize, 1 << 20)))
        }
        // stderr
        let errPipe = try makePipe()
        childFDs.append(errPipe.write); parentFDs.append(errPipe.read)

        // posix_spawn: file actions and attributes.
        var actions = posix_spawn_file_actions_t()
        var attr = posix_spawnattr_t()
        guard posix_spawn_file_actions_init(&actions) == 0 else {
            closeAll(parentFDs + childFDs)
            throw CairnError(.process, "cannot start \(name): posix_spawn_file_actions_init failed")
        }
        defer { posix_spawn_file_actions_destroy(&actions) }
        guard posix_spawnattr_init(&attr) == 0 else {
            closeAll(parentFDs + childFDs)
            throw CairnError(.process, "cannot start \(name): posix_spawnattr_init failed")
        }
        defer { posix_spawnattr_destroy(&attr) }

        var rc: Int32 = 0
        // dup2 clears FD_CLOEXEC on the target; every other descriptor we made is O_CLOEXEC.
        rc |= posix_spawn_file_actions_adddup2(&actions, stdinFD, 0)
        rc |= posix_spawn_file_actions_adddup2(&actions, stdoutFD, 1)
        rc |= posix_spawn_file_actions_adddup2(&actions, errPipe.write, 2)
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        rc |= posix_spawnattr_setsigmask(&attr, &noSignals)
        rc |= posix_spawnattr_setsigdefault(&attr, &allSignals)
        rc |= posix_spawnattr_setpgroup(&attr, 0)
        rc |= posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        guard rc == 0 else {
            closeAll(parentFDs + childFDs)
            throw CairnError(.process, "cannot start \(name): cannot set up posix_spawn")
        }

        let env = environment ?? ProcessInfo.processInfo.environment
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var childPID: pid_t = 0
        let spawnRC = posix_spawn(&childPID, executable, &actions, &attr, argv, envp)
        closeAll(childFDs)
        guard spawnRC == 0 else {
            closeAll(parentFDs)
            throw CairnError(.process, "cannot start \(name) (\(executable)): \(errnoString(spawnRC))")
        }
        self.pid = childPID

        if case .channel(let ch) = stdin { stdinChannel = ch } else { stdinChannel = nil }
        if case .channel(let ch) = stdout { stdoutChannel = ch } else { stdoutChannel = nil }

        // Threads: reaper, stderr, and the stdin/stdout pumps.
        // wait() returns once all of them are done: the error it reports
        // names the child's last stderr line, which must have been read.
        pumpsRunning = 2 + (stdinWrite >= 0 ? 1 : 0) + (stdoutRead >= 0 ? 1 : 0)
        stdinPumpRunning = stdinWrite >= 0
        startThread("\(name)-wait") { $0.reap() }
        startThread("\(name)-stderr") { $0.drainStderr(errPipe.read) }
        if case .channel(let ch) = stdin {
            let fd = stdinWrite
            startThread("\(name)-stdin") { $0.feedStdin(fd, from: ch) }
        }
        if case .channel(let ch) = stdout {
            let fd = stdoutRead
            startThread("\(name)-stdout") { $0.pumpStdout(fd, to: ch, chunkSize: chunkSize) }
        }
    }

    private func startThread(_ label: String, _ body: @escaping @Sendable (ChildProcess) -> Void) {
        let t = Thread { [self] in body(self) }
        t.name = label
        t.stackSize = 512 << 10
        t.start()
    }

    // MARK: public API

    /// Waits until the child has exited and been reaped and its streams are
    /// done, and returns how it ended. Cancelling the calling task terminates
    /// the child (then still waits for it) and throws `.cancelled`.
    @discardableResult
    public func wait() async throws -> Termination {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in addWaiter(c) }
        } onCancel: {
            self.cancel()
        }
        return try result()
    }

    private func addWaiter(_ c: CheckedContinuation<Void, Never>) {
        cond.lock()
        if termination != nil && pumpsRunning == 0 {
            cond.unlock()
            c.resume()
        } else {
            waiters.append(c)
            cond.unlock()
        }
    }

    private func result() throws -> Termination {
        cond.lock()
        defer { cond.unlock() }
        if cancelled && signalSent { throw CairnError(.cancelled, "\(name) cancelled") }
        return termination!
    }

    /// Like `wait()`, but throws the process error unless the child succeeded
    /// (exit status 0, all of its input read, no input error).
    public func waitForSuccess() async throws {
        try await wait()
        if let e = failure { throw e }
    }

    /// The error describing how the child failed, nil if it succeeded or is still running.
    public var failure: CairnError? {
        cond.lock()
        defer { cond.unlock() }
        return failureLocked()
    }

    private func failureLocked() -> CairnError? {
        guard let t = termination else { return nil }
        if cancelled && signalSent { return CairnError(.cancelled, "\(name) cancelled") }
        if let e = inputFailure {
            return CairnError.wrap(e, .process, "input of \(name) failed")
        }
        let failure = ProcessFailure(name: name, termination: t, errorLine: firstErrorLine, lastLine: lastStderrLineLocked())
        switch t {
        case .exited(0):
            if inputUnread { return CairnError(.process, "\(name) exited early, before reading all of its input") }
            if let r = stdoutReadError { return CairnError(.process, "reading the output of \(name) failed: \(r)") }
            return nil
        case .exited, .signaled:
            let detail = failure.description.isEmpty ? "" : ": \(failure.description)"
            return CairnError(.process, "\(name) \(t)\(detail)", cause: failure)
        }
    }

    /// The last `stderrTailLimit` bytes the child wrote to stderr.
    public var stderrOutput: String {
        cond.lock()
        defer { cond.unlock() }
        return String(decoding: stderrTail, as: UTF8.self)
    }

    /// The last non-empty line of stderr.
    public var lastStderrLine: String {
        cond.lock()
        defer { cond.unlock() }
        return lastStderrLineLocked()
    }

    private func lastStderrLineLocked() -> String {
        let text = String(decoding: stderrTail, as: UTF8.self)
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).reversed() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if !t.isEmpty { return t }
        }
        return ""
    }

    /// The first stderr line containing `ERROR:`, nil if there was none (yet).
    public var firstStderrErrorLine: String? {
        cond.lock()
        defer { cond.unlock() }
        return firstErrorLine
    }

    /// How the child ended, nil while it runs.
    public var terminationStatus: Termination? {
        cond.lock()
        defer { cond.unlock() }
        return termination
    }

    /// Stops the child as a cancellation: `wait()` then throws `.cancelled`
    /// (unless the child had already exited by itself).
    /// The stdout channel is finished with `.cancelled` at once, so that a
    /// pump blocked on a consumer that no longer reads lets go.
    public func cancel(grace: Duration = .seconds(5)) {
        cond.lock()
        let running = termination == nil
        if running { cancelled = true }
        cond.unlock()
        guard running else { return }
        terminate(grace: grace)
        stdoutChannel?.finish(throwing: CairnError(.cancelled, "\(name) cancelled"))
    }

    /// Sends SIGTERM to the child's process group, then SIGKILL if it is still
    /// there after `grace`. Does nothing once the child has been reaped.
    public func terminate(grace: Duration = .seconds(5)) {
        cond.lock()
        guard termination == nil, !signalSent else { cond.unlock(); return }
        signalSent = true
        // The child is not reaped yet (the reaper reaps under this lock), so
        // its pid, and its process group id, cannot have been reused.
        _ = kill(-pid, SIGTERM)
        cond.unlock()
        let seconds = grace.inSeconds
        startThread("\(name)-kill") { me in
            let deadline = Date().addingTimeInterval(seconds)
            me.cond.lock()
            while me.termination == nil {
                if !me.cond.wait(until: deadline) { break }
            }
            if me.termination == nil { _ = kill(-me.pid, SIGKILL) }
            me.cond.unlock()
        }
    }

    // MARK: threads

    private func reap() {
        // Wait for the exit without reaping (WNOWAIT), then reap under the lock,
        // so `terminate()` never signals a pid that has been reused.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        var status: Int32 = 0
        cond.lock()
        var r: pid_t
        repeat { r = waitpid(pid, &status, 0) } while r < 0 && errno == EINTR
        if r == pid {
            let sig = status & 0x7f
            termination = sig == 0 ? .exited((status >> 8) & 0xff) : .signaled(sig)
        } else {
            termination = .exited(255)  // cannot happen unless someone else reaped our child
        }
        let feeding = stdinChannel != nil && stdinPumpRunning
        cond.broadcast()
        cond.unlock()
        // The child is gone: a stdin pump blocked on its producer must stop
        // (unless all that is left is EOF: then the child had everything).
        if feeding, let ch = stdinChannel, !ch.isAtEnd {
            ch.cancel(CairnError(.process, "\(name) exited before reading all of its input"))
        }
        pumpDone()
    }

    private func pumpDone() {
        cond.lock()
        pumpsRunning -= 1
        var ready: [CheckedContinuation<Void, Never>] = []
        if pumpsRunning == 0 && termination != nil {
            ready = waiters
            waiters.removeAll()
        }
        cond.broadcast()
        cond.unlock()
        for c in ready { c.resume() }
    }

    private func drainStderr(_ fd: Int32) {
        let size = 16 << 10
        let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf, size)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            cond.lock()
            stderrTail.append(contentsOf: UnsafeBufferPointer(start: buf, count: n))
            if stderrTail.count > stderrTailLimit {
                stderrTail.removeFirst(stderrTail.count - stderrTailLimit)
            }
            if firstErrorLine == nil { scanForErrorLine(UnsafeBufferPointer(start: buf, count: n)) }
            cond.unlock()
        }
        _ = Glibc.close(fd)
        cond.lock()
        if firstErrorLine == nil { scanForErrorLine(UnsafeBufferPointer(start: nil, count: 0), atEnd: true) }
        stderrDone = true
        cond.broadcast()
        cond.unlock()
        pumpDone()
    }

    /// Looks for the first line containing `ERROR:` (under `cond`). Lines are
    /// assembled across reads; one longer than 8 KiB is cut there.
    private func scanForErrorLine(_ bytes: UnsafeBufferPointer<UInt8>, atEnd: Bool = false) {
        func check() {
            let line = String(decoding: stderrLine, as: UTF8.self)
            stderrLine.removeAll(keepingCapacity: true)
            if let r = line.range(of: "ERROR:") {
                // PostgreSQL pads "ERROR:" with two spaces; one reads better in a one-line message.
                var rest = line[r.upperBound...]
                while rest.hasPrefix("  ") { rest = rest.dropFirst() }
                firstErrorLine = (line[..<r.upperBound] + rest).trimmingCharacters(in: .whitespaces)
            }
        }
        for b in bytes where firstErrorLine == nil {
            if b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") { check() }
            else if stderrLine.count < 8 << 10 { stderrLine.append(b) }
        }
        if atEnd && firstErrorLine == nil && !stderrLine.isEmpty { check() }
        if firstErrorLine != nil { stderrLine = [] }
    }

    /// A read below this many bytes is short (see pumpStdout).
    static let shortRead = 64 << 10
    /// Pause after a short read, in microseconds.
    static let shortReadPause: UInt32 = 1000

    /// Reads the child's stdout into buffers of up to `chunkSize` bytes,
    /// filling each while more is ready, before sending it: pg_dump writes
    /// through a 4 KiB stdio buffer, so a read returns ~4–9 KiB on average,
    /// and one channel send per read cost a wake-up of every stage
    /// downstream per 9 KiB (measured: 51,000 sends for a 0.45 GB dump). A
    /// buffer is sent as soon as the pipe is empty after a short pause, so
    /// output is never held back while the child is quiet. The buffers come
    /// from a pool and go back to it when the last stage drops them (no
    /// fresh mmap and page faults per chunk).
    private func pumpStdout(_ fd: Int32, to channel: ByteChannel, chunkSize: Int) {
        let pool = BufferPool(bufferSize: chunkSize)
        var consumerGone = false
        var readError: String?
        var eof = false
        while !eof && readError == nil {
            let buf = pool.take()
            var filled = 0
            var lastRead = 0
            while filled < chunkSize {
                if filled > 0 {
                    // A short read means the pipe was (nearly) empty: the
                    // writer is slower than we are. Reading again at once
                    // would block and make each of its next writes (4 KiB for
                    // pg_dump) wake this thread: ~90,000 wake-ups per 0.45 GB,
                    // paid mostly in the writer's kernel time. A pause lets
                    // the pipe (1 MiB) fill meanwhile; it costs no throughput,
                    // because a writer that fills the pipe in the pause gives
                    // a long read next.
                    if lastRead < Self.shortRead { usleep(Self.shortReadPause) }
                    // Never hold bytes while the writer is quiet: send what
                    // there is when nothing more is ready (a consumer may
                    // wait for a line, e.g. a child's "ready").
                    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    if poll(&pfd, 1, 0) == 0 { break }
                }
                let n = read(fd, buf + filled, chunkSize - filled)
                if n < 0 {
                    if errno == EINTR { continue }
                    readError = errnoString(errno)
                    break
                }
                if n == 0 { eof = true; break }
                filled += n
                lastRead = n
            }
            if filled == 0 { pool.give(buf); break }
            // A buffer less than half full is copied out and reused: the
            // channel bounds the bytes it holds, not the buffers behind them.
            let chunk: Data
            if filled >= chunkSize / 2 { chunk = pool.data(buf, count: filled) } else {
                chunk = Data(bytes: buf, count: filled)
                pool.give(buf)
            }
            do {
                try channel.sendBlocking(chunk)
            } catch {
                consumerGone = true  // the consumer cancelled the channel
                break
            }
        }
        _ = Glibc.close(fd)
        if consumerGone || readError != nil { cancel() }
        // Finish the channel only once the exit status and stderr are known.
        cond.lock()
        stdoutReadError = readError
        while termination == nil || !stderrDone { cond.wait() }
        let failure = failureLocked()
        cond.unlock()
        if !consumerGone {
            if let failure { channel.finish(throwing: failure) } else { channel.finish() }
        }
        pumpDone()
    }

    private func feedStdin(_ fd: Int32, from channel: ByteChannel) {
        outer: while true {
            let chunk: Data?
            do {
                chunk = try channel.receiveBlocking()
            } catch {
                cond.lock()
                let childGone = termination != nil
                // The child exited before the input ended: it did not read it all.
                if childGone { inputUnread = true } else { inputFailure = error }
                cond.unlock()
                // The producer failed: the child must not see a clean EOF.
                if !childGone { cancelForInputFailure() }
                break
            }
            guard let chunk else { break }  // EOF: close the pipe
            let ok = chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Bool in
                var off = 0
                while off < raw.count {
                    let n = write(fd, raw.baseAddress! + off, raw.count - off)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return false  // EPIPE (the child closed stdin or exited) or another error
                    }
                    off += n
                }
                return true
            }
            if !ok {
                cond.lock()
                inputUnread = true
                cond.unlock()
                channel.cancel(CairnError(.process, "\(name) exited before reading all of its input"))
                break outer
            }
        }
        _ = Glibc.close(fd)
        cond.lock()
        stdinPumpRunning = false
        cond.unlock()
        pumpDone()
    }

    private func cancelForInputFailure() {
        terminate(grace: .seconds(5))
    }
}

/// How a child process failed, kept as data for whoever reports the error:
/// the first `ERROR:` line of its stderr (PostgreSQL's own error) if there
/// was one, and its last stderr line.
public struct ProcessFailure: Error, Sendable, CustomStringConvertible {
    public var name: String
    public var termination: ChildProcess.Termination
    /// The first stderr line containing `ERROR:`, e.g. `pg_restore: error: could
    /// not execute query: ERROR: relation "users" already exists`.
    public var errorLine: String?
    public var lastLine: String

    /// The line the error message names: the first `ERROR:` line, else the last line.
    public var description: String { errorLine ?? lastLine }
}

func signalName(_ s: Int32) -> String? {
    switch s {
    case SIGTERM: return "SIGTERM"
    case SIGKILL: return "SIGKILL"
    case SIGINT: return "SIGINT"
    case SIGSEGV: return "SIGSEGV"
    case SIGABRT: return "SIGABRT"
    case SIGPIPE: return "SIGPIPE"
    case SIGHUP: return "SIGHUP"
    case SIGQUIT: return "SIGQUIT"
    case SIGBUS: return "SIGBUS"
    default: return nil
    }
}
