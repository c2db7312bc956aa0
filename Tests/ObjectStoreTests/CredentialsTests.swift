import Foundation
import Testing
import Core
import HTTP
@testable import ObjectStore

// MARK: - Helpers

/// A temporary directory removed when the value is released.
final class TempDir: @unchecked Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-creds-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let p = (path as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The fake instance metadata service (Fixtures/imds_server.py), a real
/// HTTP server on 127.0.0.1. It exits when its stdin closes.
final class IMDSServer: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    let port: Int
    private var stopped = false

    init(_ arguments: [String] = []) throws {
        guard let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            throw CairnError(.internal, "test resources missing: Fixtures")
        }
        let script = fixtures.appendingPathComponent("imds_server.py").path
        let out = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + arguments
        process.standardOutput = out
        process.standardInput = stdin
        try process.run()
        var line = Data()
        while true {
            let b = out.fileHandleForReading.readData(ofLength: 1)
            if b.isEmpty || b == Data("\n".utf8) { break }
            line.append(b)
        }
        guard let p = Int(String(decoding: line, as: UTF8.self)) else { throw CairnError(.internal, "imds server did not start") }
        port = p
    }

    /// Starts a server off the cooperative pool (launching python and
    /// reading its port block a thread; the pool has only two).
    static func start(_ arguments: [String] = []) async throws -> IMDSServer {
        try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async {
                do { cont.resume(returning: try IMDSServer(arguments)) } catch { cont.resume(throwing: error) }
            }
        }
    }

    /// The endpoint of a server that was started and stopped: nothing listens there.
    static func closedEndpoint() async throws -> String {
        let server = try await start()
        await server.stopAndWait()
        return server.endpoint
    }

    var endpoint: String { "http://127.0.0.1:\(port)" }

    struct Counts: Decodable, Equatable {
        var token: Int
        var list: Int
        var creds: Int
        var unauthorized: Int
        var other: Int
        var last_ttl: Int?
    }

    func counts() async throws -> Counts {
        let r = try await HTTPClient().send(HTTPRequest(method: "GET", url: endpoint + "/__count"))
        #expect(r.status == 200)
        return try JSONDecoder().decode(Counts.self, from: r.body)
    }

    /// Ends the server without waiting for it to exit.
    func stop() {
        guard !stopped else { return }
        stopped = true
        try? stdin.fileHandleForWriting.close()
        process.terminate()
    }

    /// Ends the server and waits (on a dispatch thread) until it has exited.
    func stopAndWait() async {
        stop()
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { self.process.waitUntilExit(); cont.resume() }
        }
    }

    deinit { stop() }
}

/// A provider that counts its calls and fails or succeeds as told.
actor CountingProvider: CredentialsProvider {
    nonisolated let providerName: String
    let result: AWSCredentials?
    private(set) var calls = 0
    init(_ name: String, _ result: AWSCredentials?) { self.providerName = name; self.result = result }
    func credentials() async throws -> AWSCredentials {
        calls += 1
        guard let result else { throw CairnError(.storageAuth, "\(providerName) has nothing") }
        return result
    }
}

func expectCairnError(_ code: ErrorCode? = nil, _ body: () async throws -> Void) async -> CairnError? {
    do {
        try await body()
        Issue.record("expected an error")
        return nil
    } catch let e as CairnError {
        if let code { #expect(e.code == code, "\(e)") }
        return e
    } catch {
        Issue.record("unexpected error type: \(error)")
        return nil
    }
}

// MARK: - Environment

@Suite struct EnvironmentCredentialsTests {
    @Test func readsKeysAndSessionToken() async throws {
        let p = EnvironmentCredentialsProvider(environment: [
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token",
        ])
        #expect(try await p.credentials() == AWSCredentials(accessKeyId: "AKIDENV", secretAccessKey: "env-secret", sessionToken: "env-token"))
        let noToken = EnvironmentCredentialsProvider(environment: ["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": ""])
        #expect(try await noToken.credentials().sessionToken == nil)
    }

    @Test func missingOrPartialKeysFailWithoutShowingSecrets() async {
        let e1 = await expectCairnError(.storageAuth) { _ = try await EnvironmentCredentialsProvider(environment: [:]).credentials() }
        #expect(e1?.message.contains("AWS_ACCESS_KEY_ID") == true)
        let e2 = await expectCairnError(.storageAuth) {
            _ = try await EnvironmentCredentialsProvider(environment: ["AWS_SECRET_ACCESS_KEY": "TOPSECRET"]).credentials()
        }
        #expect(e2?.message.contains("AWS_ACCESS_KEY_ID is not") == true)
        #expect(e2?.description.contains("TOPSECRET") == false)
        let e3 = await expectCairnError(.storageAuth) {
            _ = try await EnvironmentCredentialsProvider(environment: ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "  "]).credentials()
        }
        #expect(e3?.message.contains("AWS_SECRET_ACCESS_KEY is not") == true)
    }
}

// MARK: - Shared files

@Suite struct ProfileCredentialsTests {
    static let credentialsFile = """
        # comment
        ; another comment
        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = default/secret+key   ; inline comment
        [work]
        AWS_ACCESS_KEY_ID=AKIDWORK
        aws_secret_access_key=work#secret
        aws_session_token = work-token
        [half]
        aws_secret_access_key = HALFSECRET
        """
    static let configFile = """
        [default]
        region = eu-central-1
        [profile work]
        region = us-west-2
        s3 =
          endpoint_url = https://s3.work.example
        [profile cfgonly]
        aws_access_key_id = AKIDCFG
        aws_secret_access_key = cfg-secret
        endpoint_url = https://all.cfgonly.example
        [profile assume]
        role_arn = arn:aws:iam::123456789012:role/x
        source_profile = default
        """

    func env(_ dir: TempDir, _ extra: [String: String] = [:]) throws -> [String: String] {
        let c = try dir.write("credentials", Self.credentialsFile)
        let f = try dir.write("config", Self.configFile)
        return ["AWS_SHARED_CREDENTIALS_FILE": c, "AWS_CONFIG_FILE": f].merging(extra) { $1 }
    }

    @Test func defaultProfileWithCommentsAndInlineComments() async throws {
        let dir = try TempDir()
        let c = try await ProfileCredentialsProvider(environment: try env(dir)).credentials()
        #expect(c == AWSCredentials(accessKeyId: "AKIDDEFAULT", secretAccessKey: "default/secret+key"))
    }

    @Test func profileFromAWSProfileOrArgument() async throws {
        let dir = try TempDir()
        let fromEnv = ProfileCredentialsProvider(environment: try env(dir, ["AWS_PROFILE": "work"]))
        #expect(fromEnv.providerName == "profile work")
        // `#` without white space before it is part of the value; key names are case-insensitive.
        #expect(try await fromEnv.credentials() == AWSCredentials(accessKeyId: "AKIDWORK", secretAccessKey: "work#secret", sessionToken: "work-token"))
        let explicit = ProfileCredentialsProvider(profile: "work", environment: try env(dir, ["AWS_PROFILE": "default"]))
        #expect(try await explicit.credentials().accessKeyId == "AKIDWORK")
    }

    @Test func keysFromConfigFileProfileSection() async throws {
        let dir = try TempDir()
        let c = try await ProfileCredentialsProvider(profile: "cfgonly", environment: try env(dir)).credentials()
        #expect(c == AWSCredentials(accessKeyId: "AKIDCFG", secretAccessKey: "cfg-secret"))
    }

    @Test func homeDirectoryDefaultPaths() async throws {
        let dir = try TempDir()
        try dir.write(".aws/credentials", "[default]\naws_access_key_id=AKIDHOME\naws_secret_access_key=home-secret\n")
        let p = ProfileCredentialsProvider(environment: ["HOME": dir.path])
        #expect(try await p.credentials().accessKeyId == "AKIDHOME")
        #expect(AWSConfigResolver.credentialsFilePath(env: ["HOME": dir.path]) == dir.path + "/.aws/credentials")
        #expect(AWSConfigResolver.configFilePath(env: ["HOME": "/h", "AWS_CONFIG_FILE": "~/cfg"]) == "/h/cfg")
    }

    @Test func readsFilesOnceThenCaches() async throws {
        let dir = try TempDir()
        let e = try env(dir)
        let p = ProfileCredentialsProvider(environment: e)
        #expect(try await p.credentials().accessKeyId == "AKIDDEFAULT")
        try FileManager.default.removeItem(atPath: e["AWS_SHARED_CREDENTIALS_FILE"]!)
        #expect(try await p.credentials().accessKeyId == "AKIDDEFAULT")
        // A fresh provider does see the file is gone (the config file has no keys for default).
        let e2 = await expectCairnError(.storageAuth) { _ = try await ProfileCredentialsProvider(environment: e).credentials() }
        #expect(e2?.message.contains("no aws_access_key_id") == true)
    }

    @Test func clearErrors() async throws {
        let dir = try TempDir()
        let e = try env(dir)
        let missing = await expectCairnError(.storageAuth) { _ = try await ProfileCredentialsProvider(profile: "nope", environment: e).credentials() }
        #expect(missing?.message.contains("profile nope not found in \(e["AWS_SHARED_CREDENTIALS_FILE"]!)") == true)

        let half = await expectCairnError(.storageAuth) { _ = try await ProfileCredentialsProvider(profile: "half", environment: e).credentials() }
        #expect(half?.message.contains("profile half") == true)
        #expect(half?.description.contains("HALFSECRET") == false)

        let assume = await expectCairnError(.storageAuth) { _ = try await ProfileCredentialsProvider(profile: "assume", environment: e).credentials() }
        #expect(assume?.message.contains("role_arn") == true)

        let none = await expectCairnError(.storageAuth) {
            _ = try await ProfileCredentialsProvider(environment: ["HOME": dir.path + "/nowhere"]).credentials()
        }
        #expect(none?.message.contains("no shared credentials file") == true)
    }

    @Test func iniParserSectionsAndSubProperties() {
        let s = AWSConfigFile.parse(Self.configFile)
        #expect(s["default"] == ["region": "eu-central-1"])
        #expect(s["profile work"]?["s3.endpoint_url"] == "https://s3.work.example")
        #expect(s["profile work"]?["region"] == "us-west-2")
        #expect(s["profile assume"]?["source_profile"] == "default")
        #expect(AWSConfigFile.parse("key=outside\n[a]\n  k = v\n[b\nx=1")["a"] == ["k": "v"])
    }
}

@Suite struct AWSConfigResolverTests {
    @Test func regionOrder() throws {
        let dir = try TempDir()
        let cfg = try dir.write("config", ProfileCredentialsTests.configFile)
        let base = ["AWS_CONFIG_FILE": cfg]
        #expect(AWSConfigResolver.region(env: base.merging(["AWS_REGION": "r1", "AWS_DEFAULT_REGION": "r2"]) { $1 }) == "r1")
        #expect(AWSConfigResolver.region(env: base.merging(["AWS_DEFAULT_REGION": "r2"]) { $1 }) == "r2")
        #expect(AWSConfigResolver.region(env: base) == "eu-central-1")
        #expect(AWSConfigResolver.region(env: base.merging(["AWS_PROFILE": "work"]) { $1 }) == "us-west-2")
        #expect(AWSConfigResolver.region(env: base, profile: "work") == "us-west-2")
        #expect(AWSConfigResolver.region(env: base, profile: "cfgonly") == nil)
        #expect(AWSConfigResolver.region(env: ["HOME": dir.path + "/nowhere"]) == nil)
    }

    @Test func endpointOrder() throws {
        let dir = try TempDir()
        let cfg = try dir.write("config", ProfileCredentialsTests.configFile)
        let base = ["AWS_CONFIG_FILE": cfg]
        #expect(AWSConfigResolver.endpointURL(env: base.merging(["AWS_ENDPOINT_URL_S3": "http://s3only", "AWS_ENDPOINT_URL": "http://all"]) { $1 }) == "http://s3only")
        #expect(AWSConfigResolver.endpointURL(env: base.merging(["AWS_ENDPOINT_URL": "http://all"]) { $1 }) == "http://all")
        #expect(AWSConfigResolver.endpointURL(env: base, profile: "work") == "https://s3.work.example")
        #expect(AWSConfigResolver.endpointURL(env: base, profile: "cfgonly") == "https://all.cfgonly.example")
        #expect(AWSConfigResolver.endpointURL(env: base) == nil)
    }
}

// MARK: - Chain

@Suite struct ChainCredentialsTests {
    @Test func environmentWinsOverProfile() async throws {
        let dir = try TempDir()
        let c = try dir.write("credentials", ProfileCredentialsTests.credentialsFile)
        let env = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SHARED_CREDENTIALS_FILE": c,
                   "AWS_EC2_METADATA_DISABLED": "true"]
        let chain = ChainCredentialsProvider.default(environment: env)
        #expect(try await chain.credentials().accessKeyId == "AKIDENV")
        #expect(await chain.chosenProviderName == "environment")
    }

    @Test func profileWhenEnvironmentIsEmpty() async throws {
        let dir = try TempDir()
        let c = try dir.write("credentials", ProfileCredentialsTests.credentialsFile)
        let chain = ChainCredentialsProvider.default(environment: ["AWS_SHARED_CREDENTIALS_FILE": c, "AWS_PROFILE": "work",
                                                                   "AWS_EC2_METADATA_DISABLED": "true"])
        #expect(try await chain.credentials().accessKeyId == "AKIDWORK")
        #expect(await chain.chosenProviderName == "profile work")
    }

    @Test func firstSuccessIsCachedAndLaterProvidersAreNotAsked() async throws {
        let failing = CountingProvider("first", nil)
        let good = CountingProvider("second", AWSCredentials(accessKeyId: "AKID2", secretAccessKey: "s2"))
        let never = CountingProvider("third", AWSCredentials(accessKeyId: "AKID3", secretAccessKey: "s3"))
        let chain = ChainCredentialsProvider([failing, good, never])
        for _ in 0..<3 { #expect(try await chain.credentials().accessKeyId == "AKID2") }
        #expect(await failing.calls == 1)
        #expect(await good.calls == 3)
        #expect(await never.calls == 0)
        #expect(await chain.chosenProviderName == "second")
    }

    @Test func noneSucceedsGivesOneLineListingWhatWasTriedWithoutSecrets() async throws {
        let dir = try TempDir()
        let c = try dir.write("credentials", "[default]\naws_secret_access_key = CHAINSECRET\n")
        let endpoint = try await IMDSServer.closedEndpoint()
        let chain = ChainCredentialsProvider.default(environment: [
            "AWS_SECRET_ACCESS_KEY": "ENVSECRET", "AWS_SHARED_CREDENTIALS_FILE": c, "AWS_CONFIG_FILE": dir.path + "/none",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint,
        ])
        let e = await expectCairnError(.storageAuth) { _ = try await chain.credentials() }
        let text = try #require(e?.description)
        #expect(text.hasPrefix("no AWS credentials found; tried environment: "))
        #expect(text.contains("; profile default: "))
        #expect(text.contains("; EC2 instance metadata: "))
        #expect(text.contains(endpoint))
        #expect(!text.contains("\n"))
        #expect(!text.contains("CHAINSECRET"))
        #expect(!text.contains("ENVSECRET"))
    }
}

// MARK: - EC2 instance metadata against a real local server

@Suite struct IMDSCredentialsTests {
    @Test func fetchesRoleCredentialsWithAToken() async throws {
        let server = try await IMDSServer.start()
        defer { server.stop() }
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint + "/"])
        #expect(p.endpoint == server.endpoint)
        let c = try await p.credentials()
        #expect(c.accessKeyId == "ASIAIMDSTEST0001")
        #expect(c.secretAccessKey == "imds-secret-1")
        #expect(c.sessionToken == "imds-session-token-1")
        let exp = try #require(c.expiration)
        #expect(abs(exp.timeIntervalSinceNow - 21600) < 120)
        // The server answers 401 to any GET without a valid token: no 401 means the token was sent.
        #expect(try await server.counts() == .init(token: 1, list: 1, creds: 1, unauthorized: 0, other: 0, last_ttl: 21600))
    }

    @Test func cachedWhileFarFromExpiry() async throws {
        let server = try await IMDSServer.start(["--expires-in", "21600"])
        defer { server.stop() }
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint])
        var ids = Set<String>()
        for _ in 0..<5 { ids.insert(try await p.credentials().accessKeyId) }
        #expect(ids == ["ASIAIMDSTEST0001"])
        let n = try await server.counts()
        #expect(n.creds == 1)
        #expect(n.token == 1)
    }

    @Test func concurrentCallersShareOneFetch() async throws {
        let server = try await IMDSServer.start()
        defer { server.stop() }
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint])
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { try await p.credentials().accessKeyId } }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(ids == ["ASIAIMDSTEST0001"])
        #expect(try await server.counts().creds == 1)
    }

    @Test func refreshedWhenLessThanFiveMinutesRemain() async throws {
        let server = try await IMDSServer.start(["--expires-in", "240"])
        defer { server.stop() }
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint])
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try await p.credentials().accessKeyId) }
        #expect(ids == ["ASIAIMDSTEST0001", "ASIAIMDSTEST0002", "ASIAIMDSTEST0003"])
        let n = try await server.counts()
        #expect(n.creds == 3)
        #expect(n.token == 1) // the session token is reused within its TTL
    }

    @Test func refreshUsesInjectedClock() async throws {
        // Credentials valid for 6 h: fresh now, due for refresh 5 h 56 min later.
        let server = try await IMDSServer.start()
        defer { server.stop() }
        let offset = OffsetClock()
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint], now: { offset.now() })
        #expect(try await p.credentials().accessKeyId == "ASIAIMDSTEST0001")
        offset.advance(3600)
        #expect(try await p.credentials().accessKeyId == "ASIAIMDSTEST0001")
        offset.advance(21600 - 3600 - 240)
        #expect(try await p.credentials().accessKeyId == "ASIAIMDSTEST0002")
        #expect(try await server.counts().creds == 2)
    }

    @Test func a401FetchesANewTokenOnce() async throws {
        let server = try await IMDSServer.start(["--token-uses", "1"])
        defer { server.stop() }
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint])
        #expect(try await p.credentials().accessKeyId == "ASIAIMDSTEST0001")
        let n = try await server.counts()
        #expect(n.token == 2)
        #expect(n.unauthorized == 1)
        #expect(n.list == 1)
        #expect(n.creds == 1)
    }

    @Test(arguments: ["true", "TRUE", " True "])
    func disabledByEnvironment(_ value: String) async throws {
        let server = try await IMDSServer.start()
        defer { server.stop() }
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.endpoint,
                                                      "AWS_EC2_METADATA_DISABLED": value])
        let e = await expectCairnError(.storageAuth) { _ = try await p.credentials() }
        #expect(e?.message.contains("AWS_EC2_METADATA_DISABLED") == true)
        #expect(try await server.counts() == .init(token: 0, list: 0, creds: 0, unauthorized: 0, other: 0, last_ttl: nil))
    }

    @Test func notDisabledByOtherValues() {
        #expect(!IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_DISABLED": "false"]).disabled)
        #expect(!IMDSCredentialsProvider(environment: [:]).disabled)
        #expect(IMDSCredentialsProvider(environment: [:]).endpoint == "http://169.254.169.254")
    }

    @Test func unreachableEndpointFailsWithAClearError() async throws {
        let endpoint = try await IMDSServer.closedEndpoint()
        let p = IMDSCredentialsProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint])
        let e = await expectCairnError(.network) { _ = try await p.credentials() }
        #expect(e?.message == "\(endpoint) is unreachable (not an EC2 instance?)")
    }

    @Test func credentialsDocumentParsing() throws {
        let ok = try IMDSCredentialsProvider.parseCredentials(Data("""
            {"Code":"Success","AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2030-01-02T03:04:05.123Z"}
            """.utf8), endpoint: "e")
        #expect(ok.accessKeyId == "A")
        #expect(ok.expiration.map { abs($0.timeIntervalSince1970 - 1_893_553_445.123) < 0.01 } == true)
        #expect(throws: CairnError.self) {
            try IMDSCredentialsProvider.parseCredentials(Data(#"{"Code":"Failed","AccessKeyId":"A","SecretAccessKey":"S"}"#.utf8), endpoint: "e")
        }
        #expect(throws: CairnError.self) {
            try IMDSCredentialsProvider.parseCredentials(Data("not json".utf8), endpoint: "e")
        }
        #expect(throws: CairnError.self) {
            try IMDSCredentialsProvider.parseCredentials(Data(#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"}"#.utf8), endpoint: "e")
        }
    }
}

final class OffsetClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: TimeInterval = 0
    func now() -> Date { lock.withLock { Date().addingTimeInterval(offset) } }
    func advance(_ s: TimeInterval) { lock.withLock { offset += s } }
}
