import Testing
@testable import Core

@Suite struct PathTextTests {
    @Test func printableNamesAreUnchanged() {
        #expect(PathText.escape("2024/05/a b.jpg") == "2024/05/a b.jpg")
        #expect(PathText.escape("odd/café-e\u{301}/日本.png") == "odd/café-e\u{301}/日本.png")
        #expect(PathText.escape("100%/x=y&z?.txt") == "100%/x=y&z?.txt")
    }

    @Test func lineBreaksAndTerminalControlsAreEscaped() {
        #expect(PathText.escape("a\nb") == "a\\nb")
        #expect(PathText.escape("a\r\nmigration media: 0 failed") == "a\\r\\nmigration media: 0 failed")
        #expect(PathText.escape("\u{1B}[31mred") == "\\e[31mred")
        #expect(PathText.escape("tab\there") == "tab\\there")
        #expect(PathText.escape("nul\u{0}bel\u{7}del\u{7F}") == "nul\\x00bel\\x07del\\x7F")
        #expect(PathText.escape("c1\u{9B}31m") == "c1\\u{9B}31m")   // CSI as a C1 control
        #expect(!PathText.escape("x\n\r\u{1B}\u{7F}\u{85}").contains { $0.isNewline || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } == true })
    }

    @Test func backslashIsEscapedSoEscapesCannotBeForged() {
        #expect(PathText.escape("a\\nb") == "a\\\\nb")
        #expect(PathText.escape("a\\nb") != PathText.escape("a\nb"))
        #expect(PathText.escape([0x5C, 0x78, 0x46, 0x46]) != PathText.escape([0xFF]))
    }

    @Test func invalidUTF8BytesAreShownAsHex() {
        #expect(PathText.escape([0x62, 0x61, 0x64, 0x2D, 0xFF, 0x2E, 0x6A, 0x70, 0x67]) == "bad-\\xFF.jpg")
        #expect(PathText.escape([0xC3, 0x28]) == "\\xC3(")                 // a lead byte without its continuation
        #expect(PathText.escape([0xC0, 0x80]) == "\\xC0\\x80")              // overlong NUL
        #expect(PathText.escape([0xE6, 0x97]) == "\\xE6\\x97")              // truncated at the end
        #expect(PathText.escape([0xED, 0xA0, 0x80]) == "\\xED\\xA0\\x80")   // a UTF-16 surrogate
        #expect(PathText.escape([0xC3, 0xA9, 0xFE]) == "é\\xFE")
        #expect(PathText.escape(Array("日本".utf8)) == "日本")
    }
}
