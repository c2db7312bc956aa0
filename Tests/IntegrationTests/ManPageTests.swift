import Foundation
import Testing

/// docs/man/cairn.1 is generated from the commands (scripts/manpage); this
/// checks that it is not stale: every command and every long option the
/// built `cairn` has appears in it, in the same order of commands.
@Suite struct ManPageTests {
    static var manPage: String {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            return try String(contentsOf: root.appendingPathComponent("docs/man/cairn.1"), encoding: .utf8)
        }
    }

    /// Commands depth-first, and each command's long options, from `cairn --experimental-dump-help`.
    static func commandsAndOptions() async throws -> (commands: [String], options: Set<String>) {
        let r = try await CLI.run(["--experimental-dump-help"])
        #expect(r.status == 0, "\(r.stderr)")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        var commands: [String] = [], options = Set<String>()
        func walk(_ command: [String: Any]) {
            for a in command["arguments"] as? [[String: Any]] ?? [] where a["shouldDisplay"] as? Bool != false {
                for n in a["names"] as? [[String: Any]] ?? [] where n["kind"] as? String == "long" {
                    if let name = n["name"] as? String { options.insert(name) }
                }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] {
                if let name = sub["commandName"] as? String { commands.append(name) }
                walk(sub)
            }
        }
        walk(try #require(root["command"] as? [String: Any]))
        return (commands, options)
    }

    @Test func theManPageNamesEveryCommandAndOption() async throws {
        let page = try Self.manPage
        let (commands, options) = try await Self.commandsAndOptions()
        #expect(commands.contains("restore") && commands.contains("show") && options.contains("trust-unauthenticated"))
        let listed = page.split(separator: "\n").filter { $0.hasPrefix(".It Em ") }.map { String($0.dropFirst(".It Em ".count)) }
        #expect(listed == commands, "docs/man/cairn.1 is stale: run scripts/manpage")
        for o in options.sorted() {
            #expect(page.contains("Fl -\(o)") || page.contains(" , -\(o)"), "docs/man/cairn.1 lacks --\(o): run scripts/manpage")
        }
    }
}
