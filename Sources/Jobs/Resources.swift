import Config
import Core
import Crypto
import Foundation
import ObjectStore

/// Turns configuration into live resources: keyrings and object stores.
public enum Resources {
    /// Every key of the config's keyring, loaded and permission-checked.
    /// With `requireActive`, the active key must exist (for new backups).
    public static func keyring(_ keys: KeysConfig, env: [String: String] = ProcessInfo.processInfo.environment,
                               requireActive: Bool) throws -> Keyring {
        var loaded: [String: Data] = [:]
        for id in keys.sources.keys.sorted() {
            let path = try keys.path(for: id, env: env)
            loaded[id] = try Keyring.loadKeyFile(path: path)
        }
        guard let first = loaded.keys.sorted().first else {
            throw CairnError(.config, "no keys configured: add [keys.files] to cairn.toml (cairn key generate --out FILE makes one)")
        }
        let active = keys.active ?? first
        if requireActive && loaded[active] == nil {
            throw CairnError(.config, "the active key id '\(active)' is not in [keys.files]")
        }
        return try Keyring(keys: loaded, activeKeyId: loaded[active] == nil ? first : active)
    }

    /// A keyring from key files given on the command line (disaster recovery
    /// without a config): see `keys(files:active:)`.
    public static func keyring(files: [String]) throws -> Keyring {
        try keyring(try keys(files: files, active: nil), env: [:], requireActive: false)
    }

    /// `--key-file` specs as a `[keys]` table: each is `ID=FILE`, or `FILE`
    /// whose name without extension is the key id. The active key is `active`
    /// when it is among them, otherwise the first one given.
    public static func keys(files: [String], active: String?) throws -> KeysConfig {
        var sources: [String: KeySource] = [:]
        var order: [String] = []
        for spec in files {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            let (id, path) = parts.count == 2 ? (parts[0], parts[1])
                : (((spec as NSString).lastPathComponent as NSString).deletingPathExtension, spec)
            guard !id.isEmpty, !path.isEmpty else { throw CairnError(.usage, "--key-file \(spec): expected ID=FILE or FILE") }
            guard sources[id] == nil else { throw CairnError(.usage, "--key-file: key id '\(id)' given twice") }
            sources[id] = .file(path)
            order.append(id)
        }
        guard let first = order.first else { throw CairnError(.usage, "no key files given") }
        return KeysConfig(active: active.flatMap { sources[$0] == nil ? nil : $0 } ?? first, sources: sources)
    }

    /// Opens a configured storage. Explicit credentials win over the AWS chain.
    public static func store(_ storage: StorageConfig, env: [String: String] = ProcessInfo.processInfo.environment) throws -> any ObjectStore {
        var credentials: (any CredentialsProvider)? = nil
        if let id = storage.accessKeyID {
            guard let secret = try storage.readSecretAccessKey() else {
                throw CairnError(.config, "storage \(storage.name): access_key_id is set but secret_access_key_file is not")
            }
            credentials = StaticCredentialsProvider(AWSCredentials(accessKeyId: id, secretAccessKey: secret))
        }
        return try StorageLocation.open(storage.locationURL, credentials: credentials, env: env)
    }

    /// The Object Lock retention for objects written now, from the storage's `object_lock`.
    public static func objectLock(_ storage: StorageConfig, now: Date = Date()) -> ObjectLock? {
        guard let l = storage.objectLock else { return nil }
        return ObjectLock(mode: l.mode == .compliance ? .compliance : .governance,
                          retainUntil: now.addingTimeInterval(TimeInterval(l.days) * 86_400))
    }

    public static func storage(named name: String, in config: CairnConfig) throws -> StorageConfig {
        guard let s = config.storages[name] else {
            throw CairnError(.config, "storage '\(name)' is not defined in \(config.path)")
        }
        return s
    }
}
