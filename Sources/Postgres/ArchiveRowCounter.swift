import Core
import Foundation

/// Counts COPY rows per table in a pg_dump custom-format archive as its bytes
/// stream past, without a database: a cheap cross-check of the dump against
/// the snapshot's row counts (`DumpSnapshot.rowCounts`).
///
/// Only uncompressed archives (`pg_dump -Fc -Z0`), format versions 1.12–1.16
/// (pg_dump 9.x–17). Layout (pg_backup_archiver.c, pg_backup_custom.c):
/// header ("PGDMP", version, int/offset sizes, format, compression, creation
/// time, database name, server and pg_dump versions), the TOC (one entry per
/// object; "TABLE DATA" entries name the tables), then data blocks: a type
/// byte, the entry's dump id, and length-prefixed chunks up to a zero length.
/// A table's data is COPY text: one line per row (newlines inside values are
/// escaped), ended by a `\.` line.
///
/// Memory: the header and TOC are buffered (they are small); data is not.
public struct ArchiveRowCounter: Sendable {
    private var pending: [UInt8] = []         // header+TOC bytes, or a partial field
    private var nextParseAttempt = 64 << 10
    private var tocParsed = false
    private var intSize = 4
    /// Tables by dump id: qualified name and count so far.
    private var tables: [Int: String] = [:]
    private var expected: Set<Int> = []
    private var counts: TableRowCounts = [:]
    private var seen: Set<Int> = []

    private enum State: Sendable {
        case blockType
        case blockID(type: UInt8)
        case chunkLength(id: Int, blob: Bool)
        case chunkData(id: Int, blob: Bool, remaining: Int)
        case blobOID(id: Int)
    }
    private var state: State = .blockType
    // Line state of the current table block.
    private var lineLength = 0
    private var terminatorMatch = 0   // 1: line starts "\", 2: line starts "\." (looked at while lineLength < 2)
    private var blockEnded = false     // saw the "\." line
    private var rows: Int64 = 0
    private var blockCounted = false   // the current data block is a counted table's

    public init() {}

    /// Bytes of the archive, in order.
    public mutating func consume(_ data: Data) throws {
        if data.isEmpty { return }
        if !tocParsed {
            pending.append(contentsOf: data)
            // Re-parse only when the buffer has doubled: linear overall.
            if pending.count < nextParseAttempt { return }
            try attemptTOC()
            return
        }
        try data.withUnsafeBytes { try consumeData(UnsafeRawBufferPointer($0)) }
    }

    /// Ends the stream and returns the rows per table (`schema.table`, quoted
    /// as `quoteIdentifier` does), for every table with data in the archive.
    public mutating func finish() throws -> TableRowCounts {
        if !tocParsed {
            try attemptTOC()
            guard tocParsed else { throw CairnError(.integrity, "archive ended inside its header or table of contents") }
        }
        switch state {
        case .blockType: break
        default: throw CairnError(.integrity, "archive ended inside a data block")
        }
        let missing = expected.subtracting(seen)
        if let m = missing.first {
            throw CairnError(.integrity, "archive ended before the data of \(tables[m] ?? "dump id \(m)")")
        }
        return counts
    }

    // MARK: header and TOC

    private mutating func attemptTOC() throws {
        var consumed = 0
        let toc: ArchiveTOC
        do {
            toc = try ArchiveTOC.parse(pending, consumed: &consumed)
        } catch is ArchiveTOC.NeedMore {
            nextParseAttempt = max(pending.count * 2, 64 << 10)
            return
        }
        if toc.compressed {
            throw CairnError(.config, "archive is compressed: row counting needs pg_dump -Z0")
        }
        intSize = toc.intSize
        for e in toc.entries where e.desc == "TABLE DATA" {
            tables[e.dumpID] = qualifiedName(schema: e.namespace, table: e.tag)
            if e.hasData { expected.insert(e.dumpID) }
        }
        tocParsed = true
        let rest = Array(pending[consumed...])
        pending = []
        try rest.withUnsafeBytes { try consumeData($0) }
    }

    // MARK: data blocks

    private mutating func readInt(_ buf: UnsafeRawBufferPointer, _ i: inout Int) -> Int? {
        let need = 1 + intSize
        // Fast path: the whole field lies in this buffer (pg_dump -Z0 writes
        // one chunk per COPY row, so this runs once per row).
        if pending.isEmpty && buf.count - i >= need {
            var v = 0
            for k in 0..<intSize { v |= Int(buf[i + 1 + k]) << (8 * k) }
            let negative = buf[i] != 0
            i += need
            return negative ? -v : v
        }
        while pending.count < need && i < buf.count {
            pending.append(buf[i]); i += 1
        }
        guard pending.count == need else { return nil }
        var v = 0
        for k in 0..<intSize { v |= Int(pending[1 + k]) << (8 * k) }
        let negative = pending[0] != 0
        pending.removeAll(keepingCapacity: true)
        return negative ? -v : v
    }

    private mutating func consumeData(_ buf: UnsafeRawBufferPointer) throws {
        var i = 0
        while i < buf.count {
            switch state {
            case .blockType:
                let t = buf[i]; i += 1
                guard t == 1 || t == 3 else {
                    throw CairnError(.integrity, "unexpected block type \(t) in archive data")
                }
                state = .blockID(type: t)
            case .blockID(let t):
                guard let id = readInt(buf, &i) else { return }
                if t == 1 {
                    blockCounted = tables[id] != nil
                    if blockCounted {
                        seen.insert(id)
                        lineLength = 0; terminatorMatch = 0; blockEnded = false; rows = 0
                    }
                    state = .chunkLength(id: id, blob: false)
                } else {
                    blockCounted = false
                    state = .blobOID(id: id)
                }
            case .blobOID(let id):
                guard let oid = readInt(buf, &i) else { return }
                state = oid == 0 ? .blockType : .chunkLength(id: id, blob: true)
            case .chunkLength(let id, let blob):
                guard let n = readInt(buf, &i) else { return }
                if n < 0 { throw CairnError(.integrity, "negative chunk length in archive data") }
                if n == 0 {
                    if blob {
                        state = .blobOID(id: id)
                    } else {
                        if blockCounted, let name = tables[id] {
                            if !blockEnded && lineLength > 0 {
                                throw CairnError(.integrity, "data of \(name) ends inside a row")
                            }
                            counts[name, default: 0] += rows
                        }
                        state = .blockType
                    }
                } else {
                    state = .chunkData(id: id, blob: blob, remaining: n)
                }
            case .chunkData(let id, let blob, let remaining):
                let n = min(remaining, buf.count - i)
                if blockCounted && !blockEnded {
                    countLines(UnsafeRawBufferPointer(rebasing: buf[i..<i + n]))
                }
                i += n
                state = remaining == n ? .chunkLength(id: id, blob: blob) : .chunkData(id: id, blob: blob, remaining: remaining - n)
            }
        }
    }

    /// Counts COPY text lines up to the `\.` line: memchr finds each newline;
    /// only a line's first two bytes are looked at (to spot `\.`).
    private mutating func countLines(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !blockEnded else { return }
        let end = bytes.count
        var p = 0
        while p < end {
            guard let hit = memchr(base + p, 0x0A, end - p) else {
                lineBytes(base + p, end - p)
                return
            }
            let q = base.distance(to: UnsafeRawPointer(hit))
            lineBytes(base + p, q - p)
            if lineLength == 2 && terminatorMatch == 2 {
                blockEnded = true
                return
            }
            rows += 1
            lineLength = 0
            terminatorMatch = 0
            p = q + 1
        }
    }

    /// Extends the current line by `count` bytes (none a newline).
    @inline(__always)
    private mutating func lineBytes(_ start: UnsafeRawPointer, _ count: Int) {
        var k = 0
        while lineLength < 2 && k < count {
            let b = start.load(fromByteOffset: k, as: UInt8.self)
            if lineLength == 0 {
                terminatorMatch = b == 0x5C ? 1 : 0                          // "\"
            } else {
                terminatorMatch = terminatorMatch == 1 && b == 0x2E ? 2 : 0  // "\."
            }
            lineLength += 1
            k += 1
        }
        lineLength += count - k
    }
}
