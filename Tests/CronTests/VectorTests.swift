import Foundation
import Testing
import Cron

/// The cronsim vectors in Fixtures/vectors.json: every expected instant, in order.
@Suite struct VectorTests {
    struct Fixture: Decodable {
        let semantics: String
        let vectors: [Vector]
    }

    struct Vector: Decodable, CustomTestStringConvertible, Sendable {
        let id: String
        let expression: String
        let timezone: String
        let start: String
        let expected: [String]
        let note: String?
        var testDescription: String { id }
    }

    static func load() throws -> [Vector] {
        let url = try #require(Bundle.module.url(forResource: "vectors", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url)).vectors
    }

    static func parseInstant(_ text: String) throws -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return try #require(formatter.date(from: text), "bad timestamp \(text)")
    }

    /// The offset written in a timestamp such as 2025-03-09T03:00:00-04:00, in seconds.
    static func writtenOffset(_ text: String) -> Int {
        if text.hasSuffix("Z") { return 0 }
        let tail = text.suffix(6)
        let sign = tail.first == "-" ? -1 : 1
        let parts = tail.dropFirst().split(separator: ":").compactMap { Int($0) }
        return sign * (parts[0] * 3600 + parts[1] * 60)
    }

    @Test func fixtureHasFortyVectors() throws {
        #expect(try Self.load().count == 40)
    }

    @Test(arguments: try VectorTests.load())
    func nextInstantsMatchCronsim(_ vector: Vector) throws {
        let expression = try CronExpression(vector.expression)
        let zone = try #require(TimeZone(identifier: vector.timezone))
        let start = try Self.parseInstant(vector.start)
        let expected = try vector.expected.map(Self.parseInstant)
        let got = expression.nextInstants(after: start, in: zone, count: expected.count)
        #expect(got == expected, "\(vector.id): \(vector.note ?? "")")

        // One call at a time, and each instant is a match (and the fixture's own offsets agree
        // with the zone database).
        var cursor = start
        for (instant, text) in zip(expected, vector.expected) {
            #expect(expression.next(after: cursor, in: zone) == instant, "\(vector.id) after \(cursor)")
            #expect(expression.matches(instant, in: zone), "\(vector.id): \(text) should match")
            #expect(!expression.matches(instant.addingTimeInterval(-1), in: zone))
            #expect(zone.secondsFromGMT(for: instant) == Self.writtenOffset(text), "\(vector.id): offset of \(text)")
            cursor = instant
        }
    }
}
