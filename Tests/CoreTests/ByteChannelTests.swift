import Testing
import Foundation
@testable import Core

@Suite struct ByteChannelTests {
    @Test func deliversChunksInOrderThenEOF() async throws {
        let ch = ByteChannel(capacity: 10)
        let producer = Task {
            for i in 0..<100 { try await ch.send(Data([UInt8(i)])) }
            ch.finish()
        }
        var got: [UInt8] = []
        for try await d in ch { got.append(contentsOf: d) }
        try await producer.value
        #expect(got == (0..<100).map(UInt8.init))
    }

    @Test func boundsBufferedBytes() async throws {
        let ch = ByteChannel(capacity: 8)
        let sent = ManagedAtomicCounter()
        let producer = Task {
            for _ in 0..<10 { try await ch.send(Data(count: 4)); sent.increment() }
            ch.finish()
        }
        // Two sends fill the channel; wait for them (however loaded the machine)...
        let deadline = Date().addingTimeInterval(60)
        while sent.value < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(sent.value == 2)
        // ...then the producer stays blocked on the third: no more sends complete.
        try await Task.sleep(for: .milliseconds(100))
        #expect(ch.bufferedBytes <= 8)
        #expect(sent.value == 2)
        var total = 0
        for try await d in ch { total += d.count }
        try await producer.value
        #expect(total == 40)
    }

    /// Parts read into pooled buffers: exact sizes across chunk boundaries
    /// (a chunk split between two parts carries over), the short last part,
    /// an empty read at the end that holds no buffer, and every buffer back
    /// in the pool once the parts are released.
    @Test func readsExactPartsIntoPooledBuffers() async throws {
        let ch = ByteChannel(capacity: 1 << 20)
        let input = Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let producer = Task {
            var off = 0
            for size in [1, 999, 3000, 1, 2500, 3499] {
                try await ch.send(input.subdata(in: off..<off + size))
                off += size
            }
            ch.finish()
        }
        let pool = BufferPool(bufferSize: 4096, maxFree: 4)
        var carry = Data()
        var parts: [Data] = []
        while true {
            let part = try await ch.read(exactly: 3000, carry: &carry, pool: pool)
            if part.isEmpty { break }
            parts.append(part)
        }
        try await producer.value
        #expect(parts.map(\.count) == [3000, 3000, 3000, 1000])
        #expect(parts.reduce(Data(), +) == input)
        #expect(pool.idleCount == 1)   // the empty read's buffer went straight back
        parts.removeAll()
        #expect(pool.idleCount == 4)
    }

    @Test func blockingProducerAndAsyncConsumer() async throws {
        let ch = ByteChannel(capacity: 1024)
        BlockingPool.shared.submit {
            for _ in 0..<1000 { try? ch.sendBlocking(Data(count: 100)) }
            ch.finish()
        }
        var total = 0
        for try await d in ch { total += d.count }
        #expect(total == 100_000)
    }

    @Test func producerErrorReachesConsumerAfterData() async throws {
        let ch = ByteChannel(capacity: 100)
        try await ch.send(Data([1, 2, 3]))
        ch.finish(throwing: CairnError(.io, "boom"))
        let first = try await ch.receive()
        #expect(first == Data([1, 2, 3]))
        await #expect(throws: CairnError.self) { _ = try await ch.receive() }
    }

    @Test func consumerCancelFailsBlockedProducer() async throws {
        let ch = ByteChannel(capacity: 4)
        try await ch.send(Data(count: 4))
        let producer = Task { try await ch.send(Data(count: 4)) }
        try await Task.sleep(for: .milliseconds(50))
        ch.cancel(CairnError(.cancelled, "reader gone"))
        await #expect(throws: CairnError.self) { try await producer.value }
    }
}

final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var v = 0
    func increment() { lock.lock(); v += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return v }
}

@Suite struct BlockingPoolTests {
    /// Long-running items submitted back to back must each get a thread
    /// (a pipeline's stages wait on each other; queuing one behind another deadlocks).
    @Test func backToBackLongItemsRunConcurrently() async throws {
        let pool = BlockingPool(name: "t", maxThreads: 16)
        // warm up: leave one idle thread behind
        _ = try await pool.run { 1 }
        for _ in 0..<20 {
            let a = ByteChannel(capacity: 1), b = ByteChannel(capacity: 1)
            // item 1 waits for item 2's message and vice versa
            async let x: Int = pool.run { try a.sendBlocking(Data([1])); return Int(try b.receiveBlocking()!.first!) }
            async let y: Int = pool.run { try b.sendBlocking(Data([2])); return Int(try a.receiveBlocking()!.first!) }
            let (rx, ry) = try await (x, y)
            #expect(rx == 2 && ry == 1)
        }
    }
}

@Suite struct ByteChannelMemoryTests {
    /// A channel whose buffer never empties (the producer always keeps it
    /// non-empty) must not keep references to chunks already consumed.
    @Test func consumedChunksAreReleasedEvenIfTheBufferNeverDrains() async throws {
        final class Tracker: @unchecked Sendable {
            let lock = NSLock()
            var live = 0
            func inc() { lock.lock(); live += 1; lock.unlock() }
            func dec() { lock.lock(); live -= 1; lock.unlock() }
        }
        let tracker = Tracker()
        func chunk() -> Data {
            let n = 1024
            let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 8)
            tracker.inc()
            return Data(bytesNoCopy: p, count: n, deallocator: .custom { ptr, _ in ptr.deallocate(); tracker.dec() })
        }
        let ch = ByteChannel(capacity: 8 * 1024)
        for _ in 0..<4 { try await ch.send(chunk()) }   // the buffer never drains below 3 chunks
        for _ in 0..<200 {
            try await ch.send(chunk())
            _ = try await ch.receive()
        }
        #expect(tracker.live <= 10)
    }
}
