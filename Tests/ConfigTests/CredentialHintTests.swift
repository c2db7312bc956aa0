import Core
import Foundation
import Testing
@testable import Config

@Suite struct CredentialHintTests {
    @Test func findsTheLastLoadCredentialSourceOfTheName() {
        let unit = """
        [Service]
        LoadCredential=s3-secret:/etc/cairn/s3-secret
        LoadCredential=backup-key:/etc/cairn/keys/backup.key
        """
        let dropIn = "[Service]\nLoadCredential=backup-key: /srv/keys/2026.key \n"
        #expect(CredentialHint.source(of: "backup-key", unitTexts: [unit]) == "/etc/cairn/keys/backup.key")
        #expect(CredentialHint.source(of: "backup-key", unitTexts: [unit, dropIn]) == "/srv/keys/2026.key")
        #expect(CredentialHint.source(of: "s3-secret", unitTexts: [unit, dropIn]) == "/etc/cairn/s3-secret")
        #expect(CredentialHint.source(of: "backup", unitTexts: [unit]) == nil)
        #expect(CredentialHint.source(of: "backup-key", unitTexts: ["# LoadCredential=backup-key:/x"]) == nil)
    }

    @Test func readsTheUnitAndItsDropIns() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-unit-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/cairn.service.d", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "[Service]\nLoadCredential=k:/etc/cairn/k.key\n".write(toFile: dir + "/cairn.service", atomically: true, encoding: .utf8)
        #expect(CredentialHint.loadCredentialSource(of: "k", unitFiles: [dir + "/cairn.service"]) == "/etc/cairn/k.key")
        try "[Service]\nLoadCredential=k:/root/k.key\n".write(toFile: dir + "/cairn.service.d/override.conf", atomically: true, encoding: .utf8)
        #expect(CredentialHint.loadCredentialSource(of: "k", unitFiles: [dir + "/cairn.service"]) == "/root/k.key")
        #expect(CredentialHint.loadCredentialSource(of: "k", unitFiles: [dir + "/missing.service"]) == nil)
    }

    @Test func theMessageIsOneLineNamingTheKeyFileToPass() {
        let known = CredentialHint.message(keyID: "2026-11", credential: "backup-key", source: "/etc/cairn/keys/backup.key")
        #expect(!known.contains("\n"))
        #expect(known.contains("--key-file 2026-11=/etc/cairn/keys/backup.key"))
        #expect(known.contains("CREDENTIALS_DIRECTORY"))
        let unknown = CredentialHint.message(keyID: "k", credential: "backup-key", source: nil)
        #expect(unknown.contains("--key-file k=/path/to/key"))
    }

    @Test func aCredentialKeyOutsideSystemdThrowsTheHint() {
        let keys = KeysConfig(active: "k", sources: ["k": .credential("backup-key")])
        let error = #expect(throws: CairnError.self) { try keys.path(for: "k", env: [:]) }
        #expect(error?.code == .config)
        #expect(error?.message.contains("--key-file k=") == true)
        #expect(error?.message.contains("'backup-key'") == true)
    }
}
