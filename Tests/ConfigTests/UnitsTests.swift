import Testing
@testable import Config

@Suite struct DurationParsing {
    static let durations: [(String, Duration)] = [
        ("90s", Duration.seconds(90)),
        ("30m", .seconds(1800)),
        ("2h", .seconds(7200)),
        ("1h30m", .seconds(5400)),
        ("1d2h", .seconds(93_600)),
        ("500ms", .milliseconds(500)),
        ("1.5h", .seconds(5400)),
        ("0s", .zero),
        ("0", .zero),
        ("1m30s", .seconds(90)),
    ]

    @Test(arguments: durations)
    func acceptsDurations(text: String, expected: Duration) {
        #expect(ConfigUnits.parseDuration(text) == expected)
    }

    @Test(arguments: ["", "soon", "5", "h", "-5m", "30 m", "30M", "1w", "30m1h", "1h1h", "1..5h", "1e3s", "9999999999999d"])
    func rejectsNonDurations(text: String) {
        #expect(ConfigUnits.parseDuration(text) == nil)
    }

    @Test func formatsDurations() {
        #expect(ConfigUnits.formatDuration(.seconds(90)) == "1m30s")
        #expect(ConfigUnits.formatDuration(.seconds(7200)) == "2h")
        #expect(ConfigUnits.formatDuration(.zero) == "0s")
        #expect(ConfigUnits.formatDuration(.milliseconds(250)) == "250ms")
    }
}

@Suite struct SizeParsing {
    static let sizes: [(String, Int64)] = [
        ("16MiB", Int64(16 << 20)),
        ("64mib", 64 << 20),
        ("5GiB", 5 << 30),
        ("512KiB", 512 << 10),
        ("16M", 16 << 20),
        ("10MB", 10_000_000),
        ("1kb", 1000),
        ("1048576", 1_048_576),
        ("100B", 100),
        ("1.5GiB", 3 << 29),
        ("1TiB", 1 << 40),
    ]

    @Test(arguments: sizes)
    func acceptsSizes(text: String, expected: Int64) {
        #expect(ConfigUnits.parseSize(text) == expected)
    }

    @Test(arguments: ["", "MiB", "big", "16 XB", "-5MiB", ".5MiB", "16MiBs", "1e3"])
    func rejectsNonSizes(text: String) {
        #expect(ConfigUnits.parseSize(text) == nil)
    }

    @Test func parsesRates() {
        #expect(ConfigUnits.parseRate("20MiB/s") == 20 << 20)
        #expect(ConfigUnits.parseRate("500KB/s") == 500_000)
        #expect(ConfigUnits.parseRate("20MiB") == nil)
        #expect(ConfigUnits.parseRate("fast/s") == nil)
    }

    @Test func formatsSizes() {
        #expect(ConfigUnits.formatSize(16 << 20) == "16MiB")
        #expect(ConfigUnits.formatSize(1000) == "1000B")
        #expect(ConfigUnits.formatSize(3 << 29) == "1536MiB")
    }
}
