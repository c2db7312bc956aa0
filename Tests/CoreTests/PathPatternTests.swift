import Testing
@testable import Core

@Suite struct PathPatternTests {
    func m(_ pattern: String, _ path: String, dir: Bool = false) throws -> Bool {
        try PathPattern(pattern).matches(path, isDirectory: dir)
    }

    @Test func unanchoredPatternsMatchTheEndOfThePathAtAnyDepth() throws {
        #expect(try m("*.tmp", "a.tmp"))
        #expect(try m("*.tmp", "2024/05/u7/a.tmp"))
        #expect(try !m("*.tmp", "a.tmp.jpg"))
        #expect(try !m("*.tmp", "2024/a.tmpx"))
        #expect(try m("cache/*.jpg", "users/7/cache/x.jpg"))
        #expect(try m("cache/*.jpg", "cache/x.jpg"))
        #expect(try !m("cache/*.jpg", "users/7/mycache/x.jpg"), "only at a component boundary")
        #expect(try !m("cache/*.jpg", "cache/sub/x.jpg"), "* stays within one component")
        #expect(try m("Thumbs.db", "a/b/Thumbs.db"))
    }

    @Test func anchoredPatternsMatchFromTheTop() throws {
        #expect(try m("/tmp/*", "tmp/a"))
        #expect(try !m("/tmp/*", "x/tmp/a"))
        #expect(try m("/*.log", "error.log"))
        #expect(try !m("/*.log", "2024/error.log"))
    }

    @Test func globstarCrossesDirectories() throws {
        #expect(try m("/backups/**", "backups/a/b/c.sql"))
        #expect(try m("/a/**/z.txt", "a/z.txt"), "**/ also matches no directory")
        #expect(try m("/a/**/z.txt", "a/b/c/z.txt"))
        #expect(try !m("/a/**/z.txt", "a/b/c/xz.txt"))
        #expect(try m("**/secret", "secret"))
        #expect(try m("/**.bak", "x/y/z.bak"))
    }

    @Test func directoryPatternsMatchDirectoriesOnly() throws {
        #expect(try m(".thumbnails/", "u/7/.thumbnails", dir: true))
        #expect(try !m(".thumbnails/", "u/7/.thumbnails", dir: false))
        #expect(try m("/tmp/", "tmp", dir: true))
        #expect(try !m("/tmp/", "a/tmp", dir: true))
    }

    @Test func charactersSetsAndEscapes() throws {
        #expect(try m("file-?.txt", "file-7.txt"))
        #expect(try !m("file-?.txt", "file-77.txt"))
        #expect(try !m("a?b", "a/b"), "? never matches /")
        #expect(try m("[0-9][0-9].jpg", "2024/05.jpg"))
        #expect(try !m("[!0-9]*.jpg", "5x.jpg"))
        #expect(try m("[!0-9]*.jpg", "x5.jpg"))
        #expect(try m("\\*.txt", "*.txt"))
        #expect(try !m("\\*.txt", "a.txt"))
        #expect(try m("[]x]", "]"), "a leading ] is literal")
        #expect(try m("é?.png", "dir/éa.png"))
        #expect(try m("?.png", "ü.png"), "? is one character, not one byte")
    }

    @Test(arguments: ["", "/", "//", "a//b", "[abc", "x\\", "[z-a]"])
    func badPatternsAreConfigErrors(pattern: String) {
        #expect {
            _ = try PathPattern(pattern)
        } throws: { ($0 as? CairnError)?.code == .config && "\($0)".contains("exclude pattern") || "\($0)".contains("empty exclude") }
    }

    @Test func aFilterNamesThePatternThatMatched() throws {
        let f = try PathFilter(parsing: ["*.tmp", "cache/"])
        #expect(f.exclusion(of: "a/b.tmp", isDirectory: false)?.text == "*.tmp")
        #expect(f.exclusion(of: "a/cache", isDirectory: true)?.text == "cache/")
        #expect(f.exclusion(of: "a/cache", isDirectory: false) == nil)
        #expect(PathFilter().exclusion(of: "anything", isDirectory: false) == nil)
    }
}
