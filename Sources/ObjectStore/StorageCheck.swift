import Core
import Crypto
import Foundation

/// `cairn storage check`: proves that a store accepts every operation Cairn
/// needs, one step at a time, with latency and a precise error per step.
public struct StorageCheck: Sendable {
    public struct Step: Sendable {
        public var name: String
        public var ok: Bool
        public var milliseconds: Double
        public var detail: String
    }

    public let store: any ObjectStore
    public init(store: any ObjectStore) { self.store = store }

    /// What each step needs, for the hint printed on failure.
    static let permission: [String: String] = [
        "put": "s3:PutObject", "get": "s3:GetObject", "head": "s3:GetObject", "list": "s3:ListBucket",
        "multipart": "s3:PutObject and s3:AbortMultipartUpload", "list-uploads": "s3:ListBucketMultipartUploads",
        "delete": "s3:DeleteObject",
    ]

    /// Runs every step; stops early only when a later step cannot run
    /// (nothing to read back without a put). `report` sees each step as it ends.
    public func run(report: @Sendable (Step) -> Void = { _ in }) async -> [Step] {
        var steps: [Step] = []
        let key = "cairn-check/\(UUID().uuidString.lowercased())"
        let payload = (try? SecureRandom.bytes(64 << 10)) ?? Data(count: 64 << 10)

        func step(_ name: String, _ body: () async throws -> String) async -> Bool {
            let start = ContinuousClock.now
            var s: Step
            do {
                let detail = try await body()
                s = Step(name: name, ok: true, milliseconds: Self.ms(since: start), detail: detail)
            } catch {
                var text = "\(error)"
                if let e = error as? CairnError, e.code == .storageAuth, e.message.contains("AccessDenied"), let p = Self.permission[name] {
                    text += " — does the policy grant \(p)?"
                }
                s = Step(name: name, ok: false, milliseconds: Self.ms(since: start), detail: text)
            }
            steps.append(s)
            report(s)
            return s.ok
        }

        let stored = await step("put") {
            _ = try await store.put(key: key, body: .data(payload), options: PutOptions(contentType: "application/octet-stream"))
            return "wrote \(payload.count) bytes to \(key)"
        }
        if stored {
            _ = await step("get") {
                let back = try await store.getData(key: key, limit: 1 << 20)
                guard back == payload else { throw CairnError(.integrity, "read back \(back.count) bytes that differ from what was written") }
                return "read back \(back.count) identical bytes"
            }
            _ = await step("head") {
                guard let info = try await store.head(key: key) else { throw CairnError(.notFound, "HEAD says the probe object does not exist") }
                guard info.size == Int64(payload.count) else { throw CairnError(.integrity, "HEAD reports \(info.size) bytes, expected \(payload.count)") }
                return "size \(info.size)"
            }
            _ = await step("list") {
                let listed = try await store.list(prefix: "cairn-check/")
                guard listed.contains(where: { $0.key == key }) else { throw CairnError(.storage, "LIST does not show the probe object") }
                return "\(listed.count) object(s) under cairn-check/"
            }
        }
        _ = await step("multipart") {
            let id = try await store.createMultipartUpload(key: key + ".mp", options: PutOptions())
            _ = try await store.uploadPart(key: key + ".mp", uploadId: id, partNumber: 1, body: .data(payload))
            try await store.abortMultipartUpload(key: key + ".mp", uploadId: id)
            return "created, uploaded a part, aborted"
        }
        _ = await step("list-uploads") {
            let ups = try await store.listMultipartUploads(prefix: "cairn-check/")
            return "\(ups.count) open upload(s) under cairn-check/"
        }
        if stored {
            _ = await step("delete") {
                try await store.delete(keys: [key])
                if try await store.head(key: key) != nil { throw CairnError(.storage, "the probe object still exists after DeleteObjects") }
                return "probe object removed"
            }
        }
        return steps
    }

    public static func ms(since start: ContinuousClock.Instant) -> Double {
        let d = start.duration(to: .now)
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}

extension StorageLocation {
    /// Opens the store holding a single object URL (`s3://bucket/path/to/key`,
    /// `file:///dir/name`) and returns it with the object's key.
    public static func openObject(_ url: String, env: [String: String] = ProcessInfo.processInfo.environment) throws -> (any ObjectStore, String) {
        if url.hasPrefix("file://") {
            let path = String(url.dropFirst("file://".count))
            let dir = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            guard !name.isEmpty, !path.hasSuffix("/") else { throw CairnError(.usage, "\(url): expected a file URL ending in a file name") }
            return (try DirectoryStore(url: "file://" + dir), name)
        }
        if url.hasPrefix("s3://") {
            let noQuery = url.split(separator: "?", maxSplits: 1).map(String.init)
            let rest = noQuery[0].dropFirst("s3://".count)
            let bucket = rest.prefix(while: { $0 != "/" })
            let key = String(rest.dropFirst(bucket.count + 1))
            guard !key.isEmpty, !key.hasSuffix("/") else { throw CairnError(.usage, "\(url): expected s3://BUCKET/KEY naming an object") }
            let storeURL = "s3://\(bucket)" + (noQuery.count > 1 ? "?" + noQuery[1] : "")
            return (try open(storeURL, env: env), key)
        }
        throw CairnError(.usage, "\(url): expected s3://BUCKET/KEY or file:///PATH")
    }
}
