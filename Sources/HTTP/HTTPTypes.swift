import Foundation
import Core

/// Case-insensitive, order-preserving HTTP header list.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(name: String, value: String)] = []

    public init() {}
    public init(_ entries: [(String, String)]) { self.entries = entries.map { (name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    public subscript(_ name: String) -> String? {
        get { entries.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value }
        set {
            entries.removeAll { $0.name.caseInsensitiveCompare(name) == .orderedSame }
            if let newValue { entries.append((name: name, value: newValue)) }
        }
    }

    public mutating func add(_ name: String, _ value: String) { entries.append((name: name, value: value)) }

    /// All values of a header, in order.
    public func values(_ name: String) -> [String] {
        entries.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { entries.makeIterator() }
}

/// Where a request body comes from. Every source has a known length, so no
/// chunked transfer encoding is ever used (S3 does not accept it).
public enum HTTPRequestBody: Sendable {
    case empty
    case data(Data)
    /// `length` bytes of a local file starting at `offset`.
    case file(path: String, offset: Int64, length: Int64)
    /// `length` bytes of an already open file starting at `offset`, read with
    /// `pread` (the descriptor's position is not used, so it can be shared).
    case descriptor(OpenFile, offset: Int64, length: Int64)
    /// Bytes produced by another stage; exactly `length` bytes must arrive.
    case channel(ByteChannel, length: Int64)

    public var length: Int64 {
        switch self {
        case .empty: return 0
        case .data(let d): return Int64(d.count)
        case .file(_, _, let l): return l
        case .descriptor(_, _, let l): return l
        case .channel(_, let l): return l
        }
    }
}

public struct HTTPRequest: Sendable {
    public var method: String
    /// Fully encoded URL (scheme, host, path, query).
    public var url: String
    public var headers: HTTPHeaders
    public var body: HTTPRequestBody

    public init(method: String, url: String, headers: HTTPHeaders = HTTPHeaders(), body: HTTPRequestBody = .empty) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// The URL without its query string: safe to log (presigned URLs carry signatures there).
    public var redactedURL: String {
        if let q = url.firstIndex(of: "?") { return String(url[..<q]) }
        return url
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: Data

    public init(status: Int, headers: HTTPHeaders, body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var isSuccess: Bool { (200..<300).contains(status) }
}

/// A response whose body arrives as a stream. For a non-2xx status the body
/// is buffered (bounded) and already complete in the channel.
public struct HTTPStreamingResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: ByteChannel

    public var isSuccess: Bool { (200..<300).contains(status) }

    /// Reads the whole body (bounded by `limit`), for small or error responses.
    public func collect(limit: Int = 1 << 20) async throws -> Data {
        var out = Data()
        while let d = try await body.receive() {
            if out.count < limit { out.append(d.prefix(limit - out.count)) }
        }
        return out
    }
}
