import Foundation
import Core
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Master keys by key id, and the id used for new backups.
///
/// Key ids are 1...255 bytes of UTF-8 (they are written into every encrypted
/// stream header). Keys are 32 bytes. `description` lists ids only, never
/// key material.
public struct Keyring: Sendable, CustomStringConvertible {
    private var keys: [String: Data]
    public private(set) var activeKeyId: String

    public init(keys: [String: Data], activeKeyId: String) throws {
        for (id, key) in keys {
            try Keyring.validate(id: id)
            guard key.count == 32 else { throw CairnError(.crypto, "key \"\(id)\" must be 32 bytes, got \(key.count)") }
        }
        guard keys[activeKeyId] != nil else {
            throw CairnError(.crypto, "active key id \"\(activeKeyId)\" is not in the keyring")
        }
        self.keys = keys.mapValues { Data($0) }
        self.activeKeyId = activeKeyId
    }

    /// A keyring holding one key, which is active.
    public init(keyId: String, key: Data) throws {
        try self.init(keys: [keyId: key], activeKeyId: keyId)
    }

    public func key(for id: String) -> Data? { keys[id] }
    public var keyIds: [String] { keys.keys.sorted() }

    public mutating func add(keyId: String, key: Data, makeActive: Bool = false) throws {
        try Keyring.validate(id: keyId)
        guard key.count == 32 else { throw CairnError(.crypto, "key \"\(keyId)\" must be 32 bytes, got \(key.count)") }
        keys[keyId] = Data(key)
        if makeActive { activeKeyId = keyId }
    }

    public var description: String { "Keyring(active: \(activeKeyId), ids: \(keyIds.joined(separator: ", ")))" }

    static func validate(id: String) throws {
        let n = id.utf8.count
        guard n >= 1 && n <= 255 else { throw CairnError(.crypto, "key id must be 1 to 255 bytes of UTF-8, got \(n)") }
    }

    /// Reads a 32-byte master key from a file.
    ///
    /// Accepted contents: exactly 32 raw bytes; or, as text with optional
    /// surrounding whitespace/newline, 64 hexadecimal characters or standard
    /// base64 (with or without `=` padding) of 32 bytes. A file of exactly 32
    /// bytes is always taken as raw. The file must be a regular file not
    /// readable or writable by group or others (`mode & 0o077 == 0`);
    /// otherwise the error says to `chmod 600` it. Error messages never
    /// contain key material.
    public static func loadKeyFile(path: String) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw CairnError(e == ENOENT ? .notFound : .crypto, "cannot open key file \(path): \(errnoString(e))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CairnError(.crypto, "cannot stat key file \(path): \(errnoString())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw CairnError(.crypto, "key file \(path) is not a regular file") }
        guard st.st_mode & 0o077 == 0 else {
            throw CairnError(.crypto, "key file \(path) is accessible by group or others (mode \(String(st.st_mode & 0o777, radix: 8))): run chmod 600 \(path)")
        }
        guard st.st_size <= 4096 else { throw CairnError(.crypto, "key file \(path) is too large to be a key (\(st.st_size) bytes)") }
        var raw = [UInt8](repeating: 0, count: 4097)
        var total = 0
        while true {
            let n = raw.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, 4097 - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CairnError(.crypto, "cannot read key file \(path): \(errnoString())")
            }
            if n == 0 { break }
            total += n
            if total == 4097 { throw CairnError(.crypto, "key file \(path) is too large to be a key") }
        }
        defer { for i in raw.indices { raw[i] = 0 } }
        let bytes = Data(raw[0..<total])
        if let key = parseKey(bytes) { return key }
        throw CairnError(.crypto, "key file \(path) must hold exactly 32 raw bytes, 64 hex characters, or base64 of 32 bytes (got \(total) bytes)")
    }

    /// Parses key file contents (see `loadKeyFile`); nil if not a valid key.
    public static func parseKey(_ bytes: Data) -> Data? {
        if bytes.count == 32 { return bytes }
        guard let text = String(data: bytes, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
        if text.utf8.count == 64, let key = Data(hexString: text) { return key }
        var b64 = text
        while b64.utf8.count % 4 != 0 { b64 += "=" }
        if let key = Data(base64Encoded: b64), key.count == 32 { return key }
        return nil
    }
}
