import Foundation
import Core
import Crypto

// The Cairn encrypted stream, version 2 (version 1 is still read): a STREAM
// construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over AES-256-GCM.
// docs/FORMAT.md is the byte-for-byte specification; keep the two in step.

/// What is wrong with an encrypted stream. Carried as the `cause` of the
/// `CairnError` the reader throws (see `CairnError.streamFormatError`); each
/// kind has its own message. `description` is a phrase contained in that
/// message, so logs show the message once.
public enum StreamFormatError: String, Error, Sendable, CaseIterable, CustomStringConvertible {
    /// The input does not start with `CAIRNENC`.
    case badMagic
    /// The version byte is not 1 or 2.
    case unsupportedVersion
    /// A header field is out of range (key id length 0 or not UTF-8, context, segment size, key block length).
    case malformedHeader
    /// The header's key id is not in the keyring.
    case unknownKeyId
    /// The keyring's key for that id is not the key the stream was written with.
    case wrongKey
    /// The header was altered (its HMAC or the wrapped data key does not authenticate).
    case headerAuthenticationFailed
    /// A segment does not authenticate at its position: altered, reordered, repeated or from another stream.
    case authenticationFailed
    /// The stream ends before an authentic last segment.
    case truncated
    /// Bytes follow the last segment.
    case trailingData
    /// The header's backup context (job, backup id, object) is not the one
    /// the reader expects, or the stream has none (version 1) where one is required.
    case contextMismatch

    public var code: ErrorCode {
        switch self {
        case .unknownKeyId, .wrongKey: return .crypto
        default: return .integrity
        }
    }

    public var description: String {
        switch self {
        case .badMagic: return "not a Cairn encrypted stream"
        case .unsupportedVersion: return "unsupported encrypted stream version"
        case .malformedHeader: return "malformed encrypted stream header"
        case .unknownKeyId: return "is not in the keyring"
        case .wrongKey: return "wrong key for key id"
        case .headerAuthenticationFailed: return "header failed authentication"
        case .authenticationFailed: return "authentication failed at segment"
        case .truncated: return "is truncated"
        case .trailingData: return "trailing data after the last segment"
        case .contextMismatch: return "does not belong to"
        }
    }

    func error(_ message: String) -> CairnError {
        assert(message.contains(description))
        return CairnError(code, message, cause: self)
    }
}

extension CairnError {
    /// The encrypted-stream failure kind, if this error is one.
    public var streamFormatError: StreamFormatError? { cause as? StreamFormatError }
}

/// Constants and pure helpers of the format (versions 1 and 2).
public enum EncryptedStream {
    public static let magic = Data("CAIRNENC".utf8)
    /// The version written: 2 (a header with a backup context).
    public static let version: UInt8 = 2
    /// Versions read: 1 (no context) and 2.
    public static let readableVersions: ClosedRange<UInt8> = 1...2
    public static let defaultSegmentSize = 1 << 20
    public static let maxSegmentSize = 1 << 26
    public static let saltSize = 32
    public static let noncePrefixSize = 7
    public static let keyCheckSize = 16
    public static let headerMACSize = 32
    public static let dataKeySize = 32
    /// key check (16) ‖ wrap nonce (12) ‖ wrapped data key (32) ‖ wrap tag (16).
    public static let keyBlockSize = keyCheckSize + AESGCM.nonceSize + dataKeySize + AESGCM.tagSize
    public static let tagSize = AESGCM.tagSize

    static let kekInfo = Data("cairn v1 key wrap".utf8)
    static let keyCheckInfo = Data("cairn v1 key check".utf8)
    static let segmentKeyInfo = Data("cairn v1 segment key".utf8)
    static let headerKeyInfo = Data("cairn v1 header key".utf8)

    /// Header length of a version 2 stream for a key id of `keyIdLength`
    /// UTF-8 bytes and an encoded context of `contextLength` bytes
    /// (`StreamContext.encoded`; 0 for none).
    public static func headerSize(keyIdLength: Int, contextLength: Int = 0) -> Int {
        12 + keyIdLength + contextLength + saltSize + noncePrefixSize + 4 + 1 + keyBlockSize + headerMACSize
    }

    /// Header length of a version 1 stream (no context field).
    public static func headerSizeV1(keyIdLength: Int) -> Int {
        10 + keyIdLength + saltSize + noncePrefixSize + 4 + 1 + keyBlockSize + headerMACSize
    }

    /// Exact ciphertext length (version 2) for a plaintext of `plaintextSize` bytes.
    public static func ciphertextSize(plaintextSize: Int64, segmentSize: Int = defaultSegmentSize, keyIdLength: Int,
                                      contextLength: Int = 0) -> Int64 {
        let seg = Int64(segmentSize)
        let segments = plaintextSize == 0 ? 1 : (plaintextSize + seg - 1) / seg
        return Int64(headerSize(keyIdLength: keyIdLength, contextLength: contextLength)) + plaintextSize + segments * Int64(tagSize)
    }

    /// The key-encryption key and key check value derived from a master key.
    static func masterDerivations(_ masterKey: Data) throws -> (kek: Data, check: Data) {
        let kek = try HKDF.sha256(key: masterKey, salt: Data(), info: kekInfo, outputByteCount: 32)
        let check = try HKDF.sha256(key: masterKey, salt: Data(), info: keyCheckInfo, outputByteCount: keyCheckSize)
        return (kek, check)
    }

    /// The 16-byte key check value written in headers for `masterKey`; a
    /// public fingerprint of the key (HKDF output, reveals nothing about it).
    public static func keyCheckValue(masterKey: Data) throws -> Data { try masterDerivations(masterKey).check }

    static func nonce(prefix: Data, counter: UInt32, last: Bool) -> Data {
        var n = Data(prefix)
        n.append(UInt8(truncatingIfNeeded: counter >> 24))
        n.append(UInt8(truncatingIfNeeded: counter >> 16))
        n.append(UInt8(truncatingIfNeeded: counter >> 8))
        n.append(UInt8(truncatingIfNeeded: counter))
        n.append(last ? 1 : 0)
        return n
    }
}

/// Encrypts a byte stream incrementally. Blocking, CPU-bound: call it from a
/// BlockingPool thread (see `transform`). One object per stream.
public final class EncryptingWriter: ByteTransform, @unchecked Sendable {
    public let keyId: String
    public let segmentSize: Int
    /// The backup context written into the header (nil: an empty context).
    public let context: StreamContext?
    /// Plaintext bytes consumed and ciphertext bytes produced so far.
    public private(set) var plaintextBytes: Int64 = 0
    public private(set) var ciphertextBytes: Int64 = 0

    private let gcm: AESGCM
    private let noncePrefix: Data
    private var pendingHeader: Data?
    /// The plaintext not yet sealed (at most one segment), in one buffer
    /// allocated once: a `Data` emptied with `removeAll(keepingCapacity:)`
    /// was measured to get fresh pages (page faults) on the next append.
    private let tail: UnsafeMutableRawPointer
    private var tailCount = 0
    /// Sealed-segment buffers, reused once their `Data` is released.
    private let outputs: BufferPool
    private var counter: UInt32 = 0
    private var finished = false

    /// - Parameters:
    ///   - keyId: the master key to wrap the data key with; default the keyring's active key.
    ///   - segmentSize: plaintext bytes per segment, 1 ... 64 MiB (default 1 MiB).
    ///   - context: the backup and object this stream belongs to, bound into
    ///     the header (key-wrap AAD and header MAC). Backups always give one;
    ///     nil writes an empty context, which a reader expecting one refuses.
    public init(keyring: Keyring, keyId: String? = nil, segmentSize: Int = EncryptedStream.defaultSegmentSize,
                context: StreamContext? = nil) throws {
        let id = keyId ?? keyring.activeKeyId
        guard let master = keyring.key(for: id) else {
            throw StreamFormatError.unknownKeyId.error("key id \"\(id)\" is not in the keyring")
        }
        guard segmentSize >= 1 && segmentSize <= EncryptedStream.maxSegmentSize else {
            throw CairnError(.internal, "segment size must be 1 byte to 64 MiB, got \(segmentSize)")
        }
        let idBytes = Data(id.utf8)
        guard idBytes.count >= 1 && idBytes.count <= 255 else { throw CairnError(.crypto, "key id must be 1 to 255 bytes") }
        let contextBytes = try context?.encoded() ?? Data()
        self.keyId = id
        self.segmentSize = segmentSize
        self.context = context
        let sealedSize = segmentSize + EncryptedStream.tagSize
        outputs = BufferPool(bufferSize: sealedSize, maxFree: max(2, min(4, (4 << 20) / sealedSize)))

        let dataKey = try SecureRandom.bytes(EncryptedStream.dataKeySize)
        let salt = try SecureRandom.bytes(EncryptedStream.saltSize)
        noncePrefix = try SecureRandom.bytes(EncryptedStream.noncePrefixSize)
        let (kek, check) = try EncryptedStream.masterDerivations(master)

        var h = EncryptedStream.magic
        h.append(EncryptedStream.version)
        h.append(UInt8(idBytes.count))
        h.append(idBytes)
        h.append(UInt8(contextBytes.count >> 8))
        h.append(UInt8(contextBytes.count & 0xff))
        h.append(contextBytes)
        let wrapAAD = h
        h.append(salt)
        h.append(noncePrefix)
        let s = UInt32(segmentSize)
        h.append(contentsOf: [UInt8(s >> 24), UInt8(s >> 16 & 0xff), UInt8(s >> 8 & 0xff), UInt8(s & 0xff)])
        h.append(UInt8(EncryptedStream.keyBlockSize))
        h.append(check)
        h.append(try KeyWrap.wrap(dataKey, with: kek, aad: wrapAAD))
        let headerKey = try HKDF.sha256(key: dataKey, salt: salt, info: EncryptedStream.headerKeyInfo, outputByteCount: 32)
        h.append(Digest.hmacSHA256(key: headerKey, h))
        assert(h.count == EncryptedStream.headerSize(keyIdLength: idBytes.count, contextLength: contextBytes.count))
        pendingHeader = h
        gcm = try AESGCM(key: HKDF.sha256(key: dataKey, salt: salt, info: EncryptedStream.segmentKeyInfo, outputByteCount: 32))
        tail = UnsafeMutableRawPointer.allocate(byteCount: segmentSize, alignment: 16)
    }

    deinit { tail.deallocate() }

    /// Consumes plaintext; returns the ciphertext ready so far (the header
    /// and every complete non-last segment).
    public func update(_ data: Data) throws -> Data {
        try collected { try update(data, emit: $0) }
    }

    /// Seals the remaining 0 ... segmentSize bytes as the last segment.
    public func finalize() throws -> Data {
        try collected { try finish(emit: $0) }
    }

    /// Hands out the header, then each sealed segment on its own, in a
    /// reused segment-sized buffer (no fresh allocation per segment).
    /// Segments are sealed straight from `data` where possible; only the
    /// tail (1 ... segmentSize bytes) is copied into `tail`, because a
    /// segment is sealed only once a byte after it proves it is not the last.
    public func update(_ data: Data, emit: (Data) throws -> Void) throws {
        guard !finished else { throw CairnError(.internal, "EncryptingWriter.update after finalize") }
        plaintextBytes += Int64(data.count)
        if let h = takeHeader() { try hand(h, emit) }
        let seg = segmentSize
        try data.withUnsafeBytes { d in
            let n = d.count
            var off = 0
            if tailCount > 0 {
                let fill = min(seg - tailCount, n)
                if fill > 0 { (tail + tailCount).copyMemory(from: d.baseAddress!, byteCount: fill) }
                tailCount += fill
                off = fill
                guard tailCount == seg && off < n else { return }
                try seal(UnsafeRawBufferPointer(start: tail, count: seg), last: false, emit)
                tailCount = 0
            }
            while n - off > seg {
                try seal(UnsafeRawBufferPointer(rebasing: d[off ..< off + seg]), last: false, emit)
                off += seg
            }
            if off < n {
                tail.copyMemory(from: d.baseAddress! + off, byteCount: n - off)
                tailCount = n - off
            }
        }
    }

    /// Seals the remaining 0 ... segmentSize bytes as the last segment.
    public func finish(emit: (Data) throws -> Void) throws {
        guard !finished else { throw CairnError(.internal, "EncryptingWriter.finalize called twice") }
        finished = true
        if let h = takeHeader() { try hand(h, emit) }
        try seal(UnsafeRawBufferPointer(start: tail, count: tailCount), last: true, emit)
        tailCount = 0
    }

    public func finish() throws -> Data { try finalize() }

    private func takeHeader() -> Data? {
        defer { pendingHeader = nil }
        return pendingHeader
    }

    private func hand(_ out: Data, _ emit: (Data) throws -> Void) throws {
        ciphertextBytes += Int64(out.count)
        try emit(out)
    }

    /// Seals one segment into a pooled buffer and hands it out.
    private func seal(_ plaintext: UnsafeRawBufferPointer, last: Bool, _ emit: (Data) throws -> Void) throws {
        let buffer = outputs.take()
        var size = 0
        do {
            try sealSegment(plaintext, last: last,
                            into: UnsafeMutableRawBufferPointer(start: buffer, count: segmentSize + EncryptedStream.tagSize), at: &size)
        } catch {
            outputs.give(buffer)
            throw error
        }
        try hand(outputs.data(buffer, count: size), emit)
    }

    /// Seals one segment into `out` at `outOff` and advances both the offset and the counter.
    private func sealSegment(_ plaintext: UnsafeRawBufferPointer, last: Bool,
                             into out: UnsafeMutableRawBufferPointer, at outOff: inout Int) throws {
        if !last && counter == UInt32.max {
            throw CairnError(.internal, "encrypted stream too long: segment counter exhausted (2^32 segments)")
        }
        let nonce = EncryptedStream.nonce(prefix: noncePrefix, counter: counter, last: last)
        let size = plaintext.count + EncryptedStream.tagSize
        try nonce.withUnsafeBytes { n in
            try gcm.seal(plaintext, nonce: n, aad: UnsafeRawBufferPointer(start: nil, count: 0),
                         into: UnsafeMutableRawBufferPointer(rebasing: out[outOff ..< outOff + size]))
        }
        outOff += size
        if !last { counter += 1 }
    }
}

/// Decrypts a Cairn encrypted stream incrementally. Plaintext is returned only
/// for authenticated segments, but the stream as a whole is valid only once
/// `finalize()` returns: until then it may still turn out truncated.
public final class DecryptingReader: ByteTransform, @unchecked Sendable {
    private let keyring: Keyring
    private let expectedContext: StreamContext?
    private let requireContext: Bool
    /// Set once the header has been read and authenticated.
    public private(set) var keyId: String?
    /// The header's format version and backup context (nil for version 1 or an empty context).
    public private(set) var version: UInt8?
    public private(set) var context: StreamContext?
    public private(set) var segmentSize: Int = 0
    public private(set) var plaintextBytes: Int64 = 0

    private var gcm: AESGCM?
    private var noncePrefix = Data()
    /// The header's bytes until it is complete.
    private var buffer = Data()
    /// Ciphertext of the segment not yet opened (at most one sealed segment,
    /// held until a byte after it shows it is not the last); allocated once
    /// the header gives the segment size.
    private var pending: UnsafeMutableRawPointer?
    private var pendingCount = 0
    /// Segment-sized output buffers, reused once their `Data` is released.
    private var outputs: BufferPool?
    private var counter: UInt32 = 0
    private var finished = false
    private var failed = false

    /// - Parameters:
    ///   - expectedContext: the backup and object the stream must belong to.
    ///     A version 2 header naming another one, or none, is refused
    ///     (`contextMismatch`). A version 1 stream has no context and is
    ///     accepted unless `requireContext`.
    ///   - requireContext: refuse version 1 streams too (the caller's manifest
    ///     is of a format whose backups are always written as version 2).
    public init(keyring: Keyring, expectedContext: StreamContext? = nil, requireContext: Bool = false) {
        self.keyring = keyring
        self.expectedContext = expectedContext
        self.requireContext = requireContext
    }

    deinit { pending?.deallocate() }

    public func update(_ data: Data) throws -> Data {
        try collected { try update(data, emit: $0) }
    }

    /// Decrypts the last segment; throws if it is missing, altered, or followed by data.
    public func finalize() throws -> Data {
        try collected { try finish(emit: $0) }
    }

    public func finish() throws -> Data { try finalize() }

    /// Hands out each authenticated segment as it is opened: segments that
    /// lie whole in `data` are opened from it in place, and only a segment
    /// split across inputs is gathered (in one reused buffer) first.
    public func update(_ data: Data, emit: (Data) throws -> Void) throws {
        try guarded {
            if gcm == nil {
                buffer.append(data)
                guard try parseHeader() else { return }
                let rest = buffer
                buffer = Data()
                try consume(rest, emit)
            } else {
                try consume(data, emit)
            }
        }
    }

    /// Decrypts the last segment; throws if it is missing, altered, or followed by data.
    public func finish(emit: (Data) throws -> Void) throws {
        try guarded {
            guard !finished else { throw CairnError(.internal, "DecryptingReader.finalize called twice") }
            finished = true
            if gcm == nil {
                guard try parseHeader() else {
                    throw StreamFormatError.truncated.error("encrypted stream is truncated: it ends inside the header (\(buffer.count) bytes)")
                }
                let rest = buffer
                buffer = Data()
                try consume(rest, emit)
            }
            try openFinal(emit)
        }
    }

    private func guarded(_ body: () throws -> Void) throws {
        guard !failed else { throw CairnError(.internal, "DecryptingReader used after an error") }
        do { try body() } catch { failed = true; buffer = Data(); pendingCount = 0; throw error }
    }

    // MARK: header

    /// Parses and authenticates the header once it is complete; false if more bytes are needed.
    private func parseHeader() throws -> Bool {
        let b = buffer
        let n = b.count
        let m = EncryptedStream.magic
        let cmp = min(n, m.count)
        guard b.prefix(cmp).elementsEqual(m.prefix(cmp)) else {
            throw StreamFormatError.badMagic.error("not a Cairn encrypted stream (the first bytes are not CAIRNENC)")
        }
        guard n > 8 else { return false }
        let base = b.startIndex
        func byte(_ i: Int) -> UInt8 { b[base + i] }
        func bytes(_ r: Range<Int>) -> Data { b.subdata(in: base + r.lowerBound ..< base + r.upperBound) }
        let version = byte(8)
        guard EncryptedStream.readableVersions.contains(version) else {
            throw StreamFormatError.unsupportedVersion.error("unsupported encrypted stream version \(version) (this build reads versions 1 and 2)")
        }
        guard n > 9 else { return false }
        let k = Int(byte(9))
        guard k > 0 else { throw StreamFormatError.malformedHeader.error("malformed encrypted stream header: empty key id") }
        // Version 2: a u16 context length and the context follow the key id.
        let contextLength: Int
        if version == 1 {
            contextLength = 0
        } else {
            guard n >= 12 + k else { return false }
            contextLength = Int(byte(10 + k)) << 8 | Int(byte(11 + k))
        }
        let aadEnd = version == 1 ? 10 + k : 12 + k + contextLength
        let total = version == 1 ? EncryptedStream.headerSizeV1(keyIdLength: k)
            : EncryptedStream.headerSize(keyIdLength: k, contextLength: contextLength)
        guard n >= total else { return false }
        guard let id = String(data: bytes(10 ..< 10 + k), encoding: .utf8) else {
            throw StreamFormatError.malformedHeader.error("malformed encrypted stream header: key id is not UTF-8")
        }
        let context = version == 1 ? nil : try StreamContext.decode(bytes(12 + k ..< aadEnd))
        var off = aadEnd
        let salt = bytes(off ..< off + 32); off += 32
        let prefix = bytes(off ..< off + 7); off += 7
        let seg = Int(byte(off)) << 24 | Int(byte(off + 1)) << 16 | Int(byte(off + 2)) << 8 | Int(byte(off + 3)); off += 4
        guard seg >= 1 && seg <= EncryptedStream.maxSegmentSize else {
            throw StreamFormatError.malformedHeader.error("malformed encrypted stream header: segment size \(seg) is outside 1 byte ... 64 MiB")
        }
        let kbLen = Int(byte(off)); off += 1
        guard kbLen == EncryptedStream.keyBlockSize else {
            throw StreamFormatError.malformedHeader.error("malformed encrypted stream header: key block is \(kbLen) bytes, expected \(EncryptedStream.keyBlockSize)")
        }
        let check = bytes(off ..< off + EncryptedStream.keyCheckSize); off += EncryptedStream.keyCheckSize
        let wrapped = bytes(off ..< off + kbLen - EncryptedStream.keyCheckSize); off += kbLen - EncryptedStream.keyCheckSize
        let macOffset = off
        let mac = bytes(off ..< off + EncryptedStream.headerMACSize)

        guard let master = keyring.key(for: id) else {
            throw StreamFormatError.unknownKeyId.error("key id \"\(id)\" is not in the keyring")
        }
        let (kek, ourCheck) = try EncryptedStream.masterDerivations(master)
        let dataKey = try KeyWrap.unwrap(wrapped, with: kek, aad: bytes(0 ..< aadEnd))
        if !constantTimeEquals(check, ourCheck) {
            // A different key, unless the key check bytes themselves were altered.
            guard dataKey != nil else {
                throw StreamFormatError.wrongKey.error("wrong key for key id \"\(id)\": the stream was encrypted with a different key")
            }
            throw StreamFormatError.headerAuthenticationFailed.error("encrypted stream header failed authentication (key check value altered)")
        }
        guard let dataKey else {
            throw StreamFormatError.headerAuthenticationFailed.error("encrypted stream header failed authentication (wrapped data key altered)")
        }
        let headerKey = try HKDF.sha256(key: dataKey, salt: salt, info: EncryptedStream.headerKeyInfo, outputByteCount: 32)
        guard constantTimeEquals(Digest.hmacSHA256(key: headerKey, bytes(0 ..< macOffset)), mac) else {
            throw StreamFormatError.headerAuthenticationFailed.error("encrypted stream header failed authentication (header MAC mismatch)")
        }
        // Only an authentic header's context means anything.
        if let expectedContext {
            if let context, context != expectedContext {
                throw StreamFormatError.contextMismatch.error("encrypted stream does not belong to \(expectedContext): its header names \(context)")
            }
            if context == nil && (requireContext || version == 2) {
                let what = version == 1 ? "it is a version 1 stream, which names no backup" : "its header names no backup"
                throw StreamFormatError.contextMismatch.error("encrypted stream does not belong to \(expectedContext): \(what)")
            }
        }
        self.version = version
        self.context = context
        gcm = try AESGCM(key: HKDF.sha256(key: dataKey, salt: salt, info: EncryptedStream.segmentKeyInfo, outputByteCount: 32))
        noncePrefix = prefix
        segmentSize = seg
        keyId = id
        buffer = b.subdata(in: base + total ..< base + n)
        pending = UnsafeMutableRawPointer.allocate(byteCount: seg + EncryptedStream.tagSize, alignment: 16)
        outputs = BufferPool(bufferSize: seg, maxFree: max(1, min(4, (4 << 20) / seg)))
        return true
    }

    // MARK: segments

    /// Opens every segment of `pending` + `data` that is followed by at least
    /// one more byte (so it cannot be the last one), and keeps the rest
    /// (at most one sealed segment) in `pending`.
    private func consume(_ data: Data, _ emit: (Data) throws -> Void) throws {
        guard let pending, !data.isEmpty else { return }
        let cs = segmentSize + EncryptedStream.tagSize
        try data.withUnsafeBytes { inp in
            let n = inp.count
            var off = 0
            if pendingCount > 0 {
                let take = min(cs - pendingCount, n)
                if take > 0 { (pending + pendingCount).copyMemory(from: inp.baseAddress!, byteCount: take) }
                pendingCount += take
                off = take
                guard pendingCount == cs && off < n else { return }
                try openSegment(UnsafeRawBufferPointer(start: pending, count: cs), bytesAfter: n - off, emit)
                pendingCount = 0
            }
            while n - off > cs {
                try openSegment(UnsafeRawBufferPointer(rebasing: inp[off ..< off + cs]), bytesAfter: n - off - cs, emit)
                off += cs
            }
            if off < n {
                pending.copyMemory(from: inp.baseAddress! + off, byteCount: n - off)
                pendingCount = n - off
            }
        }
    }

    /// Opens one full segment known not to be the last (`bytesAfter` > 0
    /// bytes of the stream follow it) and hands out its plaintext.
    private func openSegment(_ sealed: UnsafeRawBufferPointer, bytesAfter: Int, _ emit: (Data) throws -> Void) throws {
        let pool = outputs!
        let buffer = pool.take()
        let dst = UnsafeMutableRawBufferPointer(start: buffer, count: segmentSize)
        do {
            if try !open(sealed, last: false, into: dst) {
                if try open(sealed, last: true, into: dst) {
                    throw StreamFormatError.trailingData.error("encrypted stream has trailing data after the last segment (segment \(counter)): \(bytesAfter) extra bytes or more")
                }
                if let len = try lastSegmentLength(in: sealed, scratch: dst) {
                    throw StreamFormatError.trailingData.error("encrypted stream has trailing data after the last segment (segment \(counter)): \(sealed.count - len + bytesAfter) extra bytes or more")
                }
                throw StreamFormatError.authenticationFailed.error("encrypted stream authentication failed at segment \(counter) (data altered, reordered, repeated or from another stream)")
            }
            if counter == UInt32.max {
                throw StreamFormatError.malformedHeader.error("malformed encrypted stream header: more than 2^32 segments")
            }
        } catch {
            pool.give(buffer)
            throw error
        }
        counter += 1
        plaintextBytes += Int64(segmentSize)
        try emit(pool.data(buffer, count: segmentSize))
    }

    /// At EOF: the remaining 0 ... segmentSize+16 bytes must be the last segment.
    private func openFinal(_ emit: (Data) throws -> Void) throws {
        let r = pendingCount
        let cs = segmentSize + EncryptedStream.tagSize
        if r < EncryptedStream.tagSize {
            throw StreamFormatError.truncated.error("encrypted stream is truncated: it ends \(r) bytes into segment \(counter), before the last segment")
        }
        let pool = outputs!
        let buffer = pool.take()
        let inp = UnsafeRawBufferPointer(start: pending, count: r)
        let o = UnsafeMutableRawBufferPointer(start: buffer, count: r - EncryptedStream.tagSize)
        let result: Int?
        do {
            if try open(inp, last: true, into: o) {
                result = r
            } else if r == cs, try open(inp, last: false, into: o) {
                // A complete non-last segment: the stream stops at a segment boundary.
                result = nil
            } else if let len = try lastSegmentLength(in: inp, scratch: o) {
                // Trailing bytes after a shorter last segment.
                result = len
            } else {
                result = -1
            }
        } catch {
            pool.give(buffer)
            throw error
        }
        switch result {
        case .some(r):
            pendingCount = 0
            plaintextBytes += Int64(r - EncryptedStream.tagSize)
            if r > EncryptedStream.tagSize { try emit(pool.data(buffer, count: r - EncryptedStream.tagSize)) } else { pool.give(buffer) }
        case .none:
            pool.give(buffer)
            throw StreamFormatError.truncated.error("encrypted stream is truncated: it ends after segment \(counter), which is not the last segment")
        case .some(-1):
            pool.give(buffer)
            throw StreamFormatError.truncated.error("encrypted stream is truncated: it ends without an authentic last segment (cut inside segment \(counter), or that final segment is corrupted)")
        case .some(let len):
            pool.give(buffer)
            throw StreamFormatError.trailingData.error("encrypted stream has trailing data after the last segment (segment \(counter)): \(r - len) extra bytes")
        }
    }

    /// The length of an authentic last segment that starts `sealed` and is
    /// shorter than it (so trailing bytes follow it), or nil. Every candidate
    /// length costs one GCM pass, so the search stops after about 64 MiB of
    /// work: short trailing garbage is always recognised, a long tail after a
    /// long last segment may instead be reported as an authentication failure
    /// or a truncation. Only runs on the error path.
    private func lastSegmentLength(in sealed: UnsafeRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) throws -> Int? {
        var budget = 64 << 20
        var len = sealed.count - 1
        while len >= EncryptedStream.tagSize && budget > 0 {
            if try open(UnsafeRawBufferPointer(rebasing: sealed[0 ..< len]), last: true,
                        into: UnsafeMutableRawBufferPointer(rebasing: scratch[0 ..< len - EncryptedStream.tagSize])) {
                return len
            }
            budget -= len + 256
            len -= 1
        }
        return nil
    }

    private func open(_ sealed: UnsafeRawBufferPointer, last: Bool, into out: UnsafeMutableRawBufferPointer) throws -> Bool {
        let nonce = EncryptedStream.nonce(prefix: noncePrefix, counter: counter, last: last)
        return try nonce.withUnsafeBytes { n in
            try gcm!.open(sealed, nonce: n, aad: UnsafeRawBufferPointer(start: nil, count: 0), into: out)
        }
    }
}
