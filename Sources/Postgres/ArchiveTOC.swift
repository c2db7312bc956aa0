import Core
import Foundation

/// The header and table of contents of a pg_dump custom-format archive
/// (format versions 1.12–1.16, pg_dump 9.x–17; pg_backup_archiver.c
/// `ReadHead` / `ReadToc`): one entry per object with its type, name,
/// schema, owner and SQL definition. Read from the start of the archive, so
/// a restore can learn what the archive needs (its roles) before pg_restore runs.
public struct ArchiveTOC: Sendable {
    public struct Entry: Sendable {
        public var dumpID: Int
        /// "TABLE", "TABLE DATA", "ACL", "DEFAULT ACL", "SCHEMA" …
        public var desc: String
        public var tag: String
        public var namespace: String
        public var owner: String
        public var definition: String
        /// False when the archive says the entry has no data block (K_OFFSET_NO_DATA).
        public var hasData: Bool
    }

    public var intSize: Int
    public var offSize: Int
    public var compressed: Bool
    public var entries: [Entry]

    /// Roles the archive names: every entry's owner and the grantees of its
    /// `ACL` and `DEFAULT ACL` entries (what pg_restore needs to exist unless
    /// it runs with --no-owner --no-privileges).
    public var referencedRoles: Set<String> {
        var out: Set<String> = []
        for e in entries {
            if !e.owner.isEmpty { out.insert(e.owner) }
            if e.desc == "ACL" || e.desc == "DEFAULT ACL" { out.formUnion(rolesNamed(inACL: e.definition)) }
        }
        return out
    }

    struct NeedMore: Error {}

    /// Parses the header and TOC at the start of `bytes`; throws `NeedMore`
    /// if they do not fit in it yet. `consumed` is where the data blocks start.
    static func parse(_ bytes: [UInt8], consumed: inout Int) throws -> ArchiveTOC {
        var r = ArchiveReader(bytes: bytes)
        guard try (0..<5).map({ _ in try r.byte() }) == Array("PGDMP".utf8) else {
            throw CairnError(.integrity, "not a pg_dump custom-format archive (no PGDMP magic)")
        }
        let major = Int(try r.byte()), minor = Int(try r.byte())
        _ = try r.byte()  // revision
        let version = major * 100 + minor
        guard major == 1, (12...16).contains(minor) else {
            throw CairnError(.integrity, "unsupported pg_dump archive version \(major).\(minor)")
        }
        let intSize = Int(try r.byte())
        let offSize = Int(try r.byte())
        guard (1...8).contains(intSize), (1...8).contains(offSize) else {
            throw CairnError(.integrity, "bad int/offset size in archive header")
        }
        r.intSize = intSize
        guard try r.byte() == 1 else {
            throw CairnError(.integrity, "archive is not in custom format (pg_dump -Fc)")
        }
        let compressed: Bool
        if version >= 115 {
            compressed = try r.byte() != 0          // compression algorithm, 0 = none
        } else {
            let level = try r.int()                  // compression level, 0 = none
            compressed = level != 0
        }
        for _ in 0..<7 { _ = try r.int() }           // creation time (struct tm)
        _ = try r.string()                           // database name
        _ = try r.string()                           // server version
        _ = try r.string()                           // pg_dump version

        let count = try r.int()
        var entries: [Entry] = []
        for _ in 0..<max(0, count) {
            let dumpID = try r.int()
            _ = try r.int()                          // has a data dumper
            _ = try r.string()                       // table oid
            _ = try r.string()                       // oid
            let tag = try r.string() ?? ""
            let desc = try r.string() ?? ""
            _ = try r.int()                          // section
            let definition = try r.string() ?? ""
            _ = try r.string()                       // drop statement
            _ = try r.string()                       // copy statement
            let namespace = try r.string() ?? ""
            _ = try r.string()                       // tablespace
            if version >= 114 { _ = try r.string() } // table access method
            if version >= 116 { _ = try r.int() }    // relkind
            let owner = try r.string() ?? ""
            _ = try r.string()                       // "with oids"
            while try r.string() != nil {}           // dependencies, ended by NULL
            let offsetFlag = try r.byte()            // custom format: data offset
            try r.skip(offSize)
            entries.append(Entry(dumpID: dumpID, desc: desc, tag: tag, namespace: namespace, owner: owner,
                                 definition: definition, hasData: offsetFlag != 3))
        }
        consumed = r.pos
        return ArchiveTOC(intSize: intSize, offSize: offSize, compressed: compressed, entries: entries)
    }

    /// Reads `channel` until the header and TOC are complete (at most
    /// `limit` bytes) and returns them with every byte read so far, which
    /// the caller passes on before the rest of the channel.
    public static func read(from channel: ByteChannel, limit: Int = 256 << 20) async throws -> (toc: ArchiveTOC, head: Data) {
        var buffer: [UInt8] = []
        var nextAttempt = 4096
        while true {
            let chunk = try await channel.receive()
            if let chunk { buffer.append(contentsOf: chunk) }
            if buffer.count >= nextAttempt || chunk == nil {
                var consumed = 0
                do {
                    return (try parse(buffer, consumed: &consumed), Data(buffer))
                } catch is NeedMore {
                    if chunk == nil { throw CairnError(.integrity, "archive ended inside its header or table of contents") }
                    if buffer.count > limit { throw CairnError(.integrity, "archive's table of contents is larger than \(limit >> 20) MiB") }
                    nextAttempt = buffer.count * 2
                }
            }
        }
    }
}

/// Reads the archive's integers (a sign byte, then `intSize` bytes, least
/// significant first) and length-prefixed strings.
struct ArchiveReader {
    let bytes: [UInt8]
    var pos = 0
    var intSize = 4
    mutating func byte() throws -> UInt8 {
        guard pos < bytes.count else { throw ArchiveTOC.NeedMore() }
        defer { pos += 1 }
        return bytes[pos]
    }
    mutating func skip(_ n: Int) throws {
        guard pos + n <= bytes.count else { throw ArchiveTOC.NeedMore() }
        pos += n
    }
    mutating func int() throws -> Int {
        let sign = try byte()
        var v = 0
        for i in 0..<intSize { v |= Int(try byte()) << (8 * i) }
        return sign != 0 ? -v : v
    }
    mutating func string() throws -> String? {
        let n = try int()
        if n < 0 { return nil }
        guard pos + n <= bytes.count else { throw ArchiveTOC.NeedMore() }
        defer { pos += n }
        return String(decoding: bytes[pos..<pos + n], as: UTF8.self)
    }
}
