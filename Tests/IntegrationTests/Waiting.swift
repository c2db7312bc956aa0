import Foundation

/// How long a test waits for an event before it gives up. Tests wait for
/// events, never for time: `eventually` returns as soon as its condition
/// holds, so the limit matters only when the event never comes (a hang). It
/// is not a speed requirement, and the suite runs beside other suites on two
/// cores, so every limit is multiplied by `factor`: 4 by default,
/// `CAIRN_TEST_PATIENCE` to change it.
enum TestPatience {
    static let factor: Double = {
        if let s = ProcessInfo.processInfo.environment["CAIRN_TEST_PATIENCE"], let f = Double(s), f > 0 { return f }
        return 4
    }()
}

/// Polls `condition` every 100 ms until it holds, for at most `timeout`
/// seconds × `TestPatience.factor`.
func eventually(_ timeout: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout * TestPatience.factor)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}
