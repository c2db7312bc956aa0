import Foundation

/// Content types by file extension, from a `mime.types` file (Debian's
/// media-types package installs `/etc/mime.types`): each line is a type
/// followed by its extensions; `#` starts a comment. Extensions match
/// case-insensitively; a file without a known extension is
/// `application/octet-stream`. When an extension is listed twice, the first
/// line wins (as in Apache and nginx).
public struct MimeTypes: Sendable {
    public static let fallback = "application/octet-stream"
    public static let systemPath = "/etc/mime.types"

    public private(set) var byExtension: [String: String]

    public init(byExtension: [String: String] = [:]) { self.byExtension = byExtension }

    /// Parses the text of a mime.types file.
    public init(parsing text: String) {
        var map: [String: String] = [:]
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0].contains("/") else { continue }
            let type = String(fields[0])
            for ext in fields.dropFirst() {
                let e = ext.lowercased()
                if map[e] == nil { map[e] = type }
            }
        }
        byExtension = map
    }

    /// The system table, or an empty one (everything octet-stream) when the file is absent or unreadable.
    public static func system(path: String = systemPath) -> MimeTypes {
        guard let data = FileManager.default.contents(atPath: path) else { return MimeTypes() }
        return MimeTypes(parsing: String(decoding: data, as: UTF8.self))
    }

    /// The content type for a path (only its last component's extension counts).
    public func contentType(forPath path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return Self.fallback }
        let ext = name[name.index(after: dot)...].lowercased()
        guard !ext.isEmpty else { return Self.fallback }
        return byExtension[ext] ?? Self.fallback
    }
}
