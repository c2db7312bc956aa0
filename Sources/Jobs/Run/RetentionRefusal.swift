import Foundation

/// The cause of a retention run that refused to delete (the newest backup
/// is older than `keep_days`: backups are failing). Kept as the error's
/// cause, so alerts tell it from other failures without reading messages.
public struct RetentionRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}
