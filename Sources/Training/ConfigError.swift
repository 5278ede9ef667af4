/// Why a config could not be loaded. Every case names where the problem is (a file, or
/// "command line" for overrides) so that a run fails before any work with a message that points
/// at the line to fix.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    /// A key path the schema does not know, with the closest valid key by edit distance.
    case unknownKey(source: String, key: String, suggestion: String?)
    /// A value whose type is not the key's.
    case wrongType(source: String, key: String, expected: ConfigType, found: String)
    /// A value of the right type outside the key's allowed values.
    case invalidValue(source: String, key: String, value: String, allowed: [String])
    /// A number outside the key's range.
    case outOfRange(source: String, key: String, value: Double, range: ClosedRange<Double>)
    /// The same key twice in one mapping (YAML would silently keep one).
    case duplicateKey(source: String, key: String)
    /// A file Yams could not parse, with Yams' line and column (1-based) where it has them.
    case malformedYAML(source: String, line: Int?, column: Int?, problem: String)
    /// A file whose top level is not a mapping, or a group key given a scalar or list.
    case notAMapping(source: String, key: String)
    /// `_BASE_` inheritance that comes back to a file already being loaded; the chain in order.
    case baseCycle(chain: [String])
    /// A file (or `_BASE_` target) that cannot be read.
    case unreadable(source: String, reason: String)
    /// Command-line overrides that are not `KEY VALUE` pairs.
    case malformedOverrides(String)

    /// One line naming the source, the key and the fix.
    public var description: String {
        switch self {
        case let .unknownKey(source, key, suggestion):
            return "\(source): unknown config key \(key)" + (suggestion.map { " (did you mean \($0)?)" } ?? "")
        case let .wrongType(source, key, expected, found):
            return "\(source): \(key) must be \(expected), got \(found)"
        case let .invalidValue(source, key, value, allowed):
            return "\(source): \(key) = \(value) is not one of \(allowed.joined(separator: ", "))"
        case let .outOfRange(source, key, value, range):
            func show(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }
            return "\(source): \(key) = \(show(value)) is outside \(show(range.lowerBound))…\(show(range.upperBound))"
        case let .duplicateKey(source, key):
            return "\(source): duplicate key \(key)"
        case let .malformedYAML(source, line, column, problem):
            let at = line.map { ":\($0)" + (column.map { ":\($0)" } ?? "") } ?? ""
            return "\(source)\(at): malformed YAML: \(problem)"
        case let .notAMapping(source, key):
            return "\(source): \(key.isEmpty ? "the top level" : key) must be a mapping of keys"
        case let .baseCycle(chain):
            return "_BASE_ cycle: " + chain.joined(separator: " -> ")
        case let .unreadable(source, reason):
            return "\(source): cannot read: \(reason)"
        case let .malformedOverrides(message):
            return "command line: \(message)"
        }
    }
}
