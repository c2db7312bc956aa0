import Foundation
import Testing
@testable import Scheduler
import Core
#if canImport(Glibc)
import Glibc
#endif

@Suite struct IdleMemoryTests {
    @Test func fileMappingsArePrivateMappingsOfFilesOnly() {
        let maps = """
        55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 1311  /usr/local/bin/cairn
        55d0c0a21000-55d0c0b00000 r-xp 00021000 fd:01 1311  /usr/local/bin/cairn
        55d0c1e00000-55d0c1e21000 rw-p 00000000 00:00 0     [heap]
        7f1a2c000000-7f1a2c021000 rw-p 00000000 00:00 0
        7f1a2d000000-7f1a2d008000 rw-s 00000000 fd:01 2222  /var/lib/cairn/state.db-shm
        7f1a2e000000-7f1a2e010000 r--p 00000000 fd:01 3333  /usr/lib/x86_64-linux-gnu/libicudata.so.72.1
        7f1a2f000000-7f1a2f001000 r--p 00000000 fd:01 4444  /tmp/a file with spaces
        7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0     [stack]
        7ffd1c100000-7ffd1c102000 r-xp 00000000 00:00 0     [vdso]
        garbage line
        """
        let m = IdleMemory.fileMappings(maps)
        #expect(m == [
            .init(start: 0x55d0c0a00000, length: 0x21000),
            .init(start: 0x55d0c0a21000, length: 0xdf000),
            .init(start: 0x7f1a2e000000, length: 0x10000),
            .init(start: 0x7f1a2f000000, length: 0x1000),
        ])
    }

    /// A private read-only mapping of a file this process alone maps: once
    /// its pages are touched they count in the RSS; `release()` makes the
    /// kernel reclaim them, and reading them again still gives the file's bytes.
    @Test func releasePagesOutATouchedPrivateFileMapping() throws {
        let size = 8 << 20
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("idle-\(getpid())-\(UUID().uuidString)").path
        var bytes = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i / 4096 + 1) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        let base = try #require(mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0))
        try #require(base != MAP_FAILED)
        defer { munmap(base, size) }
        let p = base.assumingMemoryBound(to: UInt8.self)
        var sum = 0
        for i in stride(from: 0, to: size, by: 4096) { sum &+= Int(p[i]) }

        let start = Int(bitPattern: base)
        let before = try #require(residentKiB(ofMappingAt: start))
        #expect(before >= (size >> 10) * 3 / 4, "touched pages are resident: \(before) KiB")

        let r = IdleMemory.release()
        #expect(r.pagedOut, "MADV_PAGEOUT exists on this kernel (Linux ≥ 5.4)")
        let after = try #require(residentKiB(ofMappingAt: start))
        #expect(after < before / 4, "the mapping's pages were reclaimed: \(before) → \(after) KiB")
        #expect(r.rssAfter < r.rssBefore)

        var again = 0
        for i in stride(from: 0, to: size, by: 4096) { again &+= Int(p[i]) }
        #expect(again == sum, "paged-out pages read back the file's bytes")
    }

    /// Rss of the mapping starting at `start`, from /proc/self/smaps.
    private func residentKiB(ofMappingAt start: Int) -> Int? {
        guard let text = readKernelFile("/proc/self/smaps") else { return nil }
        let prefix = String(start, radix: 16) + "-"
        var inside = false
        for line in text.split(separator: "\n") {
            if line.first?.isHexDigit == true && line.contains("-") && !line.hasSuffix(":") && line.split(separator: " ").count >= 5 {
                inside = line.hasPrefix(prefix)
                continue
            }
            if inside, line.hasPrefix("Rss:") {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
            }
        }
        return nil
    }
}
