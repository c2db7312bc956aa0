import Core
import Foundation

/// A manifest the catalog skipped, and why. Every other backup stays
/// listable and restorable.
public struct CatalogProblem: Sendable, CustomStringConvertible {
    public enum Reason: Sendable, CustomStringConvertible {
        /// The object could not be read (gone since the listing, forbidden, too large...).
        case unreadable(CairnError)
        /// The bytes are not a manifest this Cairn reads.
        case undecodable(ManifestDecodeError)
        /// The manifest names another backup id than its object name.
        case misnamed(manifestID: String)

        public var description: String {
            switch self {
            case .unreadable(let e): return "unreadable: \(e.message)"
            case .undecodable(let e): return "\(e)"
            case .misnamed(let id): return "it describes backup \(id), not the backup its name says (copied or renamed?)"
            }
        }
    }

    /// The manifest's object key.
    public var key: String
    public var reason: Reason

    public init(key: String, reason: Reason) {
        self.key = key
        self.reason = reason
    }

    public var description: String { "manifest \(key) skipped: \(reason)" }
}
