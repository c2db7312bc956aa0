import Foundation
import Testing
@testable import ObjectStore

/// The same object-store suite as DirectoryStore, against moto (signature
/// checking on) through the strict proxy (Content-MD5 and equal part sizes
/// enforced). Each test asserts the proxy saw no violation.
@Suite("S3Store conforms to ObjectStore")
struct S3ConformanceTests {
    func run(_ body: (ObjectStoreConformance) async throws -> Void) async throws {
        let store = try TestEnv.s3()
        try await body(ObjectStoreConformance(store: store, prefix: "conformance/", checksInitiatedTime: false))
        #expect(try await ProxyControl().violations(containing: store.config.prefix).isEmpty)
    }

    @Test func putGetHeadListDelete() async throws { try await run { try await $0.putGetHeadListDelete() } }
    @Test func rangeGet() async throws { try await run { try await $0.rangeGet() } }
    @Test func missingKeyIsNotFound() async throws { try await run { try await $0.missingKeyIsNotFound() } }
    @Test func oddKeysRoundTrip() async throws { try await run { try await $0.oddKeysRoundTrip() } }
    @Test func metadataRoundTrip() async throws { try await run { try await $0.metadataRoundTrip() } }
    @Test func multipartThreeParts() async throws { try await run { try await $0.multipartThreeParts() } }
    @Test func abortMultipart() async throws { try await run { try await $0.abortMultipart() } }
    @Test func listAndDelete2500Keys() async throws { try await run { try await $0.listAndDeleteMany(count: 2_500) } }
    @Test func largeStreamingGet() async throws { try await run { try await $0.largeStreamingGet() } }
}
