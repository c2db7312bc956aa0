import Foundation

/// A Sentry DSN, `SCHEME://PUBLIC_KEY[:SECRET]@HOST[:PORT][/PATH]/PROJECT_ID`,
/// and the store endpoint it names.
public struct SentryDSN: Sendable, Equatable {
    public var scheme: String
    public var publicKey: String
    /// Legacy DSNs carry a secret key; current ones do not.
    public var secretKey: String?
    public var host: String
    public var port: Int?
    /// A path prefix before the project id (self-hosted Sentry under a sub-path); "" or "/sub".
    public var pathPrefix: String
    public var projectID: String

    /// Parses a DSN; nil (never the DSN itself in an error) when it is not one.
    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let u = URLComponents(string: t), let scheme = u.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = u.host, !host.isEmpty, let key = u.user, !key.isEmpty else { return nil }
        var parts = u.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let project = parts.popLast(), !project.isEmpty, project.allSatisfy(\.isNumber) else { return nil }
        self.scheme = scheme
        self.publicKey = key
        self.secretKey = u.password.flatMap { $0.isEmpty ? nil : $0 }
        self.host = host
        self.port = u.port
        self.pathPrefix = parts.isEmpty ? "" : "/" + parts.joined(separator: "/")
        self.projectID = project
    }

    /// `SCHEME://HOST[:PORT][/PATH]/api/PROJECT_ID/store/`.
    public var storeURL: String {
        "\(scheme)://\(host)\(port.map { ":\($0)" } ?? "")\(pathPrefix)/api/\(projectID)/store/"
    }

    /// The `X-Sentry-Auth` header value.
    public func authHeader(client: String) -> String {
        var s = "Sentry sentry_version=7, sentry_client=\(client), sentry_key=\(publicKey)"
        if let secretKey { s += ", sentry_secret=\(secretKey)" }
        return s
    }
}
