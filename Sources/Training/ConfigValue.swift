import Foundation

/// The type of one config key. The schema fixes it, so a YAML scalar is read as what the key
/// expects instead of whatever YAML's own resolver guesses (`1e-4` is a string in YAML 1.1).
public enum ConfigType: String, Sendable, Equatable, CustomStringConvertible {
    /// A whole number.
    case int = "Int"
    /// A real number; whole numbers are accepted (`BASE_LR: 1`).
    case double = "Double"
    /// `true` or `false`.
    case bool = "Bool"
    /// Any unquoted or quoted scalar.
    case string = "String"
    /// A list of whole numbers (`[2, 2, 3]`, or `2,2,3` on the command line).
    case intList = "[Int]"
    /// A list of real numbers.
    case doubleList = "[Double]"

    /// The type's name as the schema and the errors spell it.
    public var description: String { rawValue }
}

/// One typed config value.
public enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    /// An `Int` value.
    case int(Int)
    /// A `Double` value.
    case double(Double)
    /// A `Bool` value.
    case bool(Bool)
    /// A `String` value.
    case string(String)
    /// An `[Int]` value.
    case intList([Int])
    /// A `[Double]` value.
    case doubleList([Double])

    /// The value's type.
    public var type: ConfigType {
        switch self {
        case .int: return .int
        case .double: return .double
        case .bool: return .bool
        case .string: return .string
        case .intList: return .intList
        case .doubleList: return .doubleList
        }
    }

    /// The value as YAML flow text, as the resolved dump writes it. Doubles use Swift's shortest
    /// round-trip spelling, so dumping and reloading gives back the same bits.
    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return ConfigValue.format(v)
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return ConfigValue.quote(v)
        case .intList(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .doubleList(let v): return "[" + v.map(ConfigValue.format).joined(separator: ", ") + "]"
        }
    }

    /// Shortest round-trip spelling, always with a '.' or exponent so a reader sees a real number.
    static func format(_ v: Double) -> String {
        let s = "\(v)"
        return s.contains(".") || s.contains("e") || s.contains("n") || s.contains("i") ? s : s + ".0"
    }

    /// Double-quoted YAML string, escaping what YAML's double-quoted style needs, so every string
    /// (even `yes`, `1.0` or one with ': ') survives the dump as a string.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 { out += String(format: "\\x%02X", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
