import Foundation

/// Keys a delete left in place, each with the store's reason as data: the
/// cause of the `CairnError` that `ObjectStore.delete(keys:)` throws when the
/// store refused some keys but deleted the others (S3 DeleteObjects answers
/// per key; an Object Lock retention refuses with AccessDenied).
public struct DeleteFailures: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Failure: Sendable, Equatable {
        public var key: String
        /// The S3 error code (`AccessDenied`, `InvalidRequest`, …).
        public var code: String
        public var message: String
        public init(key: String, code: String, message: String) { self.key = key; self.code = code; self.message = message }
    }
    public var failures: [Failure]
    public init(failures: [Failure]) { self.failures = failures }

    /// The keys after the first (the error's message names the first): empty for one.
    public var description: String {
        failures.count < 2 ? "" : "also not deleted: " + failures.dropFirst().map { "\($0.key) (\($0.code))" }.joined(separator: ", ")
    }
}
