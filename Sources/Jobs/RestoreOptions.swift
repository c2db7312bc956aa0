import Foundation

extension RestoreJob {
    /// How a backup is restored. The defaults are faithful: owners and
    /// privileges as in the backup, globals applied when the target lacks
    /// roles the backup names.
    public struct Options: Sendable {
        /// Whether to apply the backup's globals (`pg_dumpall --globals-only`).
        public enum Globals: Sendable, Equatable {
            /// When the target server lacks a role the archive names (owners and
            /// grantees, their members, the roles they are members of).
            case auto
            /// Always (`--globals`); an error if the backup has none.
            case apply
            /// Never (`--no-globals`).
            case skip
        }

        /// pg_restore `--no-owner`.
        public var noOwner = false
        /// pg_restore `--no-privileges`.
        public var noPrivileges = false
        /// pg_restore `--clean --if-exists`; without it a non-empty target database is refused.
        public var clean = false
        public var globals = Globals.auto
        /// Keep `PASSWORD '…'` of the roles the globals create.
        public var globalsWithPasswords = false
        /// Replace an existing file (file targets).
        public var overwriteFile = false
        /// Where `jobs > 1` spools the archive (0600, removed afterwards); nil = the temporary directory.
        public var spoolDirectory: String?
        /// Receives one-line notes for the operator (e.g. `globals: applying (…)`); nil logs them.
        public var note: (@Sendable (String) -> Void)?

        public init(noOwner: Bool = false, noPrivileges: Bool = false, clean: Bool = false, globals: Globals = .auto,
                    globalsWithPasswords: Bool = false, overwriteFile: Bool = false, note: (@Sendable (String) -> Void)? = nil) {
            self.noOwner = noOwner
            self.noPrivileges = noPrivileges
            self.clean = clean
            self.globals = globals
            self.globalsWithPasswords = globalsWithPasswords
            self.overwriteFile = overwriteFile
            self.note = note
        }
    }
}
