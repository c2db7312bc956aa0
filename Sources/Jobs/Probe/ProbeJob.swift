import Config
import Core
import Foundation
import HTTP

/// Why a probe failed, as data (alerts and tests read it, never the message).
public enum ProbeFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request did not complete (connection refused, DNS, TLS, timeout).
    case request(code: ErrorCode, detail: String)
    /// The endpoint answered another status.
    case status(got: Int, expected: Int)
    /// The body lacks the expected text.
    case bodyMissing(String)

    public var description: String {
        switch self {
        case .request(_, let detail): return detail
        case .status(let got, let expected): return "answered HTTP \(got), expected \(expected)"
        case .bodyMissing(let s): return "the body does not contain \"\(s)\""
        }
    }
}

/// One health check: a request to the platform's endpoint, its latency, and
/// whether the answer is the expected one. A probe on the same host checks
/// the application, not the host: an outside check (a healthchecks ping
/// channel) still fires when the whole host is down.
public struct ProbeJob: Sendable {
    public let name: String
    public let spec: ProbeSpec

    public init(name: String, spec: ProbeSpec) { self.name = name; self.spec = spec }

    public func run() async throws -> JobOutcome {
        let timeout = spec.requestTimeout.inSeconds
        let client = HTTPClient(configuration: .init(connectTimeout: min(10, timeout), requestTimeout: timeout,
                                                     caBundle: spec.caFile, userAgent: "cairn-probe/\(CairnVersion.current)", maxIdleHandles: 0))
        let clock = ContinuousClock(), began = clock.now
        let response: HTTPResponse
        do {
            response = try await client.send(HTTPRequest(method: spec.method, url: spec.url), maxBodySize: 1 << 20)
        } catch {
            if error is CancellationError { throw error }
            let e = CairnError.wrap(error, .network, "probe \(name)")
            if e.code == .cancelled { throw e }
            throw CairnError(e.code, "probe \(name): \(spec.method) \(spec.url): \(e.message)",
                             cause: ProbeFailure.request(code: e.code, detail: e.message))
        }
        let d = clock.now - began
        let latency = d.inSeconds
        let ms = String(format: "%.0f ms", latency * 1000)
        guard response.status == spec.expectStatus else {
            let f = ProbeFailure.status(got: response.status, expected: spec.expectStatus)
            throw CairnError(.network, "probe \(name): \(spec.method) \(spec.url) \(f) after \(ms)", cause: f)
        }
        if let needle = spec.bodyContains, !String(decoding: response.body, as: UTF8.self).contains(needle) {
            let f = ProbeFailure.bodyMissing(needle)
            throw CairnError(.integrity, "probe \(name): \(spec.method) \(spec.url): \(f) (HTTP \(response.status) after \(ms))", cause: f)
        }
        return JobOutcome(bytes: Int64(response.body.count),
                          summary: "probe \(name): \(spec.method) \(spec.url) answered \(response.status) in \(ms)", latency: latency)
    }
}
