import Foundation

/// What to tell an operator whose config names a key `credential:NAME` (a
/// systemd credential) while cairn runs outside systemd, for example on a
/// shell during a restore: the file to pass with `--key-file` instead, taken
/// from the unit's `LoadCredential=NAME:PATH` when the unit is installed.
public enum CredentialHint {
    /// Where the unit and its drop-ins are looked for, in systemd's order of
    /// precedence (later files override earlier ones).
    public static let unitFiles = ["/usr/lib/systemd/system/cairn.service", "/lib/systemd/system/cairn.service",
                                   "/usr/local/lib/systemd/system/cairn.service", "/etc/systemd/system/cairn.service"]

    /// The one-line error: which key, why it cannot be read here, and the
    /// `--key-file` argument that replaces it.
    public static func message(keyID: String, credential: String, source: String?) -> String {
        "key '\(keyID)' is the systemd credential '\(credential)', which exists only when cairn runs under systemd (CREDENTIALS_DIRECTORY is not set); "
            + "outside the service pass the key file: --key-file \(keyID)=\(source ?? "/path/to/key")"
            + (source == nil ? "" : " (LoadCredential=\(credential):\(source!) in cairn.service)")
    }

    /// The source file of credential `name` in the installed unit and its
    /// drop-ins (`cairn.service.d/*.conf`), or nil.
    public static func loadCredentialSource(of name: String, unitFiles: [String] = unitFiles) -> String? {
        var texts: [String] = []
        for unit in unitFiles {
            if let t = try? String(contentsOfFile: unit, encoding: .utf8) { texts.append(t) }
            let dropIns = ((try? FileManager.default.contentsOfDirectory(atPath: unit + ".d")) ?? [])
                .filter { $0.hasSuffix(".conf") }.sorted()
            for f in dropIns {
                if let t = try? String(contentsOfFile: unit + ".d/" + f, encoding: .utf8) { texts.append(t) }
            }
        }
        return source(of: name, unitTexts: texts)
    }

    /// The `PATH` of the last `LoadCredential=NAME:PATH` in `unitTexts`
    /// (as systemd applies them, the last one wins), or nil.
    public static func source(of name: String, unitTexts: [String]) -> String? {
        var found: String?
        for text in unitTexts {
            for raw in text.split(whereSeparator: \.isNewline) {
                let line = raw.trimmingCharacters(in: .whitespaces)
                guard line.hasPrefix("LoadCredential=") else { continue }
                let value = line.dropFirst("LoadCredential=".count)
                guard let colon = value.firstIndex(of: ":"), value[..<colon] == name[...] else { continue }
                let path = value[value.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if !path.isEmpty { found = path }
            }
        }
        return found
    }
}
