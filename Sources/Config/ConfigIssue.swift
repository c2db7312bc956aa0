/// One problem found in the configuration, with where it is and what was expected.
///
/// `description` is one line, `FILE:LINE: MESSAGE` (`FILE:LINE:COLUMN:` for
/// TOML syntax errors, `FILE: MESSAGE` when no line applies), for example
/// `jobs/nightly.toml:4: timeout: expected a duration like "30m" or "2h", got "soon"`.
/// Messages never contain a secret's value.
public struct ConfigIssue: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The file is not valid TOML (position from TOMLKit).
        case syntax
        /// A key that Cairn does not know (often a typo).
        case unknownKey
        /// A value of the wrong TOML type.
        case type
        /// A value of the right type that is malformed or out of range.
        case invalidValue
        /// A required key is absent.
        case missing
        /// A name that refers to nothing (storage, backup job, key id).
        case reference
        /// A secret written inline where a file is required.
        case inlineSecret
        /// A file or directory that cannot be read, or a bad file name.
        case file
    }

    public var kind: Kind
    /// The file as shown to the operator: the config path as given, job units
    /// relative to the config's directory (`jobs/db.toml`) when they are below it.
    public var file: String
    public var line: Int?
    public var column: Int?
    /// The dotted key the issue is about (`backup.compression_level`), if any.
    public var key: String?
    /// What is wrong and what is expected; starts with the key when there is one.
    public var message: String

    public init(kind: Kind, file: String, line: Int? = nil, column: Int? = nil, key: String? = nil, message: String) {
        self.kind = kind
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String {
        var s = file
        if let line {
            s += ":\(line)"
            if kind == .syntax, let column { s += ":\(column)" }
        }
        return s + ": " + message
    }
}
