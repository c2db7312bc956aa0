import Core
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a master key comes from. Only the path is resolved here; reading the
/// key and checking its permissions is the Pipeline module's job
/// (`Keyring.loadKeyFile(path:)`).
public enum KeySource: Sendable, Equatable, CustomStringConvertible {
    /// An absolute path (relative paths in the config are resolved against the
    /// directory of `cairn.toml` when it is loaded).
    case file(String)
    /// A systemd credential (`LoadCredential=NAME:…`), read from
    /// `$CREDENTIALS_DIRECTORY/NAME`. Written `"credential:NAME"` in the config.
    case credential(String)

    public var description: String {
        switch self {
        case .file(let p): return p
        case .credential(let n): return "credential:\(n)"
        }
    }

    /// Parses the config notation: `"credential:NAME"` or a path. Returns nil
    /// for an empty path or an unusable credential name.
    public init?(configValue: String, relativeTo directory: String? = nil) {
        if configValue.hasPrefix("credential:") {
            let name = String(configValue.dropFirst("credential:".count))
            guard Self.isValidCredentialName(name) else { return nil }
            self = .credential(name)
        } else {
            guard !configValue.isEmpty else { return nil }
            if configValue.hasPrefix("/") || directory == nil {
                self = .file(configValue)
            } else {
                self = .file(URL(fileURLWithPath: configValue, relativeTo: URL(fileURLWithPath: directory!, isDirectory: true)).standardizedFileURL.path)
            }
        }
    }

    static func isValidCredentialName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }
}

/// The path where the key from `source` is read: the file itself, or
/// `$CREDENTIALS_DIRECTORY/NAME` for a systemd credential.
///
/// - Throws: `CairnError(.config)` when a credential is asked for and
///   `CREDENTIALS_DIRECTORY` is not set (the service was not started with
///   `LoadCredential=`).
public func resolveKeyPath(_ source: KeySource, env: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
    switch source {
    case .file(let path):
        return path
    case .credential(let name):
        guard let dir = env["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
            throw CairnError(.config, "key credential '\(name)': CREDENTIALS_DIRECTORY is not set; run under systemd with LoadCredential=\(name):/path/to/key, or name the key file directly")
        }
        return dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }
}

/// Reads secrets (S3 secret keys, database passwords) from files when they are
/// needed, never earlier, and never keeps them in a config struct.
public enum SecretFile {
    /// Reads the secret in `path`. The file must be a regular file that is not
    /// readable, writable or executable by group or others (`mode & 0o077 == 0`);
    /// one trailing newline (`\n` or `\r\n`) is removed. The secret must not be empty.
    ///
    /// - Parameter what: what the secret is for, used in error messages
    ///   (for example `"storage 'primary' secret_access_key_file"`).
    /// - Throws: `CairnError(.config)` with `chmod 600 PATH` advice for a file
    ///   that others can read, `.io` when it cannot be read. Messages name the
    ///   file, never its content.
    ///
    /// `path` may also be `"credential:NAME"`: the systemd credential `NAME`
    /// (`LoadCredential=NAME:/path` in the unit), read from
    /// `$CREDENTIALS_DIRECTORY/NAME` (see `resolveKeyPath`).
    public static func read(_ path: String, what: String = "secret file",
                            env: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let path = try resolve(path, what: what, env: env)
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw CairnError(.io, "\(what) \(path): \(errnoString())")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CairnError(.config, "\(what) \(path): not a regular file")
        }
        let mode = Int(st.st_mode) & 0o777
        guard mode & 0o077 == 0 else {
            throw CairnError(.config, "\(what) \(path) is accessible by group or others (mode \(String(format: "%04o", mode))); run chmod 600 \(path)")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CairnError(.io, "\(what) \(path): cannot read (\(errnoString()))")
        }
        guard var text = String(data: data, encoding: .utf8) else {
            throw CairnError(.config, "\(what) \(path): not UTF-8 text")
        }
        if text.hasSuffix("\r\n") { text.removeLast() } else if text.hasSuffix("\n") { text.removeLast() }
        // "\r\n" is one Character in Swift, so removeLast() removed both bytes.
        guard !text.isEmpty else {
            throw CairnError(.config, "\(what) \(path) is empty")
        }
        return text
    }

    /// The file a secret setting names: the path itself, or
    /// `$CREDENTIALS_DIRECTORY/NAME` for `"credential:NAME"`.
    ///
    /// - Throws: `CairnError(.config)` for an unusable credential name or when
    ///   `CREDENTIALS_DIRECTORY` is not set.
    public static func resolve(_ value: String, what: String = "secret file",
                               env: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard value.hasPrefix("credential:") else { return value }
        guard let source = KeySource(configValue: value), case .credential = source else {
            throw CairnError(.config, "\(what): \"\(value)\" is not a usable credential name")
        }
        do {
            return try resolveKeyPath(source, env: env)
        } catch let e as CairnError {
            throw CairnError(.config, "\(what): " + e.message.replacingOccurrences(of: "key credential", with: "credential"))
        }
    }
}
