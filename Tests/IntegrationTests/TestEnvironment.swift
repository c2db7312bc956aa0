import Foundation
import Testing
import Core
import HTTP
@testable import ObjectStore

/// Endpoints of the services that scripts/test starts (scripts/services env).
/// Missing variables fail the test with a clear message: integration tests
/// never skip silently.
enum TestEnv {
    static func value(_ name: String) throws -> String {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
            throw CairnError(.config, "\(name) is not set: run the tests through scripts/test (it starts the services)")
        }
        return v
    }

    static var accessKey: String { get throws { try value("CAIRN_TEST_AWS_ACCESS_KEY_ID") } }
    static var secretKey: String { get throws { try value("CAIRN_TEST_AWS_SECRET_ACCESS_KEY") } }
    static var bucket: String { get throws { try value("CAIRN_TEST_BUCKET") } }
    static var motoEndpoint: String { get throws { try value("CAIRN_TEST_S3_ENDPOINT") } }
    static var proxyEndpoint: String { get throws { try value("CAIRN_TEST_S3_PROXY_ENDPOINT") } }

    static func credentials(secret: String? = nil) throws -> AWSCredentials {
        AWSCredentials(accessKeyId: try accessKey, secretAccessKey: try secret ?? secretKey)
    }

    /// An S3Store under a unique prefix, through the strict proxy by default.
    static func s3(prefix: String = uniquePrefix(), viaProxy: Bool = true, secret: String? = nil,
                   retry: RetryPolicy = RetryPolicy(maxAttempts: 5, baseDelay: 0.05, maxDelay: 0.5)) throws -> S3Store {
        let cfg = S3Configuration(bucket: try bucket, prefix: prefix, endpoint: viaProxy ? try proxyEndpoint : try motoEndpoint,
                                  region: "us-east-1", retry: retry)
        return S3Store(config: cfg, credentials: StaticCredentialsProvider(try credentials(secret: secret)))
    }

    static func uniquePrefix(_ tag: String = "t") -> String {
        "it/\(tag)-\(UUID().uuidString.prefix(8).lowercased())/"
    }
}

/// Client for the strict proxy's control API (/__proxy/...).
struct ProxyControl {
    let base: String
    let http = HTTPClient()

    init() throws { base = try TestEnv.proxyEndpoint }

    struct Fault: Encodable {
        var method: String? = nil
        var path_contains: String? = nil
        var query_contains: String? = nil
        var path_suffix: String? = nil
        var body_contains: String? = nil
        var action: String
        var status: Int? = nil
        var code: String? = nil
        var seconds: Double? = nil
        var count: Int = 1
    }

    func inject(_ f: Fault) async throws {
        let body = try JSONEncoder().encode(f)
        var h = HTTPHeaders(); h["Content-Type"] = "application/json"
        let r = try await http.send(HTTPRequest(method: "POST", url: base + "/__proxy/faults", headers: h, body: .data(body)))
        #expect(r.status == 200)
    }

    /// Lets the requests held by "hold" rules with this `path_contains` go on.
    func release(pathContaining scope: String) async throws {
        let q = scope.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? scope
        let r = try await http.send(HTTPRequest(method: "POST", url: base + "/__proxy/release?path_contains=" + q))
        #expect(r.status == 200)
    }

    struct LogEntry: Decodable {
        var method: String
        var path: String
        var query: String?
        var status: Int?
        var body_bytes: Int?
        var part_number: Int?
        var upload_id: String?
        var fault: String?
        /// The client was gone (killed) before the answer reached it; the
        /// request was carried out upstream all the same.
        var client_gone: Bool?
    }

    func log(pathContaining s: String) async throws -> [LogEntry] {
        let scope = s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s
        let r = try await http.send(HTTPRequest(method: "GET", url: base + "/__proxy/log?path_contains=" + scope))
        return try JSONDecoder().decode([LogEntry].self, from: r.body).filter { $0.path.contains(s) }
    }

    func violations(containing s: String? = nil) async throws -> [String] {
        let r = try await http.send(HTTPRequest(method: "GET", url: base + "/__proxy/violations"))
        let all = try JSONDecoder().decode([String].self, from: r.body)
        guard let s else { return all }
        return all.filter { $0.contains(s) }
    }
}

func testData(_ n: Int, seed: UInt64 = 42) -> Data {
    var x = seed &+ 0x9E3779B97F4A7C15
    var d = Data(count: n)
    d.withUnsafeMutableBytes { p in
        let b = p.bindMemory(to: UInt8.self)
        var i = 0
        while i < n {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            var v = x
            for _ in 0..<8 where i < n { b[i] = UInt8(truncatingIfNeeded: v); v >>= 8; i += 1 }
        }
    }
    return d
}
