import Foundation

/// A throwaway configuration directory: `cairn.toml` plus `jobs/*.toml`.
final class ConfigFixture {
    let dir: String
    var configPath: String { dir + "/cairn.toml" }

    init(main: String, jobs: [String: String] = [:]) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/jobs", withIntermediateDirectories: true)
        try write("cairn.toml", main)
        for (name, text) in jobs { try write("jobs/\(name).toml", text) }
    }

    func write(_ relative: String, _ text: String) throws {
        try text.write(toFile: dir + "/" + relative, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    static let main = """
    state_dir = "/var/lib/cairn"
    timezone = "Africa/Accra"

    [storage.primary]
    url = "s3://bucket/prefix"
    endpoint = "https://acc.r2.cloudflarestorage.com"
    region = "auto"
    path_style = true
    access_key_id = "AKIDEXAMPLE"
    secret_access_key_file = "/run/credentials/cairn.service/s3-secret"
    object_lock = { mode = "governance", days = 30 }

    [storage.local]
    url = "file:///var/lib/cairn/backups"

    [keys]
    active = "2026-11"
    [keys.files]
    "2026-11" = "/etc/cairn/keys/2026-11.key"
    "2025-01" = "credential:backup-key-2025"

    [defaults]
    storage = "primary"
    compression_level = 5
    retention_days = 14

    [alerts]
    webhook = { type = "webhook", url = "https://hooks.example/abc", secret_file = "/etc/cairn/token" }

    """

    static let backup = """
    kind = "backup"
    schedule = "30 2 * * *"
    timeout = "2h"

    [backup]
    database = "postgres:///marketplace?host=/var/run/postgresql"

    """
}
