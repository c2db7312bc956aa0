import Foundation
import Jobs

/// Warnings about a catalog scan, on stderr: every skipped manifest (key and
/// reason), and every listed manifest that did not authenticate.
func warnAbout(_ scan: CatalogScan) {
    warnAbout(scan.problems)
    warnAbout(scan.entries)
}

/// One warning per skipped manifest: its key and the reason.
func warnAbout(_ problems: [CatalogProblem]) {
    for p in problems { warn("\(p)") }
}

/// One warning per manifest that did not authenticate. For the backup that
/// `restore latest` chose, `latestOf` are the skipped manifests: those named
/// for a newer backup are pointed out, since `latest` then is not the newest.
func warnAbout(_ entries: [CatalogEntry], latestOf skipped: [CatalogProblem] = [], trusted: Bool = false) {
    for e in entries where e.authentication != .authenticated {
        let hint = if trusted { "trusted as asked (--trust-unauthenticated)" }
            else if case .notChecked = e.authentication { "pass its key with --key-file to check it" }
            else { "restoring it needs --trust-unauthenticated" }
        warn("manifest \(e.key) is \(e.authentication); \(hint)")
    }
    for e in entries {
        let dir = e.key.dropLast((e.manifest.id + BackupLayout.manifestSuffix).count)
        // Ids begin with their UTC second (yyyyMMddTHHmmssZ); within one second the random rest says nothing of order.
        let second = e.manifest.id.prefix(16)
        for p in skipped where p.key.hasPrefix(dir) && p.key != e.key && p.key.dropFirst(dir.count).prefix(16) >= second {
            warn("manifest \(p.key), newer than backup \(e.manifest.id), was skipped: `latest` is the newest readable backup, not the newest one")
        }
    }
}

private func warn(_ line: String) {
    FileHandle.standardError.write(Data("cairn: warning: \(line)\n".utf8))
}

/// A manifest as `cairn backups list --json` prints it: its own fields plus
/// `"authentication"` ("authenticated", "unauthenticated", "not checked").
struct ListedBackup: Encodable {
    var entry: CatalogEntry
    private enum Keys: String, CodingKey { case authentication, verified }

    func encode(to encoder: any Encoder) throws {
        try entry.manifest.encode(to: encoder)
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(entry.authentication.label, forKey: .authentication)
        try c.encode(entry.verificationState, forKey: .verified)
    }
}
