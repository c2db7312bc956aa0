import Foundation
import Testing
import Core
import Crypto
import HTTP
@testable import ObjectStore

// MARK: - Fixture loading

enum SigV4Fixtures {
    static let root: URL = {
        guard let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("test resources missing: Fixtures")
        }
        return fixtures.appendingPathComponent("sigv4")
    }()

    static func text(_ relative: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }

    /// Every directory of the generic AWS suite (one `.req` per directory).
    static let genericCases: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/\($0).req").path) }.sorted()
    }()

    /// The generic suite's date, 20150830T123600Z.
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)
    /// The S3 examples' date, 20130524T000000Z.
    static let s3Date = Date(timeIntervalSince1970: 1_369_353_600)

    static let suiteSigner = SigV4Signer(
        credentials: AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    static let s3Signer = SigV4Signer(
        credentials: AWSCredentials(accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "s3")
}

/// A raw HTTP request as the suite writes it: request line, `Name:value`
/// lines, blank line, body.
struct RawRequest {
    var method: String
    var target: String
    var headers: HTTPHeaders
    var body: Data

    init(_ text: String) {
        var lines = text.components(separatedBy: "\n")
        let requestLine = lines.removeFirst()
        let parts = requestLine.split(separator: " ")
        method = String(parts[0])
        // The target is everything between the method and " HTTP/1.1".
        let afterMethod = requestLine.dropFirst(parts[0].count + 1)
        target = afterMethod.range(of: " HTTP/").map { String(afterMethod[..<$0.lowerBound]) } ?? String(afterMethod)
        headers = HTTPHeaders()
        var bodyLines: [String] = []
        var inBody = false
        for line in lines {
            if inBody { bodyLines.append(line); continue }
            if line.isEmpty { inBody = true; continue }
            let colon = line.firstIndex(of: ":")!
            headers.add(String(line[..<colon]), String(line[line.index(after: colon)...]))
        }
        body = Data(bodyLines.joined(separator: "\n").utf8)
    }
}

// MARK: - The generic AWS SigV4 test suite

@Suite struct SigV4SuiteTests {
    @Test func suiteHasEveryCase() {
        #expect(SigV4Fixtures.genericCases == [
            "get-header-key-duplicate", "get-header-value-trim", "get-relative-relative", "get-slash-dot-slash",
            "get-unreserved", "get-utf8", "get-vanilla", "get-vanilla-query-order-key-case",
            "get-vanilla-query-order-value", "get-vanilla-utf8-query", "post-sts-header-after", "post-vanilla",
            "post-vanilla-query", "post-x-www-form-urlencoded",
        ])
    }

    @Test(arguments: SigV4Fixtures.genericCases)
    func matchesPublishedCanonicalRequestStringToSignAndAuthorization(_ name: String) throws {
        let raw = RawRequest(try SigV4Fixtures.text("\(name)/\(name).req"))
        var expectedCreq = try SigV4Fixtures.text("\(name)/\(name).creq")
        let expectedSts = try SigV4Fixtures.text("\(name)/\(name).sts")
        let expectedAuthz = try SigV4Fixtures.text("\(name)/\(name).authz")
        if name == "post-x-www-form-urlencoded" {
            // Known upstream defect (see README.md): the published creq lists
            // content-length, but the published sts/authz were computed
            // without it. Cairn never signs Content-Length, so compare with
            // the creq that the published signature belongs to.
            expectedCreq = expectedCreq
                .replacingOccurrences(of: "content-length:13\n", with: "")
                .replacingOccurrences(of: "content-length;", with: "")
        }

        let host = try #require(raw.headers["Host"])
        var request = HTTPRequest(method: raw.method, url: "https://\(host)\(raw.target)", headers: raw.headers)
        let signed = SigV4Fixtures.suiteSigner.sign(&request, payloadSHA256: Digest.sha256(raw.body).hexString,
                                                    date: SigV4Fixtures.suiteDate)

        #expect(signed.canonicalRequest == expectedCreq)
        #expect(signed.stringToSign == expectedSts)
        #expect(signed.authorization == expectedAuthz)
        #expect(request.headers["Authorization"] == expectedAuthz)
        #expect(request.headers.values("Host").count == 1)
        #expect(request.headers["X-Amz-Date"] == "20150830T123600Z")
        // Not s3: no payload header is added.
        #expect(request.headers["X-Amz-Content-SHA256"] == nil)
    }

    @Test func publicCanonicalRequestMatchesSuiteWithoutSigning() throws {
        let raw = RawRequest(try SigV4Fixtures.text("get-vanilla-query-order-key-case/get-vanilla-query-order-key-case.req"))
        let creq = SigV4Fixtures.suiteSigner.canonicalRequest(
            method: raw.method, url: "https://example.amazonaws.com\(raw.target)", headers: raw.headers,
            payloadSHA256: SigV4Signer.emptyPayloadSHA256)
        #expect(creq == (try SigV4Fixtures.text("get-vanilla-query-order-key-case/get-vanilla-query-order-key-case.creq")))
        let sts = SigV4Fixtures.suiteSigner.stringToSign(canonicalRequest: creq, date: SigV4Fixtures.suiteDate)
        #expect(sts == (try SigV4Fixtures.text("get-vanilla-query-order-key-case/get-vanilla-query-order-key-case.sts")))
    }

    @Test func sessionTokenIsAddedAndSigned() throws {
        // post-sts-header-after adds the token after signing; S3 wants it
        // signed, so Cairn always signs it: same request, different result.
        let token = "AQoDYXdzEPT//////////wEXAMPLEtoken+/="
        var creds = SigV4Fixtures.suiteSigner.credentials
        creds.sessionToken = token
        let signer = SigV4Signer(credentials: creds, region: "us-east-1", service: "service")
        let raw = RawRequest(try SigV4Fixtures.text("post-sts-header-after/post-sts-header-after.req"))
        var request = HTTPRequest(method: raw.method, url: "https://example.amazonaws.com/", headers: raw.headers)
        let signed = signer.sign(&request, payloadSHA256: SigV4Signer.emptyPayloadSHA256, date: SigV4Fixtures.suiteDate)
        #expect(request.headers["X-Amz-Security-Token"] == token)
        #expect(signed.signedHeaders == "host;x-amz-date;x-amz-security-token")
        #expect(signed.canonicalRequest.contains("\nx-amz-security-token:\(token)\n"))
        #expect(signed.authorization != (try SigV4Fixtures.text("post-sts-header-after/post-sts-header-after.authz")))
    }
}

// MARK: - S3 examples (Amazon S3 API Reference)

@Suite struct SigV4S3ExampleTests {
    /// Builds the request URL of an S3 example: the examples write the target
    /// unencoded (`test$file.text`, `?lifecycle`); Cairn encodes keys with
    /// `AWSURI.objectPath`.
    static func url(host: String, target: String) -> String {
        let q = target.firstIndex(of: "?")
        var path = String(target[..<(q ?? target.endIndex)])
        if path.hasPrefix("/") { path.removeFirst() }
        let query = q.map { String(target[$0...]) } ?? ""
        return "https://\(host)\(AWSURI.objectPath(bucket: nil, key: path))\(query)"
    }

    @Test(arguments: ["s3-get-object-range", "s3-put-object", "s3-get-bucket-lifecycle", "s3-list-objects"])
    func matchesPublishedExample(_ name: String) throws {
        let raw = RawRequest(try SigV4Fixtures.text("s3/\(name).req"))
        let payload = try #require(raw.headers["x-amz-content-sha256"]).trimmingCharacters(in: .whitespaces)
        // The published payload hash is the hash of the published body.
        #expect(Digest.sha256(raw.body).hexString == payload)

        let host = try #require(raw.headers["Host"])
        var request = HTTPRequest(method: raw.method, url: Self.url(host: host, target: raw.target), headers: raw.headers)
        let signed = SigV4Fixtures.s3Signer.sign(&request, payloadSHA256: payload, date: SigV4Fixtures.s3Date)

        #expect(signed.canonicalRequest == (try SigV4Fixtures.text("s3/\(name).creq")))
        #expect(signed.stringToSign == (try SigV4Fixtures.text("s3/\(name).sts")))
        // S3's documentation separates the Authorization fields with ","
        // where the generic suite (and Cairn) use ", "; both are accepted.
        #expect(signed.authorization.replacingOccurrences(of: ", ", with: ",") == (try SigV4Fixtures.text("s3/\(name).authz")))
        #expect(request.headers["X-Amz-Content-SHA256"] == payload)
        #expect(request.headers.values("x-amz-content-sha256").count == 1)
    }

    @Test func streamingSeedAndChunkSignatures() throws {
        // The .req of this example is prose; the headers are those of its creq.
        let creq = try SigV4Fixtures.text("s3/s3-streaming-seed.creq")
        let lines = creq.components(separatedBy: "\n")
        var headers = HTTPHeaders()
        for line in lines[3...] {
            if line.isEmpty { break }
            let colon = line.firstIndex(of: ":")!
            headers.add(String(line[..<colon]), String(line[line.index(after: colon)...]))
        }
        #expect(headers["content-length"] == "66824")
        var signer = SigV4Fixtures.s3Signer
        signer.unsignedHeaders.remove("content-length") // this example signs it
        var request = HTTPRequest(method: "PUT", url: "https://s3.amazonaws.com/examplebucket/chunkObject.txt", headers: headers)
        let seed = signer.sign(&request, payloadSHA256: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", date: SigV4Fixtures.s3Date)
        #expect(seed.canonicalRequest == creq)
        #expect(seed.stringToSign == (try SigV4Fixtures.text("s3/s3-streaming-seed.sts")))
        #expect(seed.authorization.replacingOccurrences(of: ", ", with: ",") == (try SigV4Fixtures.text("s3/s3-streaming-seed.authz")))
        #expect(seed.signature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")

        let chunkText = try SigV4Fixtures.text("s3/s3-streaming-chunks.txt")
        let expected = chunkText.components(separatedBy: "chunk-signature=").dropFirst().map { String($0.prefix(64)) }
        #expect(expected.count == 3)
        var previous = seed.signature
        var got: [String] = []
        for size in [65536, 1024, 0] {
            previous = signer.chunkSignature(previousSignature: previous, chunk: Data(repeating: UInt8(ascii: "a"), count: size),
                                             date: SigV4Fixtures.s3Date)
            got.append(previous)
        }
        #expect(got == expected)
    }
}

// MARK: - Presigned URLs

@Suite struct SigV4PresignTests {
    @Test func reproducesAWSDocumentedPresignedGET() {
        // "Example: presigned URL" in the S3 SigV4 query-string authentication docs.
        let (url, details) = SigV4Fixtures.s3Signer.presignWithDetails(
            method: "GET", url: "https://examplebucket.s3.amazonaws.com/test.txt", expires: 86400, date: SigV4Fixtures.s3Date)
        #expect(details.canonicalRequest == """
            GET
            /test.txt
            X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host
            host:examplebucket.s3.amazonaws.com

            host
            UNSIGNED-PAYLOAD
            """)
        #expect(details.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        #expect(url == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        #expect(SigV4Fixtures.s3Signer.presign(method: "GET", url: "https://examplebucket.s3.amazonaws.com/test.txt",
                                               expires: 86400, date: SigV4Fixtures.s3Date) == url)
    }

    @Test func presignKeepsExistingQuerySignsTokenAndExtraHeaders() {
        var creds = SigV4Fixtures.s3Signer.credentials
        creds.sessionToken = "tok/en+=="
        let signer = SigV4Signer(credentials: creds, region: "eu-west-1", service: "s3")
        let (url, details) = signer.presignWithDetails(
            method: "PUT", url: "http://127.0.0.1:9000/bkt/a%20b?uploadId=x%2By&partNumber=2", expires: 600,
            date: SigV4Fixtures.s3Date, headers: ["Content-Type": "application/octet-stream"])
        #expect(url.hasPrefix("http://127.0.0.1:9000/bkt/a%20b?"))
        #expect(url.contains("&partNumber=2&"))
        #expect(url.contains("&uploadId=x%2By"))
        #expect(url.contains("X-Amz-Security-Token=tok%2Fen%2B%3D%3D"))
        #expect(url.contains("X-Amz-SignedHeaders=content-type%3Bhost"))
        #expect(url.hasSuffix("&X-Amz-Signature=\(details.signature)"))
        #expect(details.canonicalRequest.contains("\nhost:127.0.0.1:9000\n"))
        #expect(details.canonicalRequest.contains("X-Amz-Security-Token=tok%2Fen%2B%3D%3D"))
        #expect(details.canonicalRequest.contains("%2Feu-west-1%2Fs3%2Faws4_request"))
        #expect(details.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
        #expect(details.signature.count == 64)
    }

    @Test func presignForOtherServicesUsesEmptyPayloadHash() {
        let (_, details) = SigV4Fixtures.suiteSigner.presignWithDetails(
            method: "GET", url: "https://example.amazonaws.com/", expires: 60, date: SigV4Fixtures.suiteDate)
        #expect(details.canonicalRequest.hasSuffix("\n" + SigV4Signer.emptyPayloadSHA256))
    }
}

// MARK: - Encoding, URL parsing, header rules

@Suite struct AWSURITests {
    @Test func encodeKeepsOnlyUnreservedAndOptionallySlash() {
        #expect(AWSURI.encode("a b+c%#?é", encodeSlash: false) == "a%20b%2Bc%25%23%3F%C3%A9")
        #expect(AWSURI.encode("dir/sub/f", encodeSlash: false) == "dir/sub/f")
        #expect(AWSURI.encode("dir/sub/f", encodeSlash: true) == "dir%2Fsub%2Ff")
        #expect(AWSURI.encode("-._~AZaz09", encodeSlash: true) == "-._~AZaz09")
        #expect(AWSURI.encode("$&'()*,;=:@!", encodeSlash: true) == "%24%26%27%28%29%2A%2C%3B%3D%3A%40%21")
        #expect(AWSURI.encode("日本", encodeSlash: true) == "%E6%97%A5%E6%9C%AC")
        #expect(AWSURI.encode("😀", encodeSlash: true) == "%F0%9F%98%80")
    }

    @Test(arguments: ["a b+c%#?é", "x//y", "../up/./here", "日本語/ファイル.txt", "%41%", "tab\tnl\n", "~-._", "", "100% + 50%"])
    func decodeInvertsEncode(_ key: String) {
        #expect(AWSURI.decode(AWSURI.encode(key, encodeSlash: false)) == key)
        #expect(AWSURI.decode(AWSURI.encode(key, encodeSlash: true)) == key)
    }

    @Test func decodeLeavesPlusAndBrokenEscapes() {
        #expect(AWSURI.decode("a+b") == "a+b")
        #expect(AWSURI.decode("%2f%2F") == "//")
        #expect(AWSURI.decode("100%") == "100%")
        #expect(AWSURI.decode("%zz%4") == "%zz%4")
    }

    @Test func objectPathPathStyleAndVirtualHosted() {
        #expect(AWSURI.objectPath(bucket: "bkt", key: "dir/a b+c%#?é") == "/bkt/dir/a%20b%2Bc%25%23%3F%C3%A9")
        #expect(AWSURI.objectPath(bucket: nil, key: "dir/a b+c%#?é") == "/dir/a%20b%2Bc%25%23%3F%C3%A9")
        #expect(AWSURI.objectPath(bucket: "bkt", key: "a//b/./c") == "/bkt/a//b/./c")
        #expect(AWSURI.objectPath(bucket: "bkt", key: "") == "/bkt")
        #expect(AWSURI.objectPath(bucket: nil, key: "") == "/")
        #expect(AWSURI.objectPath(bucket: nil, key: "test$file.text") == "/test%24file.text")
    }

    @Test func canonicalQuery() {
        #expect(AWSURI.canonicalQuery("") == "")
        #expect(AWSURI.canonicalQuery("b=2&a=1&a=0") == "a=0&a=1&b=2")
        #expect(AWSURI.canonicalQuery("uploads") == "uploads=")
        #expect(AWSURI.canonicalQuery("uploads=") == "uploads=")
        #expect(AWSURI.canonicalQuery("prefix=a%2fb&delimiter=/") == "delimiter=%2F&prefix=a%2Fb")
        #expect(AWSURI.canonicalQuery("k=a+b") == "k=a%2Bb")
        #expect(AWSURI.canonicalQuery("k=a%20b&k2=x=y") == "k=a%20b&k2=x%3Dy")
        #expect(AWSURI.canonicalQuery("a&&b=1&") == "a=&b=1")
        // Byte order: upper case sorts before lower case, `_` between them.
        #expect(AWSURI.canonicalQuery("b=1&B=1&_=1&a=1") == "B=1&_=1&a=1&b=1")
        #expect(AWSURI.canonicalQuery("%E1%88%B4=bar&ሴ=baz") == "%E1%88%B4=bar&%E1%88%B4=baz")
    }

    @Test func rawURLParsingWithoutNormalisation() {
        let u = RawURL("http://127.0.0.1:9000/bkt/a%2Fb//./c?x=1&y")
        #expect(u.scheme == "http")
        #expect(u.host == "127.0.0.1")
        #expect(u.port == 9000)
        #expect(u.path == "/bkt/a%2Fb//./c")
        #expect(u.query == "x=1&y")
        #expect(u.hostHeader == "127.0.0.1:9000")
        #expect(RawURL("https://h.example:443").hostHeader == "h.example")
        #expect(RawURL("https://h.example:443").path == "/")
        #expect(RawURL("http://h.example:80/?").query == "")
        #expect(RawURL("http://h.example:80/").hostHeader == "h.example")
        #expect(RawURL("https://h.example:80/").hostHeader == "h.example:80")
        let v6 = RawURL("http://[::1]:8080/p")
        #expect(v6.host == "[::1]")
        #expect(v6.port == 8080)
        #expect(v6.hostHeader == "[::1]:8080")
        #expect(RawURL("https://user@h.example/k").host == "h.example")
    }

    @Test func s3CanonicalURIIsTheEncodedPathAsSentOtherServicesNormalise() {
        let path = AWSURI.objectPath(bucket: "bkt", key: "a//b/./c/../é d")
        let url = "https://s3.example.com\(path)"
        let s3 = SigV4Fixtures.s3Signer.canonicalRequest(method: "GET", url: url, headers: [:], payloadSHA256: "UNSIGNED-PAYLOAD")
        #expect(s3.components(separatedBy: "\n")[1] == "/bkt/a//b/./c/../%C3%A9%20d")
        let other = SigV4Fixtures.suiteSigner.canonicalRequest(method: "GET", url: url, headers: [:], payloadSHA256: "")
        #expect(other.components(separatedBy: "\n")[1] == "/bkt/a/b/%25C3%25A9%2520d")
    }

    @Test func pathNormalisation() {
        #expect(SigV4Signer.normalizePath("") == "/")
        #expect(SigV4Signer.normalizePath("/") == "/")
        #expect(SigV4Signer.normalizePath("/a/b/../c/./d") == "/a/c/d")
        #expect(SigV4Signer.normalizePath("/a//b/") == "/a/b/")
        #expect(SigV4Signer.normalizePath("/../..") == "/")
        #expect(SigV4Signer.normalizePath("/a/.") == "/a/")
    }
}

@Suite struct SigV4HeaderRuleTests {
    @Test func hostAddedOnlyWhenAbsentWithNonDefaultPort() {
        var r1 = HTTPRequest(method: "GET", url: "http://127.0.0.1:9000/bkt/k")
        SigV4Fixtures.s3Signer.sign(&r1, payloadSHA256: SigV4Signer.emptyPayloadSHA256, date: SigV4Fixtures.s3Date)
        #expect(r1.headers["Host"] == "127.0.0.1:9000")

        var r2 = HTTPRequest(method: "GET", url: "https://bkt.s3.amazonaws.com:443/k")
        SigV4Fixtures.s3Signer.sign(&r2, payloadSHA256: SigV4Signer.emptyPayloadSHA256, date: SigV4Fixtures.s3Date)
        #expect(r2.headers["Host"] == "bkt.s3.amazonaws.com")

        var r3 = HTTPRequest(method: "GET", url: "http://127.0.0.1:9000/k", headers: ["host": "proxy.example"])
        let s = SigV4Fixtures.s3Signer.sign(&r3, payloadSHA256: SigV4Signer.emptyPayloadSHA256, date: SigV4Fixtures.s3Date)
        #expect(r3.headers.values("Host") == ["proxy.example"])
        #expect(s.canonicalRequest.contains("\nhost:proxy.example\n"))
    }

    @Test func expectUserAgentAndContentLengthAreNotSigned() {
        var r = HTTPRequest(method: "PUT", url: "https://s3.example.com/bkt/k", headers: [
            "Expect": "", "User-Agent": "cairn/1", "Content-Length": "5", "Content-MD5": "abc==", "X-Amz-Meta-Job": " nightly  db ",
        ])
        let s = SigV4Fixtures.s3Signer.sign(&r, payloadSHA256: "UNSIGNED-PAYLOAD", date: SigV4Fixtures.s3Date)
        #expect(s.signedHeaders == "content-md5;host;x-amz-content-sha256;x-amz-date;x-amz-meta-job")
        #expect(s.canonicalRequest.contains("\nx-amz-meta-job:nightly db\n"))
        #expect(s.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
        #expect(r.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD")
        #expect(r.headers["Expect"] == "")
    }

    @Test func resigningReplacesPreviousAuthorization() {
        var r = HTTPRequest(method: "GET", url: "https://s3.example.com/bkt/k")
        let first = SigV4Fixtures.s3Signer.sign(&r, payloadSHA256: SigV4Signer.emptyPayloadSHA256, date: SigV4Fixtures.s3Date)
        let second = SigV4Fixtures.s3Signer.sign(&r, payloadSHA256: SigV4Signer.emptyPayloadSHA256,
                                                 date: SigV4Fixtures.s3Date.addingTimeInterval(60))
        #expect(r.headers.values("Authorization") == [second.authorization])
        #expect(first.signature != second.signature)
        #expect(!second.signedHeaders.contains("authorization"))
    }

    @Test func amzDateFormatting() {
        #expect(SigV4Signer.amzDate(SigV4Fixtures.suiteDate) == "20150830T123600Z")
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: 1_709_251_199.9)) == "20240229T235959Z")
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: 0)) == "19700101T000000Z")
    }

    @Test func credentialsNeverPrintSecrets() {
        let c = AWSCredentials(accessKeyId: "AKIDVISIBLE", secretAccessKey: "SUPERSECRETKEY", sessionToken: "SESSIONTOKENVALUE",
                               expiration: Date(timeIntervalSince1970: 0))
        var dumped = ""
        dump(c, to: &dumped)
        for text in [c.description, String(describing: c), String(reflecting: c), "\(c)", dumped] {
            #expect(text.contains("AKIDVISIBLE"))
            #expect(!text.contains("SUPERSECRETKEY"))
            #expect(!text.contains("SESSIONTOKENVALUE"))
        }
    }
}

@Suite struct PayloadChecksumTests {
    @Test func theModeFollowsTheEndpoint() {
        #expect(PayloadChecksum.automatic(endpoint: nil) == .crc32c)
        #expect(PayloadChecksum.automatic(endpoint: "https://s3.eu-west-1.amazonaws.com") == .crc32c)
        #expect(PayloadChecksum.automatic(endpoint: "https://acct.r2.cloudflarestorage.com") == .crc32c)
        #expect(PayloadChecksum.automatic(endpoint: "HTTPS://minio.example:9000/") == .crc32c)
        #expect(PayloadChecksum.automatic(endpoint: "http://127.0.0.1:9000") == .sha256)
        #expect(PayloadChecksum.automatic(endpoint: "https://s3.us-west-004.backblazeb2.com") == .md5)
        #expect(PayloadChecksum.automatic(endpoint: "https://backblazeb2.com.example.org") == .crc32c)
    }

    @Test func crc32cMatchesTheCheckValue() {
        var c = CRC32C()
        c.update(Data("123456789".utf8))
        #expect(c.value == 0xE306_9283)
        #expect(c.base64 == "4waSgw==")
    }

    @Test func crc32cInPiecesEqualsCRC32CInOne() {
        var bytes = [UInt8](repeating: 0, count: 200_003)
        var x: UInt32 = 12345
        for i in bytes.indices { x = x &* 1_103_515_245 &+ 12345; bytes[i] = UInt8(truncatingIfNeeded: x >> 16) }
        let data = Data(bytes)
        var whole = CRC32C(); whole.update(data)
        var parts = CRC32C(); parts.update(data.prefix(70_001)); parts.update(data.dropFirst(70_001))
        // A bytewise reference (the table form) over the same bytes.
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 { var c = UInt32(i); for _ in 0..<8 { c = (c >> 1) ^ (0x82F6_3B78 & (0 &- (c & 1))) }; table[i] = c }
        var ref: UInt32 = 0xFFFF_FFFF
        for b in bytes { ref = table[Int((ref ^ UInt32(b)) & 0xFF)] ^ (ref >> 8) }
        #expect(whole.value == ~ref)
        #expect(parts.value == whole.value)
    }

    @Test func theStorageURLTakesAChecksumParameter() throws {
        let c = try StorageLocation.s3Configuration("s3://b/p?endpoint=https://x.example&checksum=md5", env: [:])
        #expect(c.effectivePayloadChecksum == .md5)
        #expect(throws: CairnError.self) { try StorageLocation.s3Configuration("s3://b/p?checksum=crc64", env: [:]) }
    }
}
