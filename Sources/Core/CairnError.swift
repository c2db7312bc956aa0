import Foundation

/// The one error type Cairn throws across module boundaries.
///
/// `message` is a single line that says what failed and where (bucket, key,
/// file, line...). It never contains a secret: callers build it from names,
/// never from credentials or key material. `code` decides the CLI exit status
/// through `ErrorCode.exitStatus`, the single table of exit codes.
public struct CairnError: Error, CustomStringConvertible, Sendable {
    public var code: ErrorCode
    public var message: String
    /// The underlying cause, if any (kept for logs; its description is appended).
    public var cause: (any Error & Sendable)?
    /// A transient failure that the same request may not hit again (an
    /// overloaded server, a dropped connection): worth retrying.
    public var isTransient: Bool

    public init(_ code: ErrorCode, _ message: String, cause: (any Error & Sendable)? = nil, transient: Bool? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.isTransient = transient ?? (code == .network || code == .timeout)
    }

    public var description: String {
        if let cause, !(cause is CancellationError) {
            let c = String(describing: cause)
            if !c.isEmpty && !message.contains(c) { return "\(message): \(c)" }
        }
        return message
    }
}

/// Error codes, grouped by what the operator has to do about them.
public enum ErrorCode: String, Sendable, CaseIterable {
    case usage            // wrong command-line usage
    case config           // bad configuration file or value
    case io               // local file system error
    case network          // connection refused, DNS, TLS, dropped connection
    case timeout          // an operation ran past its deadline
    case tls              // certificate verification or TLS set-up failed
    case storage          // object store answered with an error
    case storageAuth      // credentials rejected or missing permission
    case notFound         // bucket, key, backup or job does not exist
    case integrity        // checksum, authentication tag or format mismatch
    case crypto           // key problems (wrong key, unknown key id, bad key file)
    case database         // PostgreSQL connection or query failure
    case process          // a child process (pg_dump, pg_restore) failed
    case cancelled        // cancelled by signal or timeout
    case busy             // another run holds the lock
    case `internal`       // a bug

    /// The exit status of the `cairn` CLI for this error code.
    /// 0 = success, 1 = generic failure, 2 = usage (ArgumentParser's convention).
    public var exitStatus: Int32 {
        switch self {
        case .usage: return 2
        case .config: return 3
        case .io: return 4
        case .network, .timeout, .tls: return 5
        case .storage: return 6
        case .storageAuth: return 7
        case .notFound: return 8
        case .integrity: return 9
        case .crypto: return 10
        case .database: return 11
        case .process: return 12
        case .busy: return 13
        case .cancelled: return 130
        case .internal: return 70
        }
    }
}

extension CairnError {
    /// Wraps any error as a CairnError, keeping CairnErrors as they are.
    public static func wrap(_ error: any Error, _ code: ErrorCode = .internal, _ context: String) -> CairnError {
        if let e = error as? CairnError { return e }
        if error is CancellationError { return CairnError(.cancelled, "\(context): cancelled") }
        return CairnError(code, "\(context): \(error)")
    }
}

/// `errno` as a readable string.
public func errnoString(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
