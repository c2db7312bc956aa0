import Foundation
import Testing
import Core
import HTTP
@testable import ObjectStore

@Suite struct StorageCheckTests {
    @Test func everyStepPassesOnMotoAndLeavesNothingBehind() async throws {
        let store = try TestEnv.s3()
        let steps = await StorageCheck(store: store).run()
        #expect(steps.map(\.name) == ["put", "get", "head", "list", "multipart", "list-uploads", "delete"])
        #expect(steps.filter { !$0.ok }.map(\.detail) == [])
        #expect(try await store.list(prefix: "").isEmpty)
        #expect(try await store.listMultipartUploads(prefix: "").isEmpty)
    }

    @Test func missingDeletePermissionIsReportedAtTheDeleteStep() async throws {
        // DeleteObjects names its keys in the body, so the fault is scoped by a bucket of this test's own.
        let bucket = "cairn-check-\(UUID().uuidString.prefix(8).lowercased())"
        let store = S3Store(config: S3Configuration(bucket: bucket, prefix: "", endpoint: try TestEnv.proxyEndpoint,
                                                    retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.05)),
                            credentials: StaticCredentialsProvider(try TestEnv.credentials()))
        try await store.createBucket()
        let proxy = try ProxyControl()
        try await proxy.inject(.init(method: "POST", path_contains: "/\(bucket)", query_contains: "delete", action: "status", status: 403, code: "AccessDenied", count: 1))
        let steps = await StorageCheck(store: store).run()
        let failed = steps.filter { !$0.ok }
        #expect(failed.map(\.name) == ["delete"])
        let detail = try #require(failed.first?.detail)
        #expect(detail.contains("AccessDenied"))
        #expect(detail.contains("s3:DeleteObject"))
        try await store.delete(keys: try await store.list(prefix: "").map(\.key))
    }

    @Test func directoryStorePassesEveryStep() async throws {
        try await withDirectoryStore { store, _ in
            let steps = await StorageCheck(store: store).run()
            #expect(steps.count == 7)
            #expect(steps.filter { !$0.ok }.isEmpty)
        }
    }
}
