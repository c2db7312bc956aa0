// Temporary until the credentials chain lands (branch h-sigv4).
public protocol CredentialsProvider: Sendable { func credentials() async throws -> AWSCredentials }
public struct StaticCredentialsProvider: CredentialsProvider {
    let c: AWSCredentials
    public init(_ c: AWSCredentials) { self.c = c }
    public func credentials() async throws -> AWSCredentials { c }
}
