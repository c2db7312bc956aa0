import Logging

extension Logger {
    /// A logger for a library module. Only the executable bootstraps logging.
    public static func cairn(_ label: String) -> Logger { Logger(label: "cairn.\(label)") }
}
