import Core
import Foundation
import HTTP

/// Opens an object store from a URL:
///
/// - `file:///srv/backups` — a local directory (the embedded default).
/// - `s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true|false&checksum=sha256|crc32c|md5`
///   — any S3-compatible store (`checksum`: `PayloadChecksum`, default by endpoint). Unset parameters come from the usual AWS variables:
///   `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_REGION` /
///   `AWS_DEFAULT_REGION` / the profile's region, `AWS_CA_BUNDLE`; credentials
///   from the AWS chain (environment, shared files and `AWS_PROFILE`, EC2
///   instance metadata) unless given explicitly.
public enum StorageLocation {
    public static func open(_ url: String, credentials: (any CredentialsProvider)? = nil,
                            env: [String: String] = ProcessInfo.processInfo.environment,
                            retry: RetryPolicy = RetryPolicy()) throws -> any ObjectStore {
        if url.hasPrefix("file://") {
            return try DirectoryStore(url: url)
        }
        if url.hasPrefix("s3://") {
            let config = try s3Configuration(url, env: env, retry: retry)
            return S3Store(config: config, credentials: credentials ?? ChainCredentialsProvider.default(environment: env))
        }
        if url.hasPrefix("/") {
            throw CairnError(.usage, "storage URL \(url): write file://\(url) for a local directory")
        }
        throw CairnError(.usage, "storage URL \(url): expected s3://BUCKET/PREFIX or file:///PATH")
    }

    public static func s3Configuration(_ url: String, env: [String: String], retry: RetryPolicy = RetryPolicy()) throws -> S3Configuration {
        var rest = String(url.dropFirst("s3://".count))
        var params: [String: String] = [:]
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                let k = kv[0]
                let v = kv.count > 1 ? AWSURI.decode(kv[1]) : ""
                guard ["endpoint", "region", "path_style", "checksum"].contains(k) else {
                    throw CairnError(.usage, "storage URL \(url.prefix(while: { $0 != "?" })): unknown parameter '\(k)' (expected endpoint, region, path_style, checksum)")
                }
                params[k] = v
            }
            rest = String(rest[..<q])
        }
        let bucket = String(rest.prefix(while: { $0 != "/" }))
        guard !bucket.isEmpty else { throw CairnError(.usage, "storage URL \(url): missing bucket name (s3://BUCKET/PREFIX)") }
        let prefix = String(rest.dropFirst(bucket.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        var pathStyle: Bool? = nil
        if let p = params["path_style"] {
            switch p.lowercased() {
            case "true", "1", "yes": pathStyle = true
            case "false", "0", "no": pathStyle = false
            default: throw CairnError(.usage, "storage URL: path_style must be true or false, not '\(p)'")
            }
        }
        var checksum: PayloadChecksum? = nil
        if let c = params["checksum"] {
            guard let m = PayloadChecksum(rawValue: c.lowercased()) else {
                throw CairnError(.usage, "storage URL: checksum must be sha256, crc32c or md5, not '\(c)'")
            }
            checksum = m
        }
        let endpoint = params["endpoint"] ?? AWSConfigResolver.endpointURL(env: env)
        let region = params["region"] ?? AWSConfigResolver.region(env: env) ?? "us-east-1"
        return S3Configuration(bucket: bucket, prefix: prefix, endpoint: endpoint, region: region, pathStyle: pathStyle,
                               caBundle: env["AWS_CA_BUNDLE"], retry: retry, payloadChecksum: checksum)
    }
}
