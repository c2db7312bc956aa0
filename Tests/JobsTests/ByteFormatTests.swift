import Jobs
import Testing

@Suite struct ByteFormatTests {
    @Test func humanSizes() {
        #expect(ByteFormat.human(0) == "0 B")
        #expect(ByteFormat.human(1023) == "1023 B")
        #expect(ByteFormat.human(1536) == "1.5 KiB")
        #expect(ByteFormat.human(5 << 30) == "5.0 GiB")
    }
}
