import COpenSSL
import Foundation
import Core

/// AES-256-GCM over OpenSSL's EVP API with a 12-byte nonce and a 16-byte tag.
///
/// One object holds one key; it owns an encryption and a decryption
/// `EVP_CIPHER_CTX` (key schedule computed once) and only resets the nonce per
/// message, so sealing many segments with the same key is cheap. Not
/// thread-safe: use one object per stream (it may move between threads).
public final class AESGCM: @unchecked Sendable {
    public static let keySize = 32
    public static let nonceSize = 12
    public static let tagSize = 16

    private let enc: OpaquePointer
    private let dec: OpaquePointer

    public init(key: Data) throws {
        guard key.count == AESGCM.keySize else {
            throw CairnError(.crypto, "AES-256-GCM needs a \(AESGCM.keySize)-byte key, got \(key.count) bytes")
        }
        guard let enc = EVP_CIPHER_CTX_new() else { throw CairnError(.crypto, "EVP_CIPHER_CTX_new failed") }
        guard let dec = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_CTX_free(enc)
            throw CairnError(.crypto, "EVP_CIPHER_CTX_new failed")
        }
        self.enc = enc
        self.dec = dec
        let ok = key.withUnsafeBytes { k -> Bool in
            let kp = k.bindMemory(to: UInt8.self).baseAddress
            return EVP_EncryptInit_ex(enc, EVP_aes_256_gcm(), nil, nil, nil) == 1
                && cairn_gcm_set_ivlen(enc, Int32(AESGCM.nonceSize)) == 1
                && EVP_EncryptInit_ex(enc, nil, nil, kp, nil) == 1
                && EVP_DecryptInit_ex(dec, EVP_aes_256_gcm(), nil, nil, nil) == 1
                && cairn_gcm_set_ivlen(dec, Int32(AESGCM.nonceSize)) == 1
                && EVP_DecryptInit_ex(dec, nil, nil, kp, nil) == 1
        }
        guard ok else { throw CairnError(.crypto, "AES-256-GCM initialisation failed: \(openSSLErrorString())") }
    }

    deinit {
        // EVP_CIPHER_CTX_free cleanses the key schedule.
        EVP_CIPHER_CTX_free(enc)
        EVP_CIPHER_CTX_free(dec)
    }

    // MARK: buffer API (no copies)

    /// Seals `plaintext` into `out` as ciphertext ‖ tag (`out.count` must be at
    /// least `plaintext.count + 16`).
    public func seal(_ plaintext: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                     aad: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws {
        precondition(out.count >= plaintext.count + AESGCM.tagSize, "AESGCM.seal: output buffer too small")
        guard nonce.count == AESGCM.nonceSize else { throw CairnError(.internal, "AES-GCM nonce must be 12 bytes") }
        let o = out.bindMemory(to: UInt8.self).baseAddress!
        var outl: Int32 = 0
        guard EVP_EncryptInit_ex(enc, nil, nil, nil, nonce.bindMemory(to: UInt8.self).baseAddress) == 1 else {
            throw sealError()
        }
        if aad.count > 0 {
            try feed(aad) { p, n in EVP_EncryptUpdate(enc, nil, &outl, p, n) == 1 }
        }
        var written = 0
        if plaintext.count > 0 {
            try feed(plaintext) { p, n in
                guard EVP_EncryptUpdate(enc, o + written, &outl, p, n) == 1 else { return false }
                written += Int(outl)
                return true
            }
        }
        guard EVP_EncryptFinal_ex(enc, o + written, &outl) == 1 else { throw sealError() }
        written += Int(outl)
        guard written == plaintext.count, cairn_gcm_get_tag(enc, Int32(AESGCM.tagSize), o + written) == 1 else {
            throw sealError()
        }
    }

    /// Opens ciphertext ‖ tag into `out` (`out.count` must be at least
    /// `sealed.count - 16`). Returns false if authentication fails (then `out`
    /// is zeroed); throws only on misuse or an OpenSSL failure.
    public func open(_ sealed: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
                     aad: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws -> Bool {
        guard sealed.count >= AESGCM.tagSize else { return false }
        let ctLen = sealed.count - AESGCM.tagSize
        precondition(out.count >= ctLen, "AESGCM.open: output buffer too small")
        guard nonce.count == AESGCM.nonceSize else { throw CairnError(.internal, "AES-GCM nonce must be 12 bytes") }
        let s = sealed.bindMemory(to: UInt8.self).baseAddress!
        var outl: Int32 = 0
        guard EVP_DecryptInit_ex(dec, nil, nil, nil, nonce.bindMemory(to: UInt8.self).baseAddress) == 1 else {
            throw openError()
        }
        if aad.count > 0 {
            try feed(aad) { p, n in EVP_DecryptUpdate(dec, nil, &outl, p, n) == 1 }
        }
        var written = 0
        if ctLen > 0 {
            let o = out.bindMemory(to: UInt8.self).baseAddress!
            try feed(UnsafeRawBufferPointer(start: s, count: ctLen)) { p, n in
                guard EVP_DecryptUpdate(dec, o + written, &outl, p, n) == 1 else { return false }
                written += Int(outl)
                return true
            }
        }
        var tag = [UInt8](UnsafeBufferPointer(start: s + ctLen, count: AESGCM.tagSize))
        guard cairn_gcm_set_tag(dec, Int32(AESGCM.tagSize), &tag) == 1 else { throw openError() }
        var finl: Int32 = 0
        let ok: Bool
        if ctLen > 0 {
            ok = EVP_DecryptFinal_ex(dec, out.bindMemory(to: UInt8.self).baseAddress! + written, &finl) > 0
        } else {
            var dummy = [UInt8](repeating: 0, count: 16)
            ok = EVP_DecryptFinal_ex(dec, &dummy, &finl) > 0
        }
        if !ok {
            ERR_clear_error()
            if ctLen > 0 { memset(out.baseAddress!, 0, ctLen) }
            return false
        }
        return true
    }

    // MARK: Data API

    /// Returns ciphertext ‖ 16-byte tag.
    public func seal(_ plaintext: Data, nonce: Data, aad: Data = Data()) throws -> Data {
        var out = Data(count: plaintext.count + AESGCM.tagSize)
        try plaintext.withUnsafeBytes { p in
            try nonce.withUnsafeBytes { n in
                try aad.withUnsafeBytes { a in
                    try out.withUnsafeMutableBytes { o in try seal(p, nonce: n, aad: a, into: o) }
                }
            }
        }
        return out
    }

    /// Opens ciphertext ‖ tag; throws `.integrity` "AES-GCM authentication failed" on a bad tag.
    public func open(_ sealed: Data, nonce: Data, aad: Data = Data()) throws -> Data {
        guard sealed.count >= AESGCM.tagSize else { throw CairnError(.integrity, "AES-GCM authentication failed (input shorter than the tag)") }
        var out = Data(count: sealed.count - AESGCM.tagSize)
        let ok = try sealed.withUnsafeBytes { s in
            try nonce.withUnsafeBytes { n in
                try aad.withUnsafeBytes { a in
                    try out.withUnsafeMutableBytes { o in try open(s, nonce: n, aad: a, into: o) }
                }
            }
        }
        guard ok else { throw CairnError(.integrity, "AES-GCM authentication failed") }
        return out
    }

    // MARK: helpers

    /// Feeds a buffer to an EVP update call in pieces that fit an Int32 length.
    private func feed(_ buf: UnsafeRawBufferPointer, _ call: (UnsafePointer<UInt8>, Int32) -> Bool) throws {
        let base = buf.bindMemory(to: UInt8.self).baseAddress!
        var off = 0
        let step = 1 << 30
        while off < buf.count {
            let n = min(step, buf.count - off)
            guard call(base + off, Int32(n)) else { throw CairnError(.crypto, "AES-GCM update failed: \(openSSLErrorString())") }
            off += n
        }
    }

    private func sealError() -> CairnError { CairnError(.crypto, "AES-GCM seal failed: \(openSSLErrorString())") }
    private func openError() -> CairnError { CairnError(.crypto, "AES-GCM open failed: \(openSSLErrorString())") }
}

/// The most recent OpenSSL error as one line (and clears the queue).
func openSSLErrorString() -> String {
    let code = ERR_get_error()
    ERR_clear_error()
    if code == 0 { return "unknown OpenSSL error" }
    var buf = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(code, &buf, buf.count)
    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// HKDF with SHA-256 (RFC 5869), through EVP_PKEY_derive.
public enum HKDF {
    public static func sha256(key ikm: Data, salt: Data, info: Data, outputByteCount: Int) throws -> Data {
        guard outputByteCount > 0 && outputByteCount <= 255 * 32 else {
            throw CairnError(.internal, "HKDF-SHA256 output length must be 1...8160 bytes")
        }
        guard !ikm.isEmpty else { throw CairnError(.internal, "HKDF-SHA256 needs a non-empty input key") }
        var out = Data(count: outputByteCount)
        let ok = out.withUnsafeMutableBytes { o in
            ikm.withUnsafeBytes { k in
                salt.withUnsafeBytes { s in
                    info.withUnsafeBytes { i in
                        cairn_hkdf_sha256(o.bindMemory(to: UInt8.self).baseAddress, outputByteCount,
                                          k.bindMemory(to: UInt8.self).baseAddress, k.count,
                                          s.bindMemory(to: UInt8.self).baseAddress, s.count,
                                          i.bindMemory(to: UInt8.self).baseAddress, i.count)
                    }
                }
            }
        }
        guard ok == 1 else { throw CairnError(.crypto, "HKDF-SHA256 failed: \(openSSLErrorString())") }
        return out
    }

    public static func sha256(key: Data, salt: Data, info: String, outputByteCount: Int) throws -> Data {
        try sha256(key: key, salt: salt, info: Data(info.utf8), outputByteCount: outputByteCount)
    }
}

/// Key wrapping: the data key is sealed with AES-256-GCM under the
/// key-encryption key with a fresh random 96-bit nonce.
///
/// Chosen over RFC 3394/5649 AES key wrap because it reuses the one AEAD the
/// format already needs (any AES-GCM library can unwrap it, which the
/// `cryptography` package and Web Crypto make easier than KW), and it binds
/// associated data (the header's key id). Random nonces are safe here: one
/// wrap per backup is far below the 2^32 messages-per-key bound.
/// Layout: nonce (12) ‖ ciphertext (same length as the key) ‖ tag (16).
public enum KeyWrap {
    public static func wrappedSize(keySize: Int) -> Int { AESGCM.nonceSize + keySize + AESGCM.tagSize }

    public static func wrap(_ key: Data, with kek: Data, aad: Data) throws -> Data {
        let nonce = try SecureRandom.bytes(AESGCM.nonceSize)
        return nonce + (try AESGCM(key: kek).seal(key, nonce: nonce, aad: aad))
    }

    /// The unwrapped key, or nil if authentication fails (wrong KEK or altered input).
    public static func unwrap(_ wrapped: Data, with kek: Data, aad: Data) throws -> Data? {
        guard wrapped.count >= AESGCM.nonceSize + AESGCM.tagSize else { return nil }
        let gcm = try AESGCM(key: kek)
        var out = Data(count: wrapped.count - AESGCM.nonceSize - AESGCM.tagSize)
        let ok = try wrapped.withUnsafeBytes { w in
            try aad.withUnsafeBytes { a in
                try out.withUnsafeMutableBytes { o in
                    try gcm.open(UnsafeRawBufferPointer(rebasing: w[AESGCM.nonceSize...]),
                                 nonce: UnsafeRawBufferPointer(rebasing: w[..<AESGCM.nonceSize]), aad: a, into: o)
                }
            }
        }
        return ok ? out : nil
    }
}

/// Constant-time comparison of two byte strings of equal length.
public func constantTimeEquals(_ a: Data, _ b: Data) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
}
