import Core
import Foundation
import Testing
@testable import Config

@Suite struct KeySources {
    @Test func parsesTheConfigNotation() {
        #expect(KeySource(configValue: "credential:backup-key-2025") == .credential("backup-key-2025"))
        #expect(KeySource(configValue: "/etc/cairn/keys/a.key") == .file("/etc/cairn/keys/a.key"))
        #expect(KeySource(configValue: "keys/a.key", relativeTo: "/etc/cairn") == .file("/etc/cairn/keys/a.key"))
        #expect(KeySource(configValue: "credential:") == nil)
        #expect(KeySource(configValue: "credential:../x") == nil)
        #expect(KeySource(configValue: "") == nil)
    }

    @Test func credentialsResolveAgainstCREDENTIALS_DIRECTORY() throws {
        let env = ["CREDENTIALS_DIRECTORY": "/run/credentials/cairn.service"]
        #expect(try resolveKeyPath(.credential("backup-key-2025"), env: env) == "/run/credentials/cairn.service/backup-key-2025")
        #expect(try resolveKeyPath(.credential("k"), env: ["CREDENTIALS_DIRECTORY": "/run/c/"]) == "/run/c/k")
        #expect(try resolveKeyPath(.file("/etc/cairn/keys/a.key"), env: [:]) == "/etc/cairn/keys/a.key")
    }

    @Test func credentialWithoutCREDENTIALS_DIRECTORYIsAConfigError() {
        let error = #expect(throws: CairnError.self) { try resolveKeyPath(.credential("k"), env: [:]) }
        #expect(error?.code == .config)
        #expect(error?.message.contains("LoadCredential=k:") == true)
    }

    @Test func keysConfigResolvesByID() throws {
        let keys = KeysConfig(active: "a", sources: ["a": .credential("ka"), "b": .file("/k/b")])
        #expect(try keys.path(for: "a", env: ["CREDENTIALS_DIRECTORY": "/creds"]) == "/creds/ka")
        #expect(try keys.path(for: "b", env: [:]) == "/k/b")
        #expect(throws: CairnError.self) { try keys.path(for: "c", env: [:]) }
    }

    @Test func badKeyEntriesAreReported() throws {
        let f = try ConfigFixture(main: """
        [storage.a]
        url = "file:///srv/b"
        [keys]
        active = "k1"
        [keys.files]
        k1 = "credential:"
        "bad id!" = "/k"
        """)
        let issues = ConfigLoader.check(path: f.configPath).map(\.description)
        #expect(issues.contains("\(f.configPath):6: keys.files.k1: expected a key file path or \"credential:NAME\", got \"credential:\""))
        #expect(issues.contains("\(f.configPath):7: keys.files.\"bad id!\": key id must be 1–64 characters of A–Z a–z 0–9 . _ -"))
    }
}

@Suite struct SecretFiles {
    func writeSecret(_ text: String, mode: mode_t) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-secret-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(chmod(path, mode) == 0)
        return path
    }

    @Test func readsA0600FileAndTrimsTheTrailingNewline() throws {
        let path = try writeSecret("s3cr3t\n", mode: 0o600)
        defer { unlink(path) }
        #expect(try SecretFile.read(path) == "s3cr3t")
        let crlf = try writeSecret("s3cr3t\r\n", mode: 0o400)
        defer { unlink(crlf) }
        #expect(try SecretFile.read(crlf) == "s3cr3t")
    }

    @Test(arguments: [mode_t(0o644), 0o640, 0o604, 0o660])
    func refusesFilesOthersCanRead(mode: mode_t) throws {
        let path = try writeSecret("s3cr3t\n", mode: mode)
        defer { unlink(path) }
        let error = #expect(throws: CairnError.self) { try SecretFile.read(path, what: "password_file") }
        #expect(error?.code == .config)
        #expect(error?.message.contains("chmod 600 \(path)") == true)
        #expect(error?.message.contains(String(format: "%04o", mode)) == true)
        #expect(error?.message.contains("s3cr3t") == false)
    }

    @Test func refusesEmptyAndMissingFiles() throws {
        let path = try writeSecret("\n", mode: 0o600)
        defer { unlink(path) }
        #expect(throws: CairnError.self) { try SecretFile.read(path) }
        let missing = #expect(throws: CairnError.self) { try SecretFile.read("/nonexistent/secret") }
        #expect(missing?.code == .io)
    }

    @Test func storageAndBackupReadTheirSecretsWhenAsked() throws {
        let path = try writeSecret("topsecret\n", mode: 0o600)
        defer { unlink(path) }
        let storage = StorageConfig(name: "p", url: "s3://b", location: .s3(bucket: "b", prefix: ""),
                                    accessKeyID: "AK", secretAccessKeyFile: path)
        #expect(try storage.readSecretAccessKey() == "topsecret")
        #expect(!storage.description.contains("topsecret"))
        let none = StorageConfig(name: "l", url: "file:///x", location: .directory(path: "/x"))
        #expect(try none.readSecretAccessKey() == nil)
    }
    @Test func credentialNotationReadsFromCREDENTIALS_DIRECTORY() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-creds-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "from-systemd\n".write(toFile: dir + "/s3-secret", atomically: true, encoding: .utf8)
        #expect(chmod(dir + "/s3-secret", 0o400) == 0)   // systemd credentials are 0400
        let env = ["CREDENTIALS_DIRECTORY": dir]
        #expect(try SecretFile.resolve("credential:s3-secret", env: env) == dir + "/s3-secret")
        #expect(try SecretFile.resolve("/etc/cairn/s3-secret", env: [:]) == "/etc/cairn/s3-secret")
        #expect(try SecretFile.read("credential:s3-secret", env: env) == "from-systemd")

        let storage = StorageConfig(name: "p", url: "s3://b", location: .s3(bucket: "b", prefix: ""),
                                    accessKeyID: "AK", secretAccessKeyFile: "credential:s3-secret")
        #expect(try storage.readSecretAccessKey(env: env) == "from-systemd")
        let cluster = ClusterConfig(lockDatabase: "postgres://h/db", passwordFile: "credential:s3-secret")
        #expect(try cluster.readPassword(env: env) == "from-systemd")
    }

    @Test func credentialNotationFailsClearlyOutsideSystemd() {
        let unset = #expect(throws: CairnError.self) { try SecretFile.read("credential:s3-secret", what: "password_file", env: [:]) }
        #expect(unset?.code == .config)
        #expect(unset?.message.contains("password_file") == true)
        #expect(unset?.message.contains("LoadCredential=s3-secret:") == true)
        let bad = #expect(throws: CairnError.self) { try SecretFile.read("credential:../etc/shadow", env: ["CREDENTIALS_DIRECTORY": "/run/c"]) }
        #expect(bad?.code == .config)
    }

    @Test func loaderKeepsCredentialNotationForSecretFiles() throws {
        let main = ConfigFixture.main.replacingOccurrences(
            of: "secret_access_key_file = \"/run/credentials/cairn.service/s3-secret\"",
            with: "secret_access_key_file = \"credential:s3-secret\"") + """

        [cluster]
        lock_database = "postgres://cairn@locks.example/cairn_locks"
        password_file = "credential:lock-db-password"
        """
        let f = try ConfigFixture(main: main, jobs: ["db": ConfigFixture.backup])
        let config = try ConfigLoader.load(path: f.configPath)
        #expect(config.storages["primary"]?.secretAccessKeyFile == "credential:s3-secret")
        #expect(config.cluster?.passwordFile == "credential:lock-db-password")
        // Relative paths are still resolved against the config directory.
        let rel = try ConfigFixture(main: main.replacingOccurrences(of: "\"credential:lock-db-password\"", with: "\"lock.pw\""),
                                    jobs: ["db": ConfigFixture.backup])
        #expect(try ConfigLoader.load(path: rel.configPath).cluster?.passwordFile == rel.dir + "/lock.pw")
    }
}
