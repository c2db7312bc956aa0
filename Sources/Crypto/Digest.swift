import COpenSSL
import Foundation
import Core

/// An incremental message digest (SHA-256 or MD5) over OpenSSL's EVP API.
/// A final class owns the EVP_MD_CTX and frees it in deinit.
public final class Hasher: @unchecked Sendable {
    public enum Algorithm: Sendable { case sha256, md5 }
    private let ctx: OpaquePointer
    public let algorithm: Algorithm

    public init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        self.ctx = ctx
        let md = algorithm == .sha256 ? EVP_sha256() : EVP_md5()
        precondition(EVP_DigestInit_ex(ctx, md, nil) == 1, "EVP_DigestInit_ex failed")
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public func update(_ data: Data) {
        data.withUnsafeBytes { update($0) }
    }

    public func update(_ buf: UnsafeRawBufferPointer) {
        guard buf.count > 0 else { return }
        precondition(EVP_DigestUpdate(ctx, buf.baseAddress, buf.count) == 1, "EVP_DigestUpdate failed")
    }

    public func update(_ string: String) { update(Data(string.utf8)) }

    /// The digest; the hasher must not be used afterwards.
    public func finalize() -> Data {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        precondition(EVP_DigestFinal_ex(ctx, &out, &len) == 1, "EVP_DigestFinal_ex failed")
        return Data(out[0..<Int(len)])
    }
}

public enum Digest {
    public static func sha256(_ data: Data) -> Data { let h = Hasher(.sha256); h.update(data); return h.finalize() }
    public static func sha256(_ s: String) -> Data { sha256(Data(s.utf8)) }
    public static func md5(_ data: Data) -> Data { let h = Hasher(.md5); h.update(data); return h.finalize() }

    public static func hmacSHA256(key: Data, _ message: Data) -> Data {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.bindMemory(to: UInt8.self).baseAddress, m.count, &out, &len)
            }
        }
        precondition(ok != nil, "HMAC failed")
        return Data(out[0..<Int(len)])
    }

    public static func hmacSHA256(key: Data, _ message: String) -> Data { hmacSHA256(key: key, Data(message.utf8)) }
}

public enum SecureRandom {
    /// Cryptographically secure random bytes (RAND_bytes).
    public static func bytes(_ count: Int) throws -> Data {
        var out = Data(count: count)
        let rc = out.withUnsafeMutableBytes { RAND_bytes($0.bindMemory(to: UInt8.self).baseAddress, Int32(count)) }
        guard rc == 1 else { throw CairnError(.crypto, "the system random number generator failed") }
        return out
    }
}

extension Data {
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var s = [UInt8](); s.reserveCapacity(count * 2)
        for b in self { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xf)]) }
        return String(decoding: s, as: UTF8.self)
    }

    public init?(hexString: String) {
        let chars = Array(hexString.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = Data(capacity: chars.count / 2)
        func v(_ c: UInt8) -> UInt8? {
            switch c { case 48...57: return c - 48; case 97...102: return c - 87; case 65...70: return c - 55; default: return nil }
        }
        var i = 0
        while i < chars.count {
            guard let hi = v(chars[i]), let lo = v(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self = out
    }
}
