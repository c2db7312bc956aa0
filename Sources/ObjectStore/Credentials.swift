import Foundation
import Core
import HTTP

/// Where AWS credentials come from. Implementations never put a secret in
/// an error message.
public protocol CredentialsProvider: Sendable {
    func credentials() async throws -> AWSCredentials
    /// A short name for error messages ("environment", "profile default"...).
    var providerName: String { get }
}

extension CredentialsProvider {
    public var providerName: String { String(describing: type(of: self)) }
}

// MARK: - Static and environment

public struct StaticCredentialsProvider: CredentialsProvider {
    public let value: AWSCredentials
    public init(_ credentials: AWSCredentials) { self.value = credentials }
    public func credentials() async throws -> AWSCredentials { value }
    public var providerName: String { "static" }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`.
public struct EnvironmentCredentialsProvider: CredentialsProvider {
    let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public var providerName: String { "environment" }

    public func credentials() async throws -> AWSCredentials {
        let id = environment["AWS_ACCESS_KEY_ID"].flatMap(nonEmpty)
        let secret = environment["AWS_SECRET_ACCESS_KEY"].flatMap(nonEmpty)
        switch (id, secret) {
        case let (id?, secret?):
            return AWSCredentials(accessKeyId: id, secretAccessKey: secret,
                                  sessionToken: environment["AWS_SESSION_TOKEN"].flatMap(nonEmpty))
        case (nil, nil):
            throw CairnError(.storageAuth, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
        case (nil, _):
            throw CairnError(.storageAuth, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        case (_, nil):
            throw CairnError(.storageAuth, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        }
    }
}

private func nonEmpty(_ s: String) -> String? {
    let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
    return t.isEmpty ? nil : t
}

// MARK: - Shared config and credentials files

/// The AWS shared config/credentials INI format: `[section]` headers,
/// `key = value` lines, full-line comments starting with `#` or `;`, inline
/// comments after white space (`key = v ; note`), and indented
/// sub-properties (`s3 =` then `  addressing_style = path`, stored as
/// `s3.addressing_style`). Keys are lower-cased.
public enum AWSConfigFile {
    public static func parse(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        var parentKey: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let indented = rawLine.first == " " || rawLine.first == "\t"
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                parentKey = nil
                guard let close = line.firstIndex(of: "]") else { current = nil; continue }
                let name = line[line.index(after: line.startIndex)..<close].trimmingCharacters(in: .whitespaces)
                current = name
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            guard let section = current else { continue }
            // Inline comment: `#` or `;` preceded by white space.
            if let r = line.range(of: #"[ \t][#;]"#, options: .regularExpression) { line = String(line[..<r.lowerBound]) }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if indented, let parent = parentKey {
                sections[section]?["\(parent).\(key)"] = value
            } else {
                sections[section]?[key] = value
                parentKey = value.isEmpty ? key : nil
            }
        }
        return sections
    }
}

/// AWS settings shared by the credentials providers and the S3 store:
/// which profile, which files, which region and endpoint.
public enum AWSConfigResolver {
    /// `AWS_PROFILE`, else `default`.
    public static func profileName(env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        env["AWS_PROFILE"].flatMap(nonEmpty) ?? "default"
    }

    static func home(_ env: [String: String]) -> String {
        env["HOME"].flatMap(nonEmpty) ?? NSHomeDirectory()
    }

    static func expandTilde(_ path: String, _ env: [String: String]) -> String {
        if path == "~" { return home(env) }
        if path.hasPrefix("~/") { return home(env) + path.dropFirst() }
        return path
    }

    /// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    public static func credentialsFilePath(env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        expandTilde(env["AWS_SHARED_CREDENTIALS_FILE"].flatMap(nonEmpty) ?? "~/.aws/credentials", env)
    }

    /// `AWS_CONFIG_FILE`, else `~/.aws/config`.
    public static func configFilePath(env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        expandTilde(env["AWS_CONFIG_FILE"].flatMap(nonEmpty) ?? "~/.aws/config", env)
    }

    /// The profile's section of the config file (`[profile NAME]`, or
    /// `[default]` for the default profile); nil when the file or section is missing.
    public static func configProfile(env: [String: String] = ProcessInfo.processInfo.environment, profile: String? = nil) -> [String: String]? {
        let name = profile ?? profileName(env: env)
        guard let text = try? String(contentsOfFile: configFilePath(env: env), encoding: .utf8) else { return nil }
        let sections = AWSConfigFile.parse(text)
        if let s = sections["profile \(name)"] { return s }
        if name == "default" { return sections["default"] }
        return nil
    }

    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's `region`
    /// in the config file; nil when none is set.
    public static func region(env: [String: String] = ProcessInfo.processInfo.environment, profile: String? = nil) -> String? {
        if let r = env["AWS_REGION"].flatMap(nonEmpty) { return r }
        if let r = env["AWS_DEFAULT_REGION"].flatMap(nonEmpty) { return r }
        return configProfile(env: env, profile: profile)?["region"].flatMap(nonEmpty)
    }

    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else the profile's
    /// `s3 = / endpoint_url` or `endpoint_url` in the config file; nil means
    /// the AWS endpoint for the region.
    public static func endpointURL(env: [String: String] = ProcessInfo.processInfo.environment, profile: String? = nil) -> String? {
        if let u = env["AWS_ENDPOINT_URL_S3"].flatMap(nonEmpty) { return u }
        if let u = env["AWS_ENDPOINT_URL"].flatMap(nonEmpty) { return u }
        let p = configProfile(env: env, profile: profile)
        return p?["s3.endpoint_url"].flatMap(nonEmpty) ?? p?["endpoint_url"].flatMap(nonEmpty)
    }
}

/// Static keys of a named profile: `aws_access_key_id`,
/// `aws_secret_access_key`, `aws_session_token` from the shared credentials
/// file, else from the profile's section of the config file. The files are
/// read once, on the first successful call. Profiles that assume roles,
/// use SSO or `credential_process` are not supported (a clear error says so).
public final class ProfileCredentialsProvider: CredentialsProvider, @unchecked Sendable {
    public let profile: String
    let credentialsPath: String
    let configPath: String
    private let lock = NSLock()
    private var cached: AWSCredentials?

    public init(profile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.profile = profile ?? AWSConfigResolver.profileName(env: environment)
        self.credentialsPath = AWSConfigResolver.credentialsFilePath(env: environment)
        self.configPath = AWSConfigResolver.configFilePath(env: environment)
    }

    public var providerName: String { "profile \(profile)" }

    public func credentials() async throws -> AWSCredentials {
        if let c = lock.withLock({ cached }) { return c }
        let c = try load()
        lock.withLock { cached = c }
        return c
    }

    func load() throws -> AWSCredentials {
        var sources: [(path: String, section: [String: String])] = []
        var readable: [String] = []
        if let text = readFile(credentialsPath) {
            readable.append(credentialsPath)
            if let s = AWSConfigFile.parse(text)[profile] { sources.append((credentialsPath, s)) }
        }
        if let text = readFile(configPath) {
            readable.append(configPath)
            let sections = AWSConfigFile.parse(text)
            if let s = sections["profile \(profile)"] ?? (profile == "default" ? sections["default"] : nil) {
                sources.append((configPath, s))
            }
        }
        if readable.isEmpty {
            throw CairnError(.storageAuth, "no shared credentials file (\(credentialsPath)) or config file (\(configPath))")
        }
        if sources.isEmpty {
            throw CairnError(.storageAuth, "profile \(profile) not found in \(readable.joined(separator: " or "))")
        }
        for (path, s) in sources {
            if let id = s["aws_access_key_id"].flatMap(nonEmpty) {
                guard let secret = s["aws_secret_access_key"].flatMap(nonEmpty) else {
                    throw CairnError(.storageAuth, "profile \(profile) in \(path) has aws_access_key_id but no aws_secret_access_key")
                }
                return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: s["aws_session_token"].flatMap(nonEmpty))
            }
        }
        let unsupported = ["role_arn", "sso_session", "sso_start_url", "credential_process", "web_identity_token_file"]
        if let key = sources.lazy.compactMap({ s in unsupported.first { s.section[$0] != nil } }).first {
            throw CairnError(.storageAuth, "profile \(profile) uses \(key), which Cairn does not support; give it static keys or use environment variables")
        }
        throw CairnError(.storageAuth, "profile \(profile) has no aws_access_key_id in \(sources.map(\.path).joined(separator: " or "))")
    }

    private func readFile(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}

// MARK: - EC2 instance metadata (IMDSv2)

/// Role credentials from the EC2 instance metadata service, IMDSv2 only:
/// a session token from `PUT /latest/api/token`, then the role name and the
/// role's credentials. Disabled by `AWS_EC2_METADATA_DISABLED=true`; endpoint
/// from `AWS_EC2_METADATA_SERVICE_ENDPOINT` (default http://169.254.169.254).
/// A 1 s connect timeout makes a non-EC2 host fail fast. Credentials are
/// cached and fetched again when less than `refreshMargin` remains before
/// their expiration (concurrent callers share one fetch); if a refresh fails
/// while the cached credentials are still valid, those are returned. A 401
/// (expired or invalid token) fetches a new token once and retries.
public actor IMDSCredentialsProvider: CredentialsProvider {
    public static let defaultEndpoint = "http://169.254.169.254"
    static let tokenTTL = 21600

    public nonisolated let endpoint: String
    public nonisolated let disabled: Bool
    let refreshMargin: TimeInterval
    let client: HTTPClient
    let now: @Sendable () -> Date

    private var cached: AWSCredentials?
    private var token: (value: String, expires: Date)?
    private var inflight: Task<AWSCredentials, any Error>?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment,
                connectTimeout: TimeInterval = 1, requestTimeout: TimeInterval = 5,
                refreshMargin: TimeInterval = 300, now: @escaping @Sendable () -> Date = { Date() }) {
        var ep = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].flatMap(nonEmpty) ?? Self.defaultEndpoint
        while ep.hasSuffix("/") { ep.removeLast() }
        self.endpoint = ep
        self.disabled = environment["AWS_EC2_METADATA_DISABLED"]?.trimmingCharacters(in: .whitespaces).lowercased() == "true"
        self.refreshMargin = refreshMargin
        self.now = now
        self.client = HTTPClient(configuration: HTTPClient.Configuration(
            connectTimeout: connectTimeout, lowSpeedTime: requestTimeout, requestTimeout: requestTimeout, maxIdleHandles: 2))
    }

    public nonisolated var providerName: String { "EC2 instance metadata" }

    public func credentials() async throws -> AWSCredentials {
        if disabled { throw CairnError(.storageAuth, "disabled by AWS_EC2_METADATA_DISABLED") }
        if let c = cached, isFresh(c) { return c }
        // Concurrent callers share one fetch.
        let task: Task<AWSCredentials, any Error>
        if let t = inflight {
            task = t
        } else {
            task = Task { try await self.fetchCredentials() }
            inflight = task
        }
        do {
            let c = try await task.value
            if inflight == task { inflight = nil; cached = c }
            return c
        } catch {
            if inflight == task { inflight = nil }
            // Still valid, just due for refresh: keep working on it.
            if let c = cached, let exp = c.expiration, exp > now() { return c }
            throw error
        }
    }

    private func isFresh(_ c: AWSCredentials) -> Bool {
        guard let exp = c.expiration else { return true }
        return exp.timeIntervalSince(now()) >= refreshMargin
    }

    private func fetchCredentials() async throws -> AWSCredentials {
        let roles = try await get("/latest/meta-data/iam/security-credentials/")
        guard let role = String(decoding: roles, as: UTF8.self)
            .split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }), !role.isEmpty else {
            throw CairnError(.storageAuth, "\(endpoint): no IAM role is attached to this instance")
        }
        let body = try await get("/latest/meta-data/iam/security-credentials/\(AWSURI.encode(role, encodeSlash: true))")
        return try Self.parseCredentials(body, endpoint: endpoint)
    }

    struct CredentialsDocument: Decodable {
        var Code: String?
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
    }

    static func parseCredentials(_ body: Data, endpoint: String) throws -> AWSCredentials {
        guard let doc = try? JSONDecoder().decode(CredentialsDocument.self, from: body) else {
            throw CairnError(.storageAuth, "\(endpoint): the role credentials are not valid JSON")
        }
        if let code = doc.Code, code != "Success" {
            throw CairnError(.storageAuth, "\(endpoint): the role credentials are unavailable (Code \(code))")
        }
        guard let id = doc.AccessKeyId, !id.isEmpty, let secret = doc.SecretAccessKey, !secret.isEmpty else {
            throw CairnError(.storageAuth, "\(endpoint): the role credentials lack AccessKeyId or SecretAccessKey")
        }
        var expiration: Date?
        if let e = doc.Expiration {
            guard let d = parseISO8601(e) else {
                throw CairnError(.storageAuth, "\(endpoint): the role credentials have an unreadable Expiration")
            }
            expiration = d
        }
        return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: doc.Token, expiration: expiration)
    }

    static func parseISO8601(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }

    /// GET with the session token; on 401 a new token and one retry.
    private func get(_ path: String) async throws -> Data {
        var retried = false
        while true {
            let tok = try await sessionToken()
            let request = HTTPRequest(method: "GET", url: endpoint + path, headers: ["X-aws-ec2-metadata-token": tok])
            let response = try await send(request)
            switch response.status {
            case 200:
                return response.body
            case 401 where !retried:
                retried = true
                token = nil
            case 404:
                throw CairnError(.storageAuth, "\(endpoint): \(path) not found (no IAM role attached?)")
            default:
                throw CairnError(.storageAuth, "\(endpoint): GET \(path) answered HTTP \(response.status)")
            }
        }
    }

    private func sessionToken() async throws -> String {
        if let t = token, t.expires > now() { return t.value }
        let request = HTTPRequest(method: "PUT", url: endpoint + "/latest/api/token",
                                  headers: ["X-aws-ec2-metadata-token-ttl-seconds": String(Self.tokenTTL)])
        let response = try await send(request)
        guard response.status == 200 else {
            throw CairnError(.storageAuth, "\(endpoint): the IMDSv2 token request answered HTTP \(response.status)")
        }
        let value = String(decoding: response.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else { throw CairnError(.storageAuth, "\(endpoint): the IMDSv2 token is empty") }
        token = (value, now().addingTimeInterval(TimeInterval(Self.tokenTTL - 60)))
        return value
    }

    private func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        do {
            return try await client.send(request, maxBodySize: 64 << 10)
        } catch let e as CairnError where e.code == .cancelled {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let code: ErrorCode = (error as? CairnError)?.code == .timeout ? .timeout : .network
            throw CairnError(code, "\(endpoint) is unreachable (not an EC2 instance?)", cause: error)
        }
    }
}

// MARK: - Chain

/// Tries its providers in order and uses the first that succeeds; that
/// provider is remembered and asked directly afterwards. When none
/// succeeds, one error lists what was tried and why each failed.
public actor ChainCredentialsProvider: CredentialsProvider {
    public nonisolated let providers: [any CredentialsProvider]
    private var chosen: (any CredentialsProvider)?

    public init(_ providers: [any CredentialsProvider]) {
        self.providers = providers
    }

    /// Environment, then the shared files' profile, then EC2 instance metadata:
    /// the order of the AWS SDKs (without SSO, web identity and containers).
    public static func `default`(environment: [String: String] = ProcessInfo.processInfo.environment) -> ChainCredentialsProvider {
        ChainCredentialsProvider([
            EnvironmentCredentialsProvider(environment: environment),
            ProfileCredentialsProvider(environment: environment),
            IMDSCredentialsProvider(environment: environment),
        ])
    }

    public nonisolated var providerName: String { "chain" }

    /// The provider that supplied credentials, once one has.
    public var chosenProviderName: String? { chosen?.providerName }

    public func credentials() async throws -> AWSCredentials {
        if let chosen { return try await chosen.credentials() }
        var failures: [String] = []
        for p in providers {
            do {
                let c = try await p.credentials()
                chosen = p
                return c
            } catch is CancellationError {
                throw CancellationError()
            } catch let e as CairnError where e.code == .cancelled {
                throw e
            } catch {
                let why = String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
                failures.append("\(p.providerName): \(why)")
            }
        }
        throw CairnError(.storageAuth, "no AWS credentials found; tried " +
                         (failures.isEmpty ? "nothing (no providers)" : failures.joined(separator: "; ")))
    }
}
