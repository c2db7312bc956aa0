import Foundation
import Testing
@testable import Core

@Suite struct BufferPoolTests {
    @Test func dataGivesItsBufferBackWhenReleased() {
        let pool = BufferPool(bufferSize: 1024, maxFree: 2)
        let buf = pool.take()
        buf.initializeMemory(as: UInt8.self, repeating: 7, count: 1024)
        // (Above Data's inline size, 14 bytes: smaller ones are copied and the buffer given back at once.)
        var d: Data? = pool.data(buf, count: 100)
        #expect(d == Data(repeating: 7, count: 100))
        #expect(pool.idleCount == 0)
        d = nil
        #expect(pool.idleCount == 1)
        // The same buffer is handed out again.
        #expect(pool.take() == buf)
        #expect(pool.idleCount == 0)
        pool.give(buf)
    }

    @Test func keepsAtMostMaxFreeIdleBuffers() {
        let pool = BufferPool(bufferSize: 64, maxFree: 2)
        var datas: [Data] = (0..<5).map { _ in pool.data(pool.take(), count: 64) }
        #expect(datas.count == 5)
        datas.removeAll()
        #expect(pool.idleCount == 2)
    }

    @Test func aCopyOfTheDataOutlivesTheOriginal() {
        let pool = BufferPool(bufferSize: 16, maxFree: 1)
        let buf = pool.take()
        buf.initializeMemory(as: UInt8.self, repeating: 1, count: 16)
        var d: Data? = pool.data(buf, count: 16)
        let slice = d!.subdata(in: 2..<6)
        d = nil
        #expect(pool.idleCount == 1)
        #expect(slice == Data(repeating: 1, count: 4))
    }
}
