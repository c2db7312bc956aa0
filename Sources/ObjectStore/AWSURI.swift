import Foundation

/// URI encoding exactly as AWS Signature Version 4 and S3 define it.
///
/// Foundation's `URL`/`addingPercentEncoding` use other character sets (they
/// keep `+`, `$`, `&`, `=`...), so Cairn builds every request path and query
/// with these functions and never lets Foundation re-encode a URL.
public enum AWSURI {
    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// RFC 3986 unreserved characters: `A-Z a-z 0-9 - _ . ~`.
    @inline(__always)
    static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Percent-encodes every byte of the UTF-8 form of `s` except the
    /// unreserved characters (and `/` when `encodeSlash` is false), with
    /// upper-case hex digits.
    public static func encode(_ s: String, encodeSlash: Bool) -> String {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            if isUnreserved(b) || (!encodeSlash && b == UInt8(ascii: "/")) {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (either case of hex). `+` stays `+`: AWS
    /// canonicalisation is RFC 3986, not HTML form encoding. A `%` not
    /// followed by two hex digits is kept literally. Bytes that do not form
    /// valid UTF-8 become U+FFFD.
    public static func decode(_ s: String) -> String {
        let bytes = Array(s.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return s }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let hi = hex(bytes[i + 1]), let lo = hex(bytes[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The SigV4 canonical query string of a raw (encoded) query string
    /// (without the leading `?`): split on `&`, each pair on its first `=`
    /// (a missing `=` means an empty value), percent-decode, re-encode
    /// (encoding `/` too), sort by encoded name then encoded value, join
    /// with `&`. Empty components (`a&&b`) are dropped.
    ///
    /// A literal `+` is taken as `+` (encoded `%2B`), never as a space; Cairn
    /// always sends `%2B` / `%20` so the server cannot read it differently.
    public static func canonicalQuery(_ rawQuery: String) -> String {
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        for component in rawQuery.split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring
            let value: Substring
            if let eq = component.firstIndex(of: "=") {
                name = component[..<eq]
                value = component[component.index(after: eq)...]
            } else {
                name = component
                value = ""
            }
            pairs.append((Array(encode(decode(String(name)), encodeSlash: true).utf8),
                          Array(encode(decode(String(value)), encodeSlash: true).utf8)))
        }
        pairs.sort { a, b in
            if a.name != b.name { return a.name.lexicographicallyPrecedes(b.name) }
            return a.value.lexicographicallyPrecedes(b.value)
        }
        return pairs.map { String(decoding: $0.name, as: UTF8.self) + "=" + String(decoding: $0.value, as: UTF8.self) }
            .joined(separator: "&")
    }

    /// Builds a query string (encoded, in the given order) from decoded pairs.
    public static func query(_ items: [(String, String)]) -> String {
        items.map { encode($0.0, encodeSlash: true) + "=" + encode($0.1, encodeSlash: true) }.joined(separator: "&")
    }

    /// The encoded request path of an S3 object: `/bucket/key` (path style)
    /// or `/key` (virtual-hosted style, `bucket == nil`). The key is encoded
    /// with `/` kept, so any key (`a b+c%#?é`, `x//y`) round-trips; S3 does
    /// not normalise paths, and neither does the signer for service `s3`.
    /// An empty key gives the bucket itself: `/bucket` or `/`.
    ///
    /// Keys with `.` or `..` segments additionally need the HTTP client not
    /// to squash dot segments (curl: `CURLOPT_PATH_AS_IS`).
    public static func objectPath(bucket: String?, key: String) -> String {
        let encodedKey = encode(key, encodeSlash: false)
        guard let bucket, !bucket.isEmpty else { return "/" + encodedKey }
        let b = "/" + encode(bucket, encodeSlash: true)
        return key.isEmpty ? b : b + "/" + encodedKey
    }
}
