import Foundation
import Testing
import Core
import Crypto
import Config
import State
@testable import Jobs
@testable import ObjectStore

/// The migration against a hostile source tree (the web application writes
/// it) and a state directory that cannot be written.
@Suite struct MigrateHardeningTests {
    func job(_ fx: MigrateFixture, concurrency: Int = 4) throws -> MigrateJob {
        let spec = MigrateSpec(source: fx.src, prefix: "media", concurrency: concurrency,
                               multipartThreshold: 8 << 20, partSize: 5 << 20)
        return MigrateJob(name: "media", spec: spec, store: try fx.store(), stateDir: fx.stateDir, objectLock: nil)
    }

    @Test func aFileAndADirectorySwappedForSymlinksAfterTheWalkAreNotFollowed() async throws {
        let fx = try MigrateFixture(tag: "swap")
        defer { fx.remove() }
        let proxy = try ProxyControl()
        let others = try fx.smallTree(12, seed: 41)
        try fx.write("a/x.jpg", testData(3000, seed: 42))
        try fx.write("b/y.jpg", testData(3001, seed: 43))
        try fx.write("c/big.mp4", testData(9 << 20, seed: 44))   // multipart: read by parts
        // outside the tree: a secret, and a directory with files named like b's
        let outside = fx.dir + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let secret = Data("TOP-SECRET-\(UUID().uuidString)".utf8)
        try secret.write(to: URL(fileURLWithPath: outside + "/s3-secret"))
        try secret.write(to: URL(fileURLWithPath: outside + "/y.jpg"))
        try FileManager.default.createDirectory(atPath: outside + "/big", withIntermediateDirectories: true)
        let bigSecret = testData(9 << 20, seed: 45)
        try bigSecret.write(to: URL(fileURLWithPath: outside + "/big.mp4"))

        // One file at a time, in path order: the proxy holds the first PUT
        // (a 2023/… file, after the walk) while the tree is changed under the
        // job, before a/, b/ and c/ are opened.
        let heldPath = fx.storagePrefix + "/media/2023/"
        try await proxy.inject(.init(method: "PUT", path_contains: heldPath, action: "hold", seconds: 600))
        let migration = try job(fx, concurrency: 1)
        let run = Task { try await migration.run() }
        let held = try await eventually(30) {
            try await proxy.log(pathContaining: fx.storagePrefix).contains { $0.method == "PUT" && $0.fault == "hold" }
        }
        #expect(held)
        // a/x.jpg: now a symlink to the secret; b/: now a symlink to the outside directory;
        // c/big.mp4: another regular file (the outside one, moved in)
        #expect(rename(fx.src + "/a/x.jpg", fx.src + "/a/x.jpg.old") == 0)
        #expect(symlink(outside + "/s3-secret", fx.src + "/a/x.jpg") == 0)
        #expect(rename(fx.src + "/b", fx.src + "/b.old") == 0)
        #expect(symlink(outside, fx.src + "/b") == 0)
        #expect(rename(fx.src + "/c/big.mp4", fx.src + "/c/big.old") == 0)
        #expect(rename(outside + "/big.mp4", fx.src + "/c/big.mp4") == 0)
        try await proxy.release(pathContaining: heldPath)
        let report = try await run.value

        // the swapped paths are reported as changed and skipped; the rest migrated
        let skipped = Dictionary(uniqueKeysWithValues: report.skipped.map { ($0.path, $0.reason) })
        #expect(skipped["a/x.jpg"]?.hasPrefix("changed during the run (it or a parent directory is now a symlink)") == true, "\(report.skipped)")
        #expect(skipped["b/y.jpg"]?.hasPrefix("changed during the run (it or a parent directory is now a symlink)") == true, "\(report.skipped)")
        #expect(skipped["c/big.mp4"]?.hasPrefix("changed during the run (a different file is at its path now)") == true, "\(report.skipped)")
        #expect(report.failed.isEmpty, "\(report.failed)")
        #expect(report.uploaded == others.count)
        let rendered = report.render()
        #expect(rendered.contains("  a/x.jpg: changed during the run (it or a parent directory is now a symlink); skipped, not followed"))

        // the outside contents never reached the bucket
        let store = try fx.store()
        let objects = try await store.list(prefix: "media/")
        #expect(Set(objects.map(\.key)) == Set(others.map { "media/" + $0 }))
        let secretSHA = Digest.sha256(secret).hexString, bigSHA = Digest.sha256(bigSecret).hexString
        for o in objects {
            let body = try await store.get(key: o.key, range: nil)
            let (sha, _) = try await FileHashing.sha256(of: body.body)
            #expect(sha != secretSHA && sha != bigSHA, "\(o.key)")
        }
        let log = try await proxy.log(pathContaining: fx.storagePrefix)
        #expect(!log.contains { $0.method == "PUT" && ($0.path.hasSuffix("/x.jpg") || $0.path.hasSuffix("/y.jpg") || $0.path.hasSuffix("/big.mp4")) })
        #expect(try await store.listMultipartUploads(prefix: "media/").isEmpty)
        let cp = try CheckpointStore(path: fx.checkpointPath)
        #expect(try cp.file("a/x.jpg")?.state != .done)
    }

    @Test func aFullStateDirectoryStopsTheRunWithItsReportAndTheRerunSendsNothingTwice() async throws {
        guard geteuid() == 0 else { return }   // mounting a tmpfs needs root (the test machine runs as root)
        let fx = try MigrateFixture(tag: "full")
        defer { fx.remove() }
        let proxy = try ProxyControl()
        try FileManager.default.createDirectory(atPath: fx.stateDir, withIntermediateDirectories: true)
        let mount = try await CLI.run(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", fx.stateDir], executable: "/bin/mount")
        try #require(mount.status == 0, "\(mount.stderr)")
        defer { _ = umount2(fx.stateDir, Int32(MNT_DETACH)) }

        // a first run creates the databases while there is room
        let first5 = try fx.smallTree(5, seed: 51)
        let first = try await fx.cli(["--concurrency", "4"])
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")

        // then the state directory fills up, leaving a few pages
        let more = (0..<200).map { String(format: "late/f-%04d.jpg", $0) }
        for (i, p) in more.enumerated() { try fx.write(p, testData(1500 + i, seed: 500 + UInt64(i))) }
        let filler = fx.stateDir + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        let chunk = [UInt8](repeating: 0x55, count: 64 << 10)
        var written = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            written += n
        }
        #expect(ftruncate(fd, off_t(max(0, written - (96 << 10)))) == 0)
        close(fd)

        let second = try await fx.cli(["--concurrency", "4"])
        #expect(second.status == ErrorCode.io.exitStatus, "\(second.stdout)\n\(second.stderr)")
        #expect(second.stdout.contains("migration media: "), "\(second.stdout)")   // the report is printed
        #expect(second.stdout.contains("  STOPPED "), "\(second.stdout)")
        #expect(second.stdout.contains("  reason          checkpoint database"), "\(second.stdout)")
        #expect(second.stdout.contains("SQLite error 13"), "\(second.stdout)")   // SQLITE_FULL, from the error's code
        // One error line: the migration's stop (and, when the full disk also refused the run's end, that too).
        #expect(second.stderr.contains("cairn: error: migration media stopped: ")
                || second.stderr.contains("cairn: error: run of media failed (migration media stopped: "), "\(second.stderr)")
        #expect(second.stderr.split(separator: "\n").filter { $0.hasPrefix("cairn: error: ") }.count == 1)
        // no flood of "could not record" lines: one line says why the run stops
        #expect(!second.stderr.contains("could not record"), "\(second.stderr)")

        // freeing space: the checkpoint tells how far it got; the run stopped within
        // the files in flight (4) after the last one it could record
        #expect(unlink(filler) == 0)
        let rows = try CheckpointStore(path: fx.checkpointPath).allFiles()
        let recorded = rows.values.filter { $0.state == .done }.count - first5.count
        let bucketPath = "/\(try TestEnv.bucket)/\(fx.storagePrefix)/media/"
        let putsSecond = proxy.completedPuts(try await proxy.log(pathContaining: fx.storagePrefix))
            .filter { $0.key.hasPrefix(bucketPath + "late/") }
        #expect(putsSecond.count < more.count, "the run went on: \(putsSecond.count) files sent")
        #expect(putsSecond.count <= recorded + 4 + 1, "\(putsSecond.count) sent, \(recorded) recorded")

        let third = try await fx.cli(["--concurrency", "4"])
        #expect(third.status == 0, "\(third.stdout)\n\(third.stderr)")
        let puts = proxy.completedPuts(try await proxy.log(pathContaining: fx.storagePrefix))
        #expect(puts.count == first5.count + more.count)
        #expect(puts.values.allSatisfy { $0 == 1 }, "\(puts.filter { $0.value != 1 })")
        try await fx.expectBucketEqualsSource(try fx.store())
    }

    @Test func namesWithANewlineOrInvalidUTF8GiveOneEscapedReportLineEach() async throws {
        let fx = try MigrateFixture(tag: "names")
        defer { fx.remove() }
        try fx.smallTree(3, seed: 61)
        try FileManager.default.createDirectory(atPath: fx.src + "/n", withIntermediateDirectories: true)
        // a FIFO whose name tries to add a report line, and a file whose name is not UTF-8
        #expect(mkfifo(fx.src + "/n/pipe\n  failed          0\u{1B}[2K", 0o600) == 0)
        let bad: [UInt8] = Array((fx.src + "/n/bad-").utf8) + [0xFF, 0x0A, 0x2E, 0x6A, 0x70, 0x67, 0]
        let fd = bad.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) } }
        #expect(fd >= 0)
        close(fd)

        let run = try await fx.cli([])
        #expect(run.status == ErrorCode.io.exitStatus, "\(run.stdout)\n\(run.stderr)")
        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.filter { $0.contains("pipe") } == ["  n/pipe\\n  failed          0\\e[2K: FIFO (not a regular file)"], "\(run.stdout)")
        #expect(lines.filter { $0.contains("bad-") } == ["  n/bad-\\xFF\\n.jpg: name is not valid UTF-8, so it cannot be an object key; rename it"], "\(run.stdout)")
        #expect(lines.filter { $0.hasPrefix("  failed ") } == ["  failed          1"])
        #expect(!run.stdout.contains("\u{1B}") && !run.stderr.contains("\u{1B}"))
        #expect(run.stdout.contains("uploaded        3 "), "\(run.stdout)")
        // (a regular file named with a newline is a valid S3 key, but moto's
        // routing refuses it, so its upload is not tested here; the mapping
        // file's JSON escaping of such a name is in MigrateUnitTests)
    }
}
