import Crypto
import Foundation

/// The scratch database of a verification: `cairn_verify_<job>_<backup id>`,
/// lower case, characters outside `[a-z0-9_]` as `_`, at most 63 bytes
/// (PostgreSQL's identifier limit). The backup id is always kept whole; a job
/// name too long to fit is shortened and given a hash of the full name, so
/// two jobs never share a scratch database. Pure.
public enum ScratchDatabaseName {
    public static let prefix = "cairn_verify_"
    public static let maxBytes = 63

    public static func make(job: String, backupID: String) -> String {
        let id = sanitize(backupID)
        var j = sanitize(job)
        let room = maxBytes - prefix.utf8.count - 1 - id.utf8.count
        if j.utf8.count > room {
            let hash = String(Digest.sha256(Data(job.utf8)).hexString.prefix(8))
            j = String(j.prefix(max(0, room - 9))) + "_" + hash
        }
        return String((prefix + j + "_" + id).prefix(maxBytes))
    }

    /// The start of every scratch database name of `job` (when its name is short enough to be kept whole).
    public static func jobPrefix(_ job: String) -> String { prefix + sanitize(job) + "_" }

    /// Whether `name` is one of Cairn's scratch databases (a leftover when no run owns it).
    public static func isScratch(_ name: String) -> Bool { name.hasPrefix(prefix) }

    static func sanitize(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.map { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" ? Character($0) : "_" })
    }
}
