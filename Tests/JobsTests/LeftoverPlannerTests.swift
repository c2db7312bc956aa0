import Foundation
import Jobs
import ObjectStore
import Testing

/// What of interrupted runs' leftovers is removed: by the backup job (any
/// age: it holds the lock) and by retention (older than 24 h only).
@Suite struct LeftoverPlannerTests {
    static let now = Date(timeIntervalSince1970: 1_796_000_000)
    static func hoursAgo(_ h: Double) -> Date { now.addingTimeInterval(-h * 3600) }

    static let complete = "20261201T023000Z-0000000a"
    static let oldOrphan = "20261120T023000Z-0000000b"
    static let youngOrphan = "20261205T020000Z-0000000c"

    static let objects: [ObjectInfo] = [
        ObjectInfo(key: "db/\(complete).dump.zst.aes", size: 10, lastModified: hoursAgo(200)),
        ObjectInfo(key: "db/\(complete).globals.sql.zst.aes", size: 10, lastModified: hoursAgo(200)),
        ObjectInfo(key: "db/\(complete).manifest.json", size: 10, lastModified: hoursAgo(200)),
        ObjectInfo(key: "db/\(oldOrphan).dump.zst.aes", size: 10, lastModified: hoursAgo(25)),
        ObjectInfo(key: "db/\(oldOrphan).globals.sql.zst.aes", size: 10, lastModified: hoursAgo(25)),
        ObjectInfo(key: "db/\(youngOrphan).dump.zst.aes", size: 10, lastModified: hoursAgo(1)),
        // Not backup data: never touched.
        ObjectInfo(key: "db/notes.txt", size: 1, lastModified: hoursAgo(1000)),
        ObjectInfo(key: "db/sub/\(oldOrphan).dump.zst.aes", size: 1, lastModified: hoursAgo(1000)),
        ObjectInfo(key: "db/\(oldOrphan).verify.json", size: 1, lastModified: hoursAgo(1000)),
    ]
    static let uploads: [MultipartUploadInfo] = [
        MultipartUploadInfo(key: "db/20261101T023000Z-0000000d.dump.zst.aes", uploadId: "old", initiated: hoursAgo(48)),
        MultipartUploadInfo(key: "db/20261205T100000Z-0000000e.dump.zst.aes", uploadId: "young", initiated: hoursAgo(2)),
        MultipartUploadInfo(key: "db/20261102T023000Z-0000000f.dump.zst.aes", uploadId: "undated", initiated: nil),
        MultipartUploadInfo(key: "db/other.bin", uploadId: "foreign", initiated: hoursAgo(1000)),
    ]

    @Test func retentionRemovesOnlyWhatIsOlderThanADay() {
        let plan = LeftoverPlanner(prefix: "db", minimumAge: LeftoverPlanner.retentionAge, now: Self.now)
            .plan(objects: Self.objects, uploads: Self.uploads)
        #expect(plan.abort.map(\.uploadId) == ["old"])
        #expect(plan.delete.map(\.key) == ["db/\(Self.oldOrphan).dump.zst.aes", "db/\(Self.oldOrphan).globals.sql.zst.aes"])
        // The young upload, the undated upload and the young orphan may be a run in progress.
        #expect(plan.young == 3)
    }

    @Test func theBackupJobUnderItsLockRemovesEveryLeftover() {
        let plan = LeftoverPlanner(prefix: "db", minimumAge: .any, now: Self.now).plan(objects: Self.objects, uploads: Self.uploads)
        #expect(plan.abort.map(\.uploadId) == ["old", "young", "undated"])
        #expect(plan.delete.map(\.key) == ["db/\(Self.oldOrphan).dump.zst.aes", "db/\(Self.oldOrphan).globals.sql.zst.aes",
                                           "db/\(Self.youngOrphan).dump.zst.aes"])
        #expect(plan.young == 0)
    }

    @Test func aManifestOfAnyContentMakesItsDataNotALeftover() {
        // Only names count: the catalog may skip the manifest, its data stays.
        let plan = LeftoverPlanner(prefix: "db", minimumAge: .any, now: Self.now).plan(objects: Self.objects.filter { !$0.key.hasPrefix("db/\(Self.oldOrphan)") && !$0.key.hasPrefix("db/\(Self.youngOrphan)") }, uploads: [])
        #expect(plan.isEmpty)
    }

    @Test func anEmptyPrefixIsTheBucketsTopLevel() {
        let plan = LeftoverPlanner(prefix: "", minimumAge: .any, now: Self.now).plan(
            objects: [ObjectInfo(key: "\(Self.oldOrphan).dump.zst.aes", size: 1), ObjectInfo(key: "db/\(Self.oldOrphan).dump.zst.aes", size: 1)], uploads: [])
        #expect(plan.delete.map(\.key) == ["\(Self.oldOrphan).dump.zst.aes"])
    }
}
