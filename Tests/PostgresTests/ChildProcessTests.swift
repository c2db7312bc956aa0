import Core
import Foundation
@testable import Postgres
import Testing

/// ChildProcess without PostgreSQL: /bin/sh stands in for pg_dump.
@Suite struct ChildProcessTests {
    @Test func nonZeroExitFailsTheStreamWithTheLastStderrLine() async throws {
        let out = ByteChannel(capacity: 1 << 16)
        let p = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "echo data; echo first >&2; echo 'last words' >&2; exit 3"],
                                 stdout: .channel(out))
        let e = await expectError(.process, containing: ["sh exited with status 3: last words"]) { _ = try await collect(out) }
        #expect(e != nil)
        #expect(try await p.wait() == .exited(3))
        #expect(!processExists(p.pid))
    }

    @Test func cleanExitEndsTheStreamWithAllBytes() async throws {
        let out = ByteChannel(capacity: 4096)
        let p = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "head -c 3000000 /dev/zero"], stdout: .channel(out), chunkSize: 100_000)
        var total = 0, biggest = 0
        for try await c in out { total += c.count; biggest = max(biggest, c.count) }
        #expect(total == 3_000_000)
        #expect(biggest <= 100_000)
        try await p.waitForSuccess()
    }

    /// Many small writes (pg_dump writes 4 KiB at a time) arrive in order, in
    /// chunks of at most chunkSize bytes, and no more chunks than writes.
    @Test func smallWritesArriveInOrderInBoundedChunks() async throws {
        let out = ByteChannel(capacity: 1 << 20)
        // 2,000 writes of 1,000 bytes each ("0000…", "1111…", …, cycling).
        let script = #"BEGIN { for (i = 0; i < 2000; i++) { s = sprintf("%1000s", ""); gsub(/ /, i % 10, s); printf "%s", s; fflush() } }"#
        let p = try ChildProcess(executable: "/usr/bin/awk", arguments: [script], stdout: .channel(out), chunkSize: 300_000)
        var sizes: [Int] = []
        var all = Data()
        for try await c in out { sizes.append(c.count); all.append(c) }
        try await p.waitForSuccess()
        #expect(all.count == 2_000_000)
        #expect(sizes.allSatisfy { $0 <= 300_000 })
        #expect(sizes.count <= 2000)
        for i in [0, 999, 1000, 1_234_567, 1_999_999] {
            #expect(all[i] == UInt8(ascii: "0") + UInt8(i / 1000 % 10))
        }
    }

    @Test func stdinIsFedAndEarlyExitIsReported() async throws {
        // cat copies all of stdin.
        let input = ByteChannel(capacity: 1 << 16), out = ByteChannel(capacity: 1 << 16)
        let cat = try ChildProcess(executable: "/bin/cat", arguments: [], stdin: .channel(input), stdout: .channel(out))
        let payload = Data((0..<500_000).map { UInt8(truncatingIfNeeded: $0) })
        async let fed = feed(payload, into: input)
        let echoed = try await collect(out)
        #expect(await fed == nil)
        #expect(echoed == payload)
        try await cat.waitForSuccess()

        // `true` reads nothing and exits 0: the producer is told, and so is wait().
        let input2 = ByteChannel(capacity: 1 << 16)
        let early = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exec 0<&-; sleep 0.2"], stdin: .channel(input2))
        let err = await feed(Data(count: 10 << 20), into: input2)
        #expect((err as? CairnError)?.message.contains("exited before reading all of its input") == true)
        _ = await expectError(.process, containing: ["sh exited early"]) { try await early.waitForSuccess() }
    }

    /// A child fed from a channel (pg_restore of a streamed restore) reads a
    /// pipe of 1 MiB, not the default 64 KiB: python3 reports F_GETPIPE_SZ
    /// (1032) of its stdin (when the system allows 1 MiB pipes, as Linux does by default).
    @Test func stdinPipeIsEnlargedToAMebibyte() async throws {
        let maxSize = try String(contentsOfFile: "/proc/sys/fs/pipe-max-size", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let input = ByteChannel(capacity: 1 << 16), out = ByteChannel(capacity: 1 << 16)
        let p = try ChildProcess(executable: "/usr/bin/python3",
                                 arguments: ["-c", "import fcntl, sys; print(fcntl.fcntl(0, 1032)); sys.stdin.buffer.read()"],
                                 stdin: .channel(input), stdout: .channel(out))
        async let fed = feed(Data(count: 3 << 20), into: input)
        let text = String(decoding: try await collect(out), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(await fed == nil)
        try await p.waitForSuccess()
        // Below 1 MiB the enlargement fails (best effort) and the pipe keeps the default 64 KiB.
        #expect(text == ((Int(maxSize) ?? 0) >= 1 << 20 ? "1048576" : "65536"), "F_GETPIPE_SZ of stdin: \(text), pipe-max-size \(maxSize)")
    }

    /// The child exits while the pump is still waiting for its producer's
    /// first bytes: the run is "exited early", as the producer is told, not a
    /// success.
    @Test func exitBeforeTheProducerSendsAnythingIsAnEarlyExit() async throws {
        let input = ByteChannel(capacity: 1 << 16)
        let early = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exec 0<&-; exit 0"], stdin: .channel(input))
        _ = await expectError(.process, containing: ["sh exited early"]) { try await early.waitForSuccess() }
        do {
            try await input.send(Data(count: 10))
            Issue.record("the producer was not told")
        } catch {
            #expect("\(error)".contains("exited before reading all of its input"))
        }
    }

    @Test func cancellingWaitTerminatesAndReapsTheChild() async throws {
        let p = try ChildProcess(executable: "/bin/sleep", arguments: ["60"])
        let t = Task { try await p.wait() }
        try await Task.sleep(for: .milliseconds(100))
        #expect(processExists(p.pid))
        t.cancel()
        _ = await expectError(.cancelled, containing: ["sleep cancelled"]) { _ = try await t.value }
        #expect(p.terminationStatus == .signaled(SIGTERM))
        #expect(!processExists(p.pid))
    }

    @Test func sigkillFollowsWhenSigtermIsIgnored() async throws {
        // The shell says "ready" once SIGTERM is ignored: cancel only then.
        let out = ByteChannel(capacity: 1 << 16)
        let p = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "trap '' TERM; echo ready; sleep 60 & wait; sleep 60"],
                                 stdout: .channel(out))
        #expect(try await out.receive().map { String(decoding: $0, as: UTF8.self) } == "ready\n")
        p.cancel(grace: .milliseconds(300))
        await #expect(throws: CairnError.self) { try await p.wait() }
        // SIGKILL, not the end of the 60 s sleeps: the grace period ran out.
        #expect(p.terminationStatus == .signaled(SIGKILL))
    }

    @Test func producerErrorKillsTheChild() async throws {
        let input = ByteChannel(capacity: 1 << 16)
        let p = try ChildProcess(executable: "/bin/cat", arguments: [], stdin: .channel(input))
        try await input.send(Data("partial".utf8))
        input.finish(throwing: CairnError(.integrity, "segment 3 altered"))
        _ = await expectError(.integrity, containing: ["segment 3 altered"]) { try await p.waitForSuccess() }
        #expect(!processExists(p.pid))
    }

    @Test func missingExecutableFailsToSpawn() async throws {
        _ = await expectError(.process, containing: ["cannot start"]) {
            _ = try ChildProcess(executable: "/nonexistent/pg_dump", arguments: [])
        }
    }
}

@Suite struct ChildProcessErrorLineTests {
    @Test func theFailureNamesTheFirstErrorLineNotTheTailOfTheStatement() async throws {
        // What pg_restore --exit-on-error prints: the error, then the statement that failed.
        let script = """
        printf 'pg_restore: error: could not execute query: ERROR:  relation "users" already exists\\nCommand was: CREATE TABLE public.users (\\n    id integer\\n);\\n' >&2
        echo 'pg_restore: error: ERROR:  a later one' >&2
        exit 1
        """
        let p = try ChildProcess(name: "pg_restore", executable: "/bin/sh", arguments: ["-c", script])
        do {
            try await p.waitForSuccess()
            Issue.record("expected failure")
        } catch let e as CairnError {
            #expect(e.code == .process)
            #expect(e.message == #"pg_restore exited with status 1: pg_restore: error: could not execute query: ERROR: relation "users" already exists"#)
            let f = try #require(e.cause as? ProcessFailure)
            #expect(f.errorLine == #"pg_restore: error: could not execute query: ERROR: relation "users" already exists"#)
            #expect(f.lastLine == "pg_restore: error: ERROR:  a later one")
            #expect(f.termination == .exited(1))
            #expect(!e.description.contains("a later one"))
        }
        #expect(p.firstStderrErrorLine?.hasSuffix("already exists") == true)
    }

    @Test func anErrorLineSplitAcrossWritesIsWhole() async throws {
        let script = "printf 'psql:<stdin>:3: ERR' >&2; sleep 0.05; printf 'OR:  role \"x\" does not exist\\n' >&2; exit 3"
        let p = try ChildProcess(name: "psql", executable: "/bin/sh", arguments: ["-c", script])
        try await p.wait()
        #expect(p.firstStderrErrorLine == #"psql:<stdin>:3: ERROR: role "x" does not exist"#)
        #expect(p.failure?.message == #"psql exited with status 3: psql:<stdin>:3: ERROR: role "x" does not exist"#)
    }

    @Test func withoutAnErrorLineTheLastLineIsKept() async throws {
        let p = try ChildProcess(name: "pg_dump", executable: "/bin/sh", arguments: ["-c", "echo 'pg_dump: error: connection failed' >&2; echo 'FATAL: no db' >&2; exit 1"])
        try await p.wait()
        #expect(p.firstStderrErrorLine == nil)
        #expect(p.failure?.message == "pg_dump exited with status 1: FATAL: no db")
    }
}
