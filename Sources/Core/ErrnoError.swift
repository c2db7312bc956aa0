import Foundation

/// A failed system call's errno, kept as data as a `CairnError`'s cause
/// (its description, `strerror`, ends the error's one line).
public struct ErrnoError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32 = errno) { self.code = code }
    public var description: String { errnoString(code) }
}
