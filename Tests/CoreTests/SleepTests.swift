import Foundation
import Testing
@testable import Core

@Suite(.timeLimit(.minutes(1))) struct SleepTests {
    @Test func aSleepDoesNotReturnBeforeItsDeadline() async throws {
        for ms in [1, 20, 60] {
            let start = ContinuousClock.now
            try await Sleep.for(.milliseconds(ms))
            #expect(ContinuousClock.now - start >= .milliseconds(ms))
        }
        let deadline = ContinuousClock.now + .milliseconds(30)
        try await Sleep.until(deadline)
        #expect(ContinuousClock.now >= deadline)
        let date = Date().addingTimeInterval(0.03)
        try await Sleep.until(date)
        #expect(Date() >= date)
    }

    @Test func zeroNegativeAndPastDeadlinesReturnAtOnce() async throws {
        try await Sleep.for(.zero)
        try await Sleep.for(.seconds(-5))
        try await Sleep.until(ContinuousClock.now - .seconds(1))
        try await Sleep.until(Date(timeIntervalSince1970: 0))
    }

    /// A long sleep cancelled in the middle (or before it began: the race is
    /// either way here) throws CancellationError at once; were cancellation
    /// lost, the test would wait an hour and hit its time limit.
    @Test func cancellingASleepingTaskEndsItsSleepWithCancellationError() async throws {
        for _ in 0..<50 {
            let t = Task { try await Sleep.for(.seconds(3600)) }
            t.cancel()
            await #expect(throws: CancellationError.self) { try await t.value }
        }
        // Cancelled while surely asleep: the task says when it is about to sleep.
        let (started, go) = AsyncStream<Void>.makeStream()
        let t = Task {
            go.yield()
            try await Sleep.for(.seconds(3600))
        }
        for await _ in started { break }
        t.cancel()
        await #expect(throws: CancellationError.self) { try await t.value }
    }

    @Test func anAlreadyCancelledTaskThrowsWithoutSleeping() async throws {
        let t = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await Sleep.for(.seconds(3600))
        }
        await #expect(throws: CancellationError.self) { try await t.value }
    }

    /// The timer thread waits for the earliest deadline: a short sleep that
    /// arrives while a long one is pending must not wait behind it.
    @Test func aShortSleepIsNotHeldUpByALongerOneAlreadyPending() async throws {
        let long = Task { try await Sleep.for(.seconds(3600)) }
        defer { long.cancel() }
        for ms in [50, 5, 30] {
            try await Sleep.for(.milliseconds(ms))
        }
        #expect(!long.isCancelled)
    }

    @Test func manySleepersAllWake() async throws {
        let woke = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<200 { group.addTask { try await Sleep.for(.milliseconds(i % 17)); return 1 } }
            return try await group.reduce(0, +)
        }
        #expect(woke == 200)
    }
}

/// The idle daemon stays quiet only if nothing in it reaches libdispatch's
/// global queues (docs/ARCHITECTURE.md, "The daemon's executor"): code sleeps
/// with `Sleep`, and dispatch sources deliver on a serial queue.
@Suite struct NoGlobalDispatchTests {
    @Test func sourcesUseSleepAndNoGlobalQueue() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources").standardized
        let files = FileManager.default.enumerator(atPath: sources.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }
        #expect(files.count > 50)
        var offenders: [String] = []
        for f in files {
            let text = try String(contentsOfFile: sources.path + "/" + f, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let code = line.trimmingCharacters(in: .whitespaces)
                if code.hasPrefix("//") { continue }
                if code.contains("Task.sleep(") || code.contains(".global(") || code.contains("Task.yield(") {
                    offenders.append("\(f):\(n + 1): \(code)")
                }
            }
        }
        #expect(offenders.isEmpty, "\(offenders)")
    }
}
