import Foundation
import Testing
@testable import Jobs

/// Unit tests (no services) of the progress and summary values: times are
/// passed in, never read from a clock.
@Suite struct ProgressLineTests {
    @Test func percentRateAndETAFromBytesAndElapsedTime() {
        let p = ProgressLine(done: 256 << 20, total: 1 << 30, elapsed: 8)
        #expect(p.fraction == 0.25)
        #expect(p.percent == 25)
        #expect(p.rate == Double(32 << 20))
        #expect(p.eta == 24)
        #expect(p.text == "256.0 MiB of 1.0 GiB (25%), 32.0 MiB/s, ETA 24s")
    }

    @Test func noRateOrETABeforeASecondOfHistory() {
        let p = ProgressLine(done: 1 << 20, total: 1 << 30, elapsed: 0.5)
        #expect(p.rate == nil)
        #expect(p.eta == nil)
        #expect(p.text == "1.0 MiB of 1.0 GiB (0%), -/s, ETA ?")
    }

    @Test func anEstimateIsMarkedAndNeverReaches100Percent() {
        let under = ProgressLine(done: 600 << 20, total: 1 << 30, elapsed: 60, estimated: true)
        #expect(under.text.hasPrefix("600.0 MiB of ~1.0 GiB (58%)"))
        #expect(under.text.hasSuffix("ETA 42s"))
        let past = ProgressLine(done: 2 << 30, total: 1 << 30, elapsed: 100, estimated: true)
        #expect(past.percent == 99)
        #expect(past.eta == nil)
        #expect(past.text.hasSuffix("ETA ?"))
        let exact = ProgressLine(done: 1 << 30, total: 1 << 30, elapsed: 100)
        #expect(exact.percent == 100)
        #expect(exact.eta == 0)
    }

    @Test func withoutATotalOnlyBytesAndRate() {
        let p = ProgressLine(done: 10 << 20, total: nil, elapsed: 10)
        #expect(p.fraction == nil)
        #expect(p.text == "10.0 MiB, 1.0 MiB/s")
    }

    @Test func durationsAndSummaryRates() {
        #expect(ProgressLine.duration(45) == "45s")
        #expect(ProgressLine.duration(187) == "3m07s")
        #expect(ProgressLine.duration(7500) == "2h05m")
        #expect(ProgressLine.duration(.infinity) == "?")
        #expect(ProgressLine.rate(bytes: 100 << 20, seconds: 4) == "25.0 MiB/s")
        #expect(ProgressLine.rate(bytes: 0, seconds: 0) == "0 B/s")
    }

    @Test func logLinesEveryTenSecondsOrEveryTenPercent() {
        var t = ProgressLogThrottle()
        let steps: [(Double, Double?)] = [(1, 0.02), (2, 0.09), (3, 0.11), (4, 0.15), (13, 0.16), (14, 0.45), (15, 0.46)]
        // crossed 10 % at 3 s; 10 s since the last line at 13 s; crossed 20, 30 and 40 % at 14 s: one line.
        #expect(steps.map { t.shouldLog(elapsed: $0.0, fraction: $0.1) } == [false, false, true, false, true, true, false])
        var noTotal = ProgressLogThrottle()
        let plain = [9.9, 10, 19, 20.5].map { noTotal.shouldLog(elapsed: $0, fraction: nil) }
        #expect(plain == [false, true, false, true])
    }

    @Test func backupLineShowsTheEstimateThenTheCompletingUploadPhase() {
        var s = BackupProgress.Snapshot(phase: .dumping, dumped: 512 << 20, uploaded: 128 << 20, parts: 16,
                                        estimate: 2 << 30, elapsed: 16)
        #expect(s.line == "dumped 512.0 MiB of ~2.0 GiB (25%), 32.0 MiB/s, ETA 48s; uploaded 128.0 MiB in 16 part(s), ratio 4.00")
        s.phase = .completingUpload
        #expect(s.line == "dump ended (512.0 MiB dumped); completing upload: uploaded 128.0 MiB in 16 part(s), ratio 4.00")
        s.phase = .dumping
        s.estimate = nil
        #expect(s.line.hasPrefix("dumped 512.0 MiB, 32.0 MiB/s; uploaded"))
    }

    @Test func restoreProgressCountsAgainstTheManifestTotal() {
        let p = RestoreProgress(total: 4 << 20)
        #expect(p.fraction == 0)
        p.read(1 << 20)
        #expect(p.fraction == 0.25)
        #expect(p.line.hasPrefix("read 1.0 MiB of 4.0 MiB (25%)"))
        p.read(4 << 20)
        #expect(p.line.hasPrefix("read all 4.0 MiB"))
    }

    @Test func discoveryGroupsManifestKeysByTheirPrefix() {
        let keys = [
            "alpha/20261127T023000Z-1a2b3c4d.manifest.json", "alpha/20261127T023000Z-1a2b3c4d.dump.zst.aes",
            "alpha/20261128T023000Z-00000001.manifest.json",
            "deep/er/beta/20261127T040000Z-aaaaaaaa.manifest.json",
            "20261127T050000Z-bbbbbbbb.manifest.json",
            "alpha/notes.manifest.json", "other/x.json", "alpha/20261127T023000Z-1A2B3C4D.manifest.json",
        ]
        let groups = CatalogDiscovery.prefixes(ofKeys: keys)
        #expect(Set(groups.keys) == ["alpha", "deep/er/beta", ""])
        #expect(groups["alpha"]?.sorted() == ["20261127T023000Z-1a2b3c4d", "20261128T023000Z-00000001"])
        #expect(groups["deep/er/beta"] == ["20261127T040000Z-aaaaaaaa"])
        #expect(groups[""] == ["20261127T050000Z-bbbbbbbb"])
    }
}
