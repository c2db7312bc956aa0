import Testing
import Foundation
import Core
import Crypto
@testable import Pipeline

/// scripts/decrypt-backup.py is written from docs/FORMAT.md: it must read what Cairn writes.
@Suite struct PythonDecryptorTests {
    let dir: URL
    let keyFile: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-py-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        keyFile = dir.appendingPathComponent("master.key").path
        try Data((testKey.hexString + "\n").utf8).write(to: URL(fileURLWithPath: keyFile))
        #expect(chmod(keyFile, 0o600) == 0)
    }

    /// Runs the script on `ciphertext`; returns exit status, stdout and stderr.
    func runScript(_ ciphertext: Data, extraArgs: [String] = [], viaStdin: Bool = false) async throws -> (Int32, Data, String) {
        let input = dir.appendingPathComponent("in-\(UUID().uuidString).aes")
        try ciphertext.write(to: input)
        let outURL = dir.appendingPathComponent("out-\(UUID().uuidString)")
        let errURL = dir.appendingPathComponent("err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let script = repoRoot.appendingPathComponent("scripts/decrypt-backup.py").path
        p.arguments = ["python3", script, "--key-file", keyFile] + extraArgs + (viaStdin ? [] : [input.path])
        if viaStdin { p.standardInput = try FileHandle(forReadingFrom: input) }
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        // Wait without blocking a cooperative thread (two of them here).
        var launchError: (any Error)?
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            p.terminationHandler = { _ in c.resume() }
            do { try p.run() } catch { p.terminationHandler = nil; launchError = error; c.resume() }
        }
        if let launchError { throw launchError }
        return (p.terminationStatus, try Data(contentsOf: outURL), try String(contentsOf: errURL, encoding: .utf8))
    }

    @Test func decryptsCairnOutputByteForByte() async throws {
        for (size, seg) in [(0, 1 << 20), (1, 16), (64 * 3, 64), (3 << 20 | 12345, 1 << 20), (200_001, 65536)] {
            let pt = randomBytes(size)
            let (status, out, err) = try await runScript(try encrypt(pt, segmentSize: seg), extraArgs: ["--key-id", testKeyId])
            #expect(status == 0, "size \(size) seg \(seg): \(err)")
            #expect(out == pt, "size \(size) seg \(seg)")
        }
        let pt = compressibleData(100_000)
        let (status, out, _) = try await runScript(try encrypt(pt, segmentSize: 4096), viaStdin: true)
        #expect(status == 0 && out == pt)
    }

    @Test func failsOnTamperingTruncationAndWrongKey() async throws {
        let ct = try encrypt(randomBytes(1000), segmentSize: 256)
        let h = EncryptedStream.headerSize(keyIdLength: testKeyId.utf8.count)
        var flipped = ct; flipped[h + 300] ^= 1
        var header = ct; header[h - 5] ^= 1
        let cases: [(Data, String)] = [
            (flipped, "authentication failed at segment 1"),
            (header, "header failed authentication"),
            (ct.prefix(h + 272), "truncated"),
            (ct.prefix(ct.count - 3), "truncated"),
            (try encrypt(randomBytes(1024), segmentSize: 256) + Data([0]), "trailing data"),  // full last segment
            (ct + Data([0]), "truncated or corrupted"),  // the script does not search for a shorter last segment
            (Data("hello".utf8), "not a Cairn encrypted stream"),
        ]
        for (data, message) in cases {
            let (status, _, err) = try await runScript(data)
            #expect(status != 0)
            #expect(err.contains(message), "expected \(message), got \(err)")
        }
        let (status, _, err) = try await runScript(ct, extraArgs: ["--key-id", "other"])
        #expect(status != 0 && err.contains("not in the keyring"))
        try Data(count: 32).write(to: URL(fileURLWithPath: keyFile))
        let wrong = try await runScript(ct)
        #expect(wrong.0 != 0 && wrong.2.contains("wrong key for key id \"\(testKeyId)\""))
    }

    @Test func readsVersion1AndVersion2WithAContext() async throws {
        let v1 = try await runScript(EncryptedStreamVersion1Tests.v1a)
        #expect(v1.0 == 0, "\(v1.2)")
        #expect(v1.1 == EncryptedStreamVersion1Tests.v1aPlaintext)
        let ctx = StreamContext(job: "marketplace-db", backupID: "20261203T023000Z-1a2b3c4d", object: "globals")
        let pt = randomBytes(5000)
        let ct = try encrypt(pt, segmentSize: 1024, context: ctx)
        let v2 = try await runScript(ct)
        #expect(v2.0 == 0, "\(v2.2)")
        #expect(v2.1 == pt)
        // The context is authenticated: one changed letter of the job name fails the header.
        var relabelled = ct
        relabelled[12 + testKeyId.utf8.count + 1] ^= 0x01
        let bad = try await runScript(relabelled)
        #expect(bad.0 != 0 && bad.2.contains("header failed authentication"), "\(bad.2)")
    }
}
