import Core
import Foundation
import Logging

/// Uploads a byte stream of unknown length as one object: equal-size parts
/// (the last may be shorter; Cloudflare R2 rejects anything else), uploaded
/// concurrently while the stream is still being produced. Memory is bounded
/// by `(concurrency + 1) × partSize`. Any failure aborts the multipart upload.
public struct MultipartUploader: Sendable {
    public static let minPartSize = 5 << 20
    public static let maxParts = 10_000

    public var store: any ObjectStore
    public var partSize: Int
    public var concurrency: Int
    public var options: PutOptions
    public var logger: Logger

    public init(store: any ObjectStore, partSize: Int = 8 << 20, concurrency: Int = 4,
                options: PutOptions = PutOptions(), logger: Logger = .cairn("upload")) {
        self.store = store
        self.partSize = max(Self.minPartSize, partSize)
        self.concurrency = max(1, concurrency)
        self.options = options
        self.logger = logger
    }

    /// The part size to use for a stream of at most `upperBound` bytes, so that
    /// 10,000 parts always suffice: at least `preferred`, never below 5 MiB,
    /// rounded up to a whole MiB.
    public static func partSize(forUpperBound upperBound: Int64, preferred: Int = 8 << 20) -> Int {
        let mib: Int64 = 1 << 20
        let needed = (upperBound + Int64(maxParts) - 1) / Int64(maxParts)
        let rounded = (needed + mib - 1) / mib * mib
        return Int(max(Int64(max(preferred, minPartSize)), rounded))
    }

    public struct Result: Sendable {
        public var info: ObjectInfo
        public var size: Int64
        public var partCount: Int
        public var partSize: Int
    }

    /// Reads `input` to its end and stores it under `key`. A stream that ends
    /// before the first part is full is stored with a single PUT.
    /// `onPart` is called after each part is stored (for progress).
    public func upload(key: String, from input: ByteChannel,
                       onPart: @escaping @Sendable (_ partNumber: Int, _ bytes: Int64) -> Void = { _, _ in }) async throws -> Result {
        var carry = Data()
        // Parts are read into reused buffers (a part's buffer is back in the
        // pool once its upload has finished with it): no fresh part-sized
        // mapping, with its page faults, per part. At most concurrency + 1
        // parts exist at once, in use or idle.
        let pool = BufferPool(bufferSize: partSize, maxFree: concurrency + 1)
        // `next` is the only reference the uploader keeps to a part's bytes; it
        // is cleared as soon as the part's task owns them, so memory stays at
        // concurrency × partSize plus the input channel.
        var next: Data? = try await input.read(exactly: partSize, carry: &carry, pool: pool)
        if let whole = next, whole.count < partSize {
            // the whole stream fits into one part: a plain PUT
            next = nil
            let info = try await store.put(key: key, body: .data(whole), options: options)
            onPart(1, Int64(whole.count))
            return Result(info: info, size: Int64(whole.count), partCount: 1, partSize: partSize)
        }
        let uploadId = try await create(key: key)
        do {
            let parts = try await withThrowingTaskGroup(of: CompletedPart.self) { group in
                var parts: [CompletedPart] = []
                var number = 0
                var inFlight = 0
                while let data = next {
                    next = nil
                    number += 1
                    guard number <= Self.maxParts else {
                        throw CairnError(.storage, "\(store.displayName)\(key): the stream needs more than 10,000 parts of \(partSize) bytes")
                    }
                    let n = number
                    let store = self.store, logger = self.logger
                    group.addTask {
                        let start = ContinuousClock.now
                        let p = try await store.uploadPart(key: key, uploadId: uploadId, partNumber: n, body: .data(data))
                        logger.debug("part stored", metadata: ["part": "\(n)", "bytes": "\(data.count)", "seconds": "\(Self.seconds(since: start))"])
                        onPart(n, Int64(data.count))
                        return p
                    }
                    inFlight += 1
                    if inFlight >= concurrency, let p = try await group.next() {
                        parts.append(p)
                        inFlight -= 1
                    }
                    let d = try await input.read(exactly: partSize, carry: &carry, pool: pool)
                    next = d.isEmpty ? nil : d   // a short read is the last part
                }
                for try await p in group { parts.append(p) }
                return parts.sorted { $0.partNumber < $1.partNumber }
            }
            let info = try await complete(key: key, uploadId: uploadId, parts: parts)
            let size = parts.reduce(Int64(0)) { $0 + $1.size }
            return Result(info: info, size: size, partCount: parts.count, partSize: partSize)
        } catch {
            input.cancel(error)
            await abort(key: key, uploadId: uploadId)
            throw error
        }
    }

    /// Uploads a regular file of known `size` straight from disk: each part
    /// is a `.file` range that the HTTP layer reads while it sends, so memory
    /// does not grow with the part size or the concurrency (`cairn storage
    /// put`). The file must not change during the upload. Parts as `upload(key:from:)`:
    /// equal, the last may be shorter; a file of at most one part is one PUT.
    public func upload(key: String, file path: String, size: Int64,
                       onPart: @escaping @Sendable (_ partNumber: Int, _ bytes: Int64) -> Void = { _, _ in }) async throws -> Result {
        let partSize = Self.partSize(forUpperBound: size, preferred: self.partSize)
        let part = Int64(partSize)
        if size <= part {
            let info = try await store.put(key: key, body: .file(path: path, offset: 0, length: size), options: options)
            onPart(1, size)
            return Result(info: info, size: size, partCount: 1, partSize: partSize)
        }
        let count = Int((size + part - 1) / part)
        let store = self.store, concurrency = self.concurrency
        let uploadId = try await create(key: key)
        do {
            let parts = try await withThrowingTaskGroup(of: CompletedPart.self) { group in
                var parts: [CompletedPart] = []
                var inFlight = 0
                for n in 1...count {
                    let offset = Int64(n - 1) * part
                    let length = min(part, size - offset)
                    group.addTask {
                        let p = try await store.uploadPart(key: key, uploadId: uploadId, partNumber: n,
                                                           body: .file(path: path, offset: offset, length: length))
                        onPart(n, length)
                        return p
                    }
                    inFlight += 1
                    if inFlight >= concurrency, let p = try await group.next() {
                        parts.append(p)
                        inFlight -= 1
                    }
                }
                for try await p in group { parts.append(p) }
                return parts.sorted { $0.partNumber < $1.partNumber }
            }
            let info = try await complete(key: key, uploadId: uploadId, parts: parts)
            return Result(info: info, size: size, partCount: parts.count, partSize: partSize)
        } catch {
            await abort(key: key, uploadId: uploadId)
            throw error
        }
    }

    /// Starts the multipart upload. Not cancellable: a CreateMultipartUpload
    /// cancelled in flight may have created an upload whose id never arrives,
    /// which nothing could abort. It always completes; a cancelled caller then
    /// aborts the upload it created and gets `CancellationError`.
    private func create(key: String) async throws -> String {
        let store = self.store, options = self.options
        let uploadId = try await Task.detached { try await store.createMultipartUpload(key: key, options: options) }.value
        logger.debug("multipart upload started", metadata: ["key": "\(key)", "upload": "\(uploadId)"])
        if Task.isCancelled {
            await abort(key: key, uploadId: uploadId)
            throw CancellationError()
        }
        return uploadId
    }

    private func complete(key: String, uploadId: String, parts: [CompletedPart]) async throws -> ObjectInfo {
        let start = ContinuousClock.now
        let info = try await store.completeMultipartUpload(key: key, uploadId: uploadId, parts: parts)
        logger.debug("multipart upload completed", metadata: ["key": "\(key)", "parts": "\(parts.count)", "seconds": "\(Self.seconds(since: start))"])
        return info
    }

    static func seconds(since start: ContinuousClock.Instant) -> String {
        String(format: "%.3f", (ContinuousClock.now - start).inSeconds)
    }

    /// Aborts an upload, even from a cancelled task (the abort must still go out).
    func abort(key: String, uploadId: String) async {
        let store = self.store
        let logger = self.logger
        await Task.detached {
            do {
                try await store.abortMultipartUpload(key: key, uploadId: uploadId)
                logger.info("multipart upload aborted", metadata: ["key": "\(key)", "upload": "\(uploadId)"])
            } catch {
                logger.error("could not abort multipart upload; retention will clean it up", metadata: ["key": "\(key)", "upload": "\(uploadId)", "error": "\(error)"])
            }
        }.value
    }
}
