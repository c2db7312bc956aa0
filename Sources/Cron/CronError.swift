/// A cron expression that could not be parsed.
///
/// `field` names the part that is wrong ("minute", "day-of-week", or "expression" for
/// problems with the whole text), `text` is the offending token exactly as written, and
/// `message` is one line that names the field, quotes the token and says what is allowed,
/// for example `day-of-week: "8" is out of range (0-7 or SUN-SAT)`.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let text: String
    public let message: String

    public init(field: String, text: String, message: String) {
        self.field = field
        self.text = text
        self.message = message
    }

    /// Builds the message as `field: "text" problem`.
    init(field: String, text: String, problem: String) {
        self.init(field: field, text: text, message: "\(field): \"\(text)\" \(problem)")
    }

    public var description: String { message }
}
