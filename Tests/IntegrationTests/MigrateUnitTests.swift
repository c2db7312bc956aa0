import Foundation
import Testing
import Core
import Config
import State
@testable import Jobs
@testable import ObjectStore

/// Pure parts of the migration job (no services needed): content types, rate
/// parsing, keys, the tree walker, URLs, reports. They live in this target
/// because it is the one test target that depends on Jobs.
@Suite struct MigrateUnitTests {
    @Test func mimeTypesParseDebianFormatCaseInsensitivelyWithFallback() {
        let m = MimeTypes(parsing: """
            # comment
            image/jpeg\t\t\t\tjpeg jpg jpe
            text/plain\t\t\t\ttxt asc # trailing comment
            application/x-empty
            image/x-other\t\tjpg
            """)
        #expect(m.contentType(forPath: "2024/01/u1/photo.JPG") == "image/jpeg")
        #expect(m.contentType(forPath: "a/notes.txt") == "text/plain")
        #expect(m.contentType(forPath: "a/noext") == "application/octet-stream")
        #expect(m.contentType(forPath: "a/.hidden") == "application/octet-stream")
        #expect(m.contentType(forPath: "a.dir/file") == "application/octet-stream")
        #expect(m.contentType(forPath: "x.unknownext") == "application/octet-stream")
        // absent file: everything octet-stream, no crash
        #expect(MimeTypes.system(path: "/nonexistent/mime.types").contentType(forPath: "a.jpg") == "application/octet-stream")
    }

    @Test func systemMimeTypesKnowCommonMedia() {
        // media-types is installed by scripts/setup
        let m = MimeTypes.system()
        #expect(m.contentType(forPath: "a.jpg") == "image/jpeg")
        #expect(m.contentType(forPath: "a.png") == "image/png")
        #expect(m.contentType(forPath: "a.pdf") == "application/pdf")
        #expect(m.contentType(forPath: "a.mp4") == "video/mp4")
    }

    @Test func bandwidthLimitsParseLikeRclone() throws {
        #expect(try BandwidthLimiter.parse("10M") == 10 << 20)
        #expect(try BandwidthLimiter.parse("512k") == 512 << 10)
        #expect(try BandwidthLimiter.parse("1.5M") == 1_572_864)
        #expect(try BandwidthLimiter.parse("20MiB/s") == 20 << 20)
        #expect(try BandwidthLimiter.parse("500KB/s") == 500_000)
        #expect(try BandwidthLimiter.parse("1000000") == 1_000_000)
        #expect(try BandwidthLimiter.parse("off") == nil)
        #expect(try BandwidthLimiter.parse("0") == nil)
        #expect(throws: CairnError.self) { try BandwidthLimiter.parse("fast") }
        #expect(throws: CairnError.self) { try BandwidthLimiter.parse("-5M") }
    }

    @Test func tokenBucketChargesDebtAtTheConfiguredRate() {
        let l = BandwidthLimiter(bytesPerSecond: 1000)
        let t0 = ContinuousClock.now
        #expect(l.reserve(1000, now: t0) == .zero)                 // the first second's burst
        #expect(l.reserve(500, now: t0) == .milliseconds(500))     // then debt, paid at 1000 B/s
        #expect(l.reserve(500, now: t0) == .seconds(1))
        // two seconds later the debt is paid and the bucket refilled up to one second's worth
        #expect(l.reserve(1000, now: t0 + .seconds(3)) == .zero)
    }

    @Test func keysArePrefixPlusPathWithoutNormalisation() {
        #expect(MigrateJob.objectKey(prefix: "media", path: "2024/01/a b+c%#?.jpg") == "media/2024/01/a b+c%#?.jpg")
        #expect(MigrateJob.objectKey(prefix: "/media/", path: "x") == "media/x")
        #expect(MigrateJob.objectKey(prefix: "", path: "x/y") == "x/y")
        let nfd = "e\u{301}.jpg", nfc = "\u{e9}.jpg"
        #expect(Array(MigrateJob.objectKey(prefix: "m", path: nfd).utf8) == Array("m/".utf8) + Array(nfd.utf8))
        #expect(Array(MigrateJob.objectKey(prefix: "m", path: nfc).utf8) == Array("m/".utf8) + Array(nfc.utf8))
    }

    @Test func mtimeMetadataIsSecondsWithNanoseconds() {
        #expect(MigrateJob.mtimeString(1_700_000_000_123_456_789) == "1700000000.123456789")
        #expect(MigrateJob.mtimeString(5) == "0.000000005")
        #expect(MigrateJob.mtimeString(-1) == "-1.999999999")
    }

    @Test func partSizeGrowsOnlyWhenTenThousandPartsWouldNotSuffice() {
        #expect(MigrateJob.partSize(fileSize: 100 << 20, preferred: 16 << 20) == 16 << 20)
        #expect(MigrateJob.partSize(fileSize: 200 << 30, preferred: 16 << 20) == 21 << 20)
    }

    @Test func alreadyPresentNeedsSizeAndChecksum() {
        let sha = String(repeating: "a", count: 64)
        let withMeta = ObjectInfo(key: "k", size: 10, etag: "\"x-2\"", metadata: ["sha256": sha])
        #expect(MigrateJob.matches(withMeta, size: 10, sha256: sha, md5: nil))
        #expect(!MigrateJob.matches(withMeta, size: 11, sha256: sha, md5: nil))
        #expect(!MigrateJob.matches(withMeta, size: 10, sha256: String(repeating: "b", count: 64), md5: nil))
        let plain = ObjectInfo(key: "k", size: 10, etag: "\"0123abcd\"")
        #expect(MigrateJob.matches(plain, size: 10, sha256: sha, md5: "0123abcd"))
        #expect(!MigrateJob.matches(plain, size: 10, sha256: sha, md5: "ffff"))
        #expect(!MigrateJob.matches(ObjectInfo(key: "k", size: 10, etag: "\"0123abcd-3\""), size: 10, sha256: sha, md5: "0123abcd"))
    }

    @Test func walkerListsFilesInByteOrderAndReportsOddEntries() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-walk-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/b/sub", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/a-dir", withIntermediateDirectories: true)
        for p in ["b/sub/z.jpg", "b/a.txt", "a-dir/x", "B.txt", "a b+c%#?é.png"] {
            try Data(p.utf8).write(to: URL(fileURLWithPath: root + "/" + p))
        }
        try fm.createSymbolicLink(atPath: root + "/link-in.jpg", withDestinationPath: "b/sub/z.jpg")
        try fm.createSymbolicLink(atPath: root + "/link-out", withDestinationPath: "/etc/hostname")
        try fm.createSymbolicLink(atPath: root + "/link-dir", withDestinationPath: "b")
        try fm.createSymbolicLink(atPath: root + "/dangling", withDestinationPath: "nope")
        #expect(mkfifo(root + "/pipe", 0o600) == 0)
        // a name that is not valid UTF-8
        let bad: [UInt8] = Array((root + "/bad-").utf8) + [0xFF, 0x41, 0]
        let fd = bad.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) } }
        #expect(fd >= 0)
        close(fd)
        // a path whose key would be longer than 1,024 bytes with this prefix
        let longName = String(repeating: "n", count: 200)
        try Data().write(to: URL(fileURLWithPath: root + "/" + longName))

        let r = try TreeWalker(root: root, keyPrefixBytes: 900).walk()
        #expect(r.files.map(\.path) == ["B.txt", "a b+c%#?é.png", "a-dir/x", "b/a.txt", "b/sub/z.jpg", "link-in.jpg"])
        let link = try #require(r.files.last)
        #expect(link.symlinkTo == "b/sub/z.jpg")
        #expect(link.size == Int64("b/sub/z.jpg".utf8.count))
        #expect(r.files[0].size == 5)
        let issues = Dictionary(uniqueKeysWithValues: r.issues.map { ($0.path, $0) })
        #expect(issues["pipe"]?.kind == .skipped)
        #expect(issues["pipe"]?.reason.contains("FIFO") == true)
        #expect(issues["link-out"]?.reason.contains("outside the source") == true)
        #expect(issues["link-dir"]?.reason.contains("directories are not followed") == true)
        #expect(issues["dangling"]?.kind == .skipped)
        #expect(issues["bad-\\xFFA"]?.kind == .failed)
        #expect(issues["bad-\\xFFA"]?.reason.contains("UTF-8") == true)
        #expect(issues[longName]?.reason.contains("1024") == true)
        #expect(r.issues.count == 6)
    }

    @Test func walkerLeavesOutExcludedFilesAndDoesNotEnterExcludedDirectories() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-walk-\(UUID().uuidString)").path
        defer { chmod(root + "/u/7/.thumbnails", 0o755); try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        for d in ["u/7/.thumbnails", "tmp", "x/tmp", "cache"] { try fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true) }
        for p in ["u/7/a.jpg", "u/7/a.jpg.tmp", "u/7/.thumbnails/a.jpg", "tmp/upload-1", "x/tmp/keep.png", "cache", "Thumbs.db"] where p != "cache" {
            try Data(p.utf8).write(to: URL(fileURLWithPath: root + "/" + p))
        }
        try Data("c".utf8).write(to: URL(fileURLWithPath: root + "/cache/c.bin"))
        #expect(mkfifo(root + "/x/excluded.fifo", 0o600) == 0)
        // Not readable: it would be a failure if the walker went in.
        #expect(chmod(root + "/u/7/.thumbnails", 0) == 0)
        let filter = try PathFilter(parsing: ["*.tmp", ".thumbnails/", "/tmp/", "Thumbs.db", "*.fifo", "cache"])
        let r = try TreeWalker(root: root, exclude: filter).walk()
        // `cache` without a slash matches the directory too (any type).
        #expect(r.files.map(\.path) == ["u/7/a.jpg", "x/tmp/keep.png"])
        #expect(r.issues.isEmpty, "\(r.issues)")
        #expect(r.excludedFiles == 3)          // a.jpg.tmp, Thumbs.db, excluded.fifo
        #expect(r.excludedDirectories == 3)    // .thumbnails, /tmp, cache
    }

    @Test func walkerReportsAnUnreadableDirectoryAndGoesOn() throws {
        guard geteuid() != 0 else {
            // root reads everything: the CLI test runs cairn without CAP_DAC_OVERRIDE instead
            return
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-walk-\(UUID().uuidString)").path
        defer { chmod(root + "/locked", 0o755); try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/locked", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/ok.txt"))
        chmod(root + "/locked", 0)
        let r = try TreeWalker(root: root).walk()
        #expect(r.files.map(\.path) == ["ok.txt"])
        #expect(r.issues.first?.reason.contains("Permission denied") == true)
    }

    @Test func walkerYieldsPathsInByteOrderInBatchesAsTheWholeWalkDoes() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-order-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        // a directory's subtree sorts as "name/": a.txt < a/b < a0 ('.' < '/' < '0')
        let paths = ["a.txt", "a/b", "a/c/d", "a/c.x", "a0", "b/z/y/x", "b/z/y.txt", "b-c", "é/1", "Z"]
        for p in paths {
            let url = URL(fileURLWithPath: root + "/" + p)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(p.utf8).write(to: url)
        }
        let expected = paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        #expect(try TreeWalker(root: root).walk().files.map(\.path) == expected)
        for max in [1, 3] {
            let cursor = try TreeWalker(root: root).start()
            var seen: [String] = []
            while true {
                let batch = try cursor.next(max: max)
                if batch.isEmpty { break }
                #expect(batch.count <= max)
                seen += batch.map(\.path)
            }
            #expect(seen == expected, "batches of \(max)")
            #expect(cursor.filesSeen == paths.count)
        }
    }

    @Test func mappingURLsFollowTheStorageAddressing() {
        let creds = StaticCredentialsProvider(AWSCredentials(accessKeyId: "a", secretAccessKey: "b"))
        let pathStyle = S3Store(config: S3Configuration(bucket: "b", prefix: "cairn", endpoint: "http://127.0.0.1:9000"), credentials: creds)
        let loc = MappingFile.location(store: pathStyle, key: "media/a b+c%#?é.jpg")
        #expect(loc.key == "cairn/media/a b+c%#?é.jpg")
        #expect(loc.url == "http://127.0.0.1:9000/b/cairn/media/a%20b%2Bc%25%23%3F%C3%A9.jpg")
        let aws = S3Store(config: S3Configuration(bucket: "media-bucket", region: "eu-west-1"), credentials: creds)
        #expect(MappingFile.location(store: aws, key: "x/y.png").url == "https://media-bucket.s3.eu-west-1.amazonaws.com/x/y.png")
        let dir = DirectoryStore(root: "/srv/objects")
        #expect(MappingFile.location(store: dir, key: "m/a b.jpg").url == "file:///srv/objects/m/a%20b.jpg")
    }

    @Test func mappingBasisChangesWithTheStorageAddressOnly() {
        let creds = StaticCredentialsProvider(AWSCredentials(accessKeyId: "a", secretAccessKey: "b"))
        func s3(_ c: S3Configuration) -> S3Store { S3Store(config: c, credentials: creds) }
        let base = MappingFile.basis(store: s3(S3Configuration(bucket: "b", prefix: "cairn", endpoint: "http://127.0.0.1:9000")))
        #expect(base == MappingFile.basis(store: s3(S3Configuration(bucket: "b", prefix: "cairn", endpoint: "http://127.0.0.1:9000"))))
        for other in [S3Configuration(bucket: "b", prefix: "other", endpoint: "http://127.0.0.1:9000"),
                      S3Configuration(bucket: "c", prefix: "cairn", endpoint: "http://127.0.0.1:9000"),
                      S3Configuration(bucket: "b", prefix: "cairn", endpoint: "http://127.0.0.1:9001"),
                      S3Configuration(bucket: "b", prefix: "cairn", endpoint: "http://127.0.0.1:9000", pathStyle: false)] {
            #expect(MappingFile.basis(store: s3(other)) != base, "\(other)")
        }
        #expect(MappingFile.basis(store: DirectoryStore(root: "/srv/a")) != MappingFile.basis(store: DirectoryStore(root: "/srv/b")))
        // a key's URL is the basis's URL with the encoded key appended, so the basis stands for every line's URL
        let st = s3(S3Configuration(bucket: "b", prefix: "cairn", endpoint: "http://127.0.0.1:9000"))
        let empty = MappingFile.location(store: st, key: "")
        #expect(MappingFile.location(store: st, key: "m/a b.jpg").url == empty.url! + "m/a%20b.jpg")
    }

    @Test func unchangedTestUsesDoneAtKeySizeAndMtime() {
        let f = WalkedFile(path: "a/b.jpg", size: 10, mtimeNs: 77, device: 1, inode: 2)
        #expect(MigrateJob.isUnchanged(f, CheckpointStore.QuickRow(size: 10, mtimeNs: 77, doneAtKey: true)))
        #expect(!MigrateJob.isUnchanged(f, nil))
        #expect(!MigrateJob.isUnchanged(f, CheckpointStore.QuickRow(size: 10, mtimeNs: 77, doneAtKey: false)))
        #expect(!MigrateJob.isUnchanged(f, CheckpointStore.QuickRow(size: 11, mtimeNs: 77, doneAtKey: true)))
        #expect(!MigrateJob.isUnchanged(f, CheckpointStore.QuickRow(size: 10, mtimeNs: 78, doneAtKey: true)))
    }

    @Test func pathRangeIsInUTF8ByteOrder() {
        func w(_ p: String) -> WalkedFile { WalkedFile(path: p, size: 1, mtimeNs: 1, device: 1, inode: 1) }
        #expect(MigrateJob.pathRange([]) == nil)
        #expect(MigrateJob.pathRange([w("x")])! == ("x", "x"))
        // "é" (C3 A9) sorts after "z" in bytes; "a/b" < "a0" ('/' < '0'); "Z" < "a"
        let r = MigrateJob.pathRange([w("a0"), w("é.jpg"), w("a/b"), w("z"), w("Z")])!
        #expect(r.low == "Z" && r.high == "é.jpg")
    }

    @Test func reportListsAtMostTwentyFailuresThenCounts() {
        var r = MigrateReport(job: "media", source: "/src", destination: "s3://b/m/")
        r.failed = (1...25).map { MigrateFileIssue(path: "f\($0)", reason: "cannot read: Permission denied") }
        let text = r.render()
        #expect(text.contains("f20: cannot read: Permission denied"))
        #expect(!text.contains("f21:"))
        #expect(text.contains("and 5 more"))
        #expect(r.summary.contains("25 failed"))
    }

    @Test func aWalkedFileOpensOnlyAsTheFileTheWalkSaw() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-open-\(UUID().uuidString)").path
        let outside = root + "-outside"
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: outside) }
        let fm = FileManager.default
        for d in ["a", "b", "c", "d"] { try fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true) }
        try fm.createDirectory(atPath: outside + "/b", withIntermediateDirectories: true)
        for p in ["a/x.jpg", "b/y.jpg", "c/z.jpg", "d/ok.jpg"] { try Data(p.utf8).write(to: URL(fileURLWithPath: root + "/" + p)) }
        try Data("secret".utf8).write(to: URL(fileURLWithPath: outside + "/secret"))
        try Data("secret".utf8).write(to: URL(fileURLWithPath: outside + "/b/y.jpg"))
        try fm.createSymbolicLink(atPath: root + "/link.jpg", withDestinationPath: "d/ok.jpg")
        let walked = try TreeWalker(root: root).walk()
        let files = Dictionary(uniqueKeysWithValues: walked.files.map { ($0.path, $0) })
        #expect(files.count == 5)

        // a file becomes a symlink, a parent directory becomes a symlink, a file is replaced by another
        #expect(rename(root + "/a/x.jpg", root + "/a/x.old") == 0 && symlink(outside + "/secret", root + "/a/x.jpg") == 0)
        #expect(rename(root + "/b", root + "/b.old") == 0 && symlink(outside + "/b", root + "/b") == 0)
        try Data("other".utf8).write(to: URL(fileURLWithPath: root + "/c/new"))   // a new inode: the old one still exists
        #expect(rename(root + "/c/new", root + "/c/z.jpg") == 0)
        for p in ["a/x.jpg", "b/y.jpg"] {
            #expect(throws: FileProblem.replaced("it or a parent directory is now a symlink")) { try files[p]!.open(beneath: walked.root) }
        }
        do {
            _ = try files["c/z.jpg"]!.open(beneath: walked.root)
            Issue.record("c/z.jpg opened although it is another file now")
        } catch let p as FileProblem {
            if case .replaced = p {} else { Issue.record("\(p)") }
        }
        // unchanged files (and a symlink inside the tree, opened at its target) open and read as walked
        for p in ["d/ok.jpg", "link.jpg"] {
            let f = try files[p]!.open(beneath: walked.root)
            let h = try FileHashing.hash(f, md5: false, keepLimit: 100, cancel: nil)
            #expect(h.data == Data("d/ok.jpg".utf8))
            // kept bytes come with the CRC32C their PUT sends (not hashed again by the store)
            var crc = CRC32C(); crc.update(Data("d/ok.jpg".utf8))
            #expect(h.crc32c == crc.base64)
            let notKept = try FileHashing.hash(f, md5: false, keepLimit: 7, cancel: nil)
            #expect(notKept.data == nil && notKept.crc32c == nil && notKept.sha256 == h.sha256)
        }
        // the root itself being renamed away does not matter: the walk's descriptor is used
        #expect(rename(root, root + "-moved") == 0)
        defer { try? fm.removeItem(atPath: root + "-moved") }
        #expect(try files["d/ok.jpg"]!.open(beneath: walked.root).stat().st_size == 8)
    }

    @Test func mappingFileKeepsExactNamesOnOneLineEach() throws {
        let names = ["a/line\nbreak.jpg", "b/\u{1B}[31mred.png", "c/back\\slash.txt"]
        let entries = names.map { MappingEntry(path: $0, key: "media/" + $0, size: 1, sha256: "00", content_type: "image/jpeg", url: nil) }
        let text = String(decoding: MappingFile.encode(entries), as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(!text.contains("\u{1B}"))
        #expect(try lines.map { try JSONDecoder().decode(MappingEntry.self, from: Data($0.utf8)).path } == names)
    }

    @Test func mappingLinesAreWhatJSONEncoderWrites() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // every ASCII character, alone and in a name; some non-ASCII (NFD, emoji, U+2028, U+FEFF)
        var names = (0..<128).map { String(UnicodeScalar(UInt8($0))) }
        names += (0..<128).map { "dir/a\(UnicodeScalar(UInt8($0)))b.jpg" }
        names += ["café-nfd-e\u{301}.jpg", "😀/x.png", "a\u{2028}b\u{2029}c", "\u{FEFF}bom", "\u{7F}del", "", "a b+c%#?é.jpg"]
        for (i, n) in names.enumerated() {
            for url in [nil, "http://h:9/b/" + n] as [String?] {
                let e = MappingEntry(path: n, key: "media/" + n, size: Int64(i) * 1_000_003 - 5, sha256: n, content_type: n, url: url)
                var line: [UInt8] = []
                MappingFile.appendLine(e, to: &line)
                let expected = try enc.encode(e) + Data([0x0A])
                #expect(Data(line) == expected, "\(Array(n.utf8))")
                #expect(try JSONDecoder().decode(MappingEntry.self, from: Data(line.dropLast())) == e)
            }
        }
    }

    @Test func aStoppedReportSaysWhyAndHowMuchWasLeft() {
        var r = MigrateReport(job: "media", source: "/src", destination: "s3://b/m/")
        r.uploaded = 7
        r.notRecorded = 2
        r.stop(CairnError(.io, "checkpoint database /s/m.sqlite: cannot record a\nb in the checkpoint"), notStarted: 190)
        let text = r.render()
        #expect(text.contains("  STOPPED         190 file(s) not started, 2 sent but not recorded"))
        #expect(text.contains("  reason          checkpoint database /s/m.sqlite: cannot record a\\nb in the checkpoint"))
        #expect(r.stopCode == .io)
        #expect(r.summary.contains("stopped (190 not started)"))
    }
}
