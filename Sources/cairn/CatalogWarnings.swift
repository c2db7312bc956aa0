import Foundation
import Jobs

/// Warnings about a catalog scan, on stderr: every skipped manifest (key and
/// reason), and every listed manifest that did not authenticate.
func warnAbout(_ scan: CatalogScan) {
    for p in scan.problems {
        FileHandle.standardError.write(Data("cairn: warning: \(p)\n".utf8))
    }
    for e in scan.entries where e.authentication != .authenticated {
        let hint = if case .notChecked = e.authentication { "pass its key with --key-file to check it" } else { "restoring it needs --trust-unauthenticated" }
        FileHandle.standardError.write(Data("cairn: warning: manifest \(e.key) is \(e.authentication); \(hint)\n".utf8))
    }
}

/// A manifest as `cairn backups list --json` prints it: its own fields plus
/// `"authentication"` ("authenticated", "unauthenticated", "not checked").
struct ListedBackup: Encodable {
    var entry: CatalogEntry
    private enum Keys: String, CodingKey { case authentication }

    func encode(to encoder: any Encoder) throws {
        try entry.manifest.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(entry.authentication.label, forKey: .authentication)
    }
}
