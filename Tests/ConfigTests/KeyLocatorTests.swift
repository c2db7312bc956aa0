import Testing
@testable import Config

@Suite struct KeyLocatorTests {
    let text = """
    # comment with key = value
    state_dir = "/var/lib/cairn"
    note = \"\"\"
    fake = "not a key"
    [not.a.table]
    \"\"\"

    [storage.primary]
    url = "s3://b/p"   # trailing = comment
      object_lock = { mode = "governance", days = 30 }
    nested.dotted . key = 1

    [keys.files]
    "2026-11" = "/etc/k"
    'lit.eral' = "x"
    checks = [
      "a = b",
      { inner = 1 },
    ]
    after = true

    [[things]]
    name = "one"
    [[things]]
    name = "two"
    """

    @Test func findsKeysUnderTheirTables() {
        let l = TOMLKeyLocator(text: text)
        #expect(l.position(of: ["state_dir"]) == .init(line: 2, column: 1))
        #expect(l.position(of: ["storage", "primary"])?.line == 8)
        #expect(l.position(of: ["storage", "primary", "url"]) == .init(line: 9, column: 1))
        #expect(l.position(of: ["storage", "primary", "object_lock"]) == .init(line: 10, column: 3))
        #expect(l.position(of: ["storage", "primary", "object_lock", "days"]) == .init(line: 10, column: 40))
        #expect(l.position(of: ["storage", "primary", "nested", "dotted", "key"])?.line == 11)
        #expect(l.position(of: ["keys", "files", "2026-11"])?.line == 14)
        #expect(l.position(of: ["keys", "files", "lit.eral"])?.line == 15)
        #expect(l.position(of: ["keys", "files", "after"])?.line == 20)
        #expect(l.position(of: ["things", "name"])?.line == 23)
    }

    @Test func ignoresTextInsideStringsArraysAndComments() {
        let l = TOMLKeyLocator(text: text)
        #expect(l.position(of: ["fake"]) == nil)
        #expect(l.position(of: ["not", "a", "table"]) == nil)
        #expect(l.position(of: ["keys", "files", "a"]) == nil)
        #expect(l.position(of: ["key"]) == nil)
    }

    @Test func nearestLineFallsBackToTheEnclosingTable() {
        let l = TOMLKeyLocator(text: text)
        #expect(l.nearestLine(of: ["storage", "primary", "region"]) == 8)
        #expect(l.nearestLine(of: ["nowhere"]) == nil)
    }
}
