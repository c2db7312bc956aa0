import Core
import Foundation

/// The backup an encrypted stream belongs to, written into its version 2
/// header (docs/FORMAT.md §2) and covered by the key-wrap AAD and the header
/// MAC: stored objects cannot be moved under another backup's names without
/// the reader noticing.
public struct StreamContext: Sendable, Hashable, CustomStringConvertible {
    /// The object of a backup: the `pg_dump` archive, or the globals script.
    public static let dumpObject = "dump"
    public static let globalsObject = "globals"

    public var job: String
    public var backupID: String
    /// `dump` or `globals`.
    public var object: String

    public init(job: String, backupID: String, object: String) {
        self.job = job
        self.backupID = backupID
        self.object = object
    }

    /// "the dump of backup 20261203T023000Z-1a2b3c4d of job x"
    public var description: String { "the \(object) of backup \(backupID) of job \(job)" }

    /// `u8 len ‖ job ‖ u8 len ‖ backup id ‖ u8 len ‖ object`, each field 1 ... 255 bytes of UTF-8.
    public func encoded() throws -> Data {
        var out = Data()
        for (name, value) in [("job", job), ("backup id", backupID), ("object", object)] {
            let bytes = Data(value.utf8)
            guard bytes.count >= 1 && bytes.count <= 255 else {
                throw CairnError(.internal, "encrypted stream context: \(name) must be 1 to 255 bytes of UTF-8, got \(bytes.count)")
            }
            out.append(UInt8(bytes.count))
            out.append(bytes)
        }
        return out
    }

    /// Parses an encoded context; nil for an empty one (length 0).
    static func decode(_ data: Data) throws -> StreamContext? {
        guard !data.isEmpty else { return nil }
        var fields: [String] = []
        var i = data.startIndex
        while i < data.endIndex && fields.count < 3 {
            let len = Int(data[i])
            let start = i + 1
            guard len >= 1, start + len <= data.endIndex, let s = String(data: data[start ..< start + len], encoding: .utf8) else {
                throw StreamFormatError.malformedHeader.error("malformed encrypted stream header: bad context field \(fields.count + 1)")
            }
            fields.append(s)
            i = start + len
        }
        guard fields.count == 3, i == data.endIndex else {
            throw StreamFormatError.malformedHeader.error("malformed encrypted stream header: the context is not exactly three fields")
        }
        return StreamContext(job: fields[0], backupID: fields[1], object: fields[2])
    }
}
