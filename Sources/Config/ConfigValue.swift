import Foundation
import TOMLKit

/// A TOML value, copied out of TOMLKit into a plain `Sendable` tree so that
/// the rest of the module does not hold on to toml++ nodes.
public indirect enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    /// A date, time or date-time, kept as its TOML text.
    case dateTime(String)
    case array([ConfigValue])
    case table([String: ConfigValue])

    /// The TOML type name used in "expected …, got …" messages.
    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a floating-point number"
        case .bool: return "a boolean"
        case .dateTime: return "a date/time"
        case .array: return "an array"
        case .table: return "a table"
        }
    }

    /// Tables are described by their keys only, so that an opaque table (such as
    /// `[alerts]`, which may hold tokens) never prints a value.
    public var description: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        case .dateTime(let s): return s
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .table(let t): return "{" + t.keys.sorted().joined(separator: ", ") + "}"
        }
    }

    init(_ v: any TOMLValueConvertible) {
        switch v.type {
        case .string: self = .string(v.string ?? "")
        case .int: self = .int(v.int ?? 0)
        case .double: self = .double(v.double ?? 0)
        case .bool: self = .bool(v.bool ?? false)
        case .date, .time, .dateTime: self = .dateTime(v.debugDescription)
        case .array:
            var items: [ConfigValue] = []
            if let a = v.array { for item in a { items.append(ConfigValue(item)) } }
            self = .array(items)
        case .table:
            self = .table(v.table.map(ConfigValue.tableDictionary) ?? [:])
        }
    }

    static func tableDictionary(_ t: TOMLTable) -> [String: ConfigValue] {
        var out: [String: ConfigValue] = [:]
        for (k, v) in t { out[k] = ConfigValue(v) }
        return out
    }
}

/// A parsed TOML document, or the syntax error that prevented parsing.
enum TOMLDocument {
    struct SyntaxError: Error {
        var message: String
        var line: Int
        var column: Int
    }

    static func parse(_ text: String) -> Result<[String: ConfigValue], SyntaxError> {
        do {
            let table = try TOMLTable(string: text)
            return .success(ConfigValue.tableDictionary(table))
        } catch let e as TOMLParseError {
            let oneLine = e.description.split(whereSeparator: \.isNewline).joined(separator: " ")
            return .failure(SyntaxError(message: oneLine, line: e.source.begin.line, column: e.source.begin.column))
        } catch {
            return .failure(SyntaxError(message: "\(error)", line: 1, column: 1))
        }
    }
}
