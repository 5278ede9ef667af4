import Foundation

/// A parsed JSON value. Objects keep their members in file order (COCO objects have a handful of
/// keys, so a linear lookup beats building a dictionary per annotation).
enum JSONValue {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// The member `key` of an object, nil for other values or a missing key.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        for m in members where m.key == key { return m.value }
        return nil
    }

    /// A short rendering for error messages.
    var brief: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .number(let d): return "\(d)"
        case .string(let s): return s.count > 30 ? "\"\(s.prefix(30))…\"" : "\"\(s)\""
        case .array(let a): return "a list of \(a.count)"
        case .object: return "an object"
        }
    }
}

/// A JSON syntax error at a byte offset.
struct JSONSyntaxError: Error {
    let offset: Int
    let message: String
}

/// A small strict JSON parser (RFC 8259) over bytes.
///
/// Foundation's JSONSerialization on Linux is slow for COCO files (0.2 s for the 0.5 MB golden file)
/// and hands long numbers over as NSDecimalNumber whose `doubleValue` can be off in the last bit;
/// this parser gives every number as the correctly rounded double (as Python's json) and reports
/// errors with their byte offset.
struct JSONParser {
    private let bytes: [UInt8]
    private var p = 0

    /// Parses a whole document.
    static func parse(_ data: Data) throws -> JSONValue {
        var parser = JSONParser(bytes: [UInt8](data) + [0])
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.p == parser.bytes.count - 1 else { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: p, message: message) }

    private var atEnd: Bool { p >= bytes.count - 1 }

    private mutating func skipSpace() {
        while true {
            let c = bytes[p]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { p += 1 } else { return }
        }
    }

    private mutating func value(depth: Int) throws -> JSONValue {
        guard depth < 512 else { throw error("nesting deeper than 512 levels") }
        if atEnd { throw error("unexpected end of file") }
        switch bytes[p] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[p])))'")
        }
    }

    private mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        let n = w.count
        for i in 0..<n where p + i >= bytes.count - 1 || bytes[p + i] != w[i] { throw error("invalid literal") }
        p += n
    }

    private mutating func array(depth: Int) throws -> JSONValue {
        p += 1
        var items: [JSONValue] = []
        skipSpace()
        if bytes[p] == UInt8(ascii: "]") { p += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            switch bytes[p] {
            case UInt8(ascii: ","): p += 1
            case UInt8(ascii: "]"): p += 1; return .array(items)
            default: throw error(atEnd ? "unexpected end of file inside a list" : "expected ',' or ']' in a list")
            }
        }
    }

    private mutating func object(depth: Int) throws -> JSONValue {
        p += 1
        var members: [(key: String, value: JSONValue)] = []
        skipSpace()
        if bytes[p] == UInt8(ascii: "}") { p += 1; return .object(members) }
        while true {
            skipSpace()
            guard bytes[p] == UInt8(ascii: "\"") else { throw error(atEnd ? "unexpected end of file inside an object" : "expected a string key") }
            let key = try string()
            skipSpace()
            guard bytes[p] == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
            p += 1
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            skipSpace()
            switch bytes[p] {
            case UInt8(ascii: ","): p += 1
            case UInt8(ascii: "}"): p += 1; return .object(members)
            default: throw error(atEnd ? "unexpected end of file inside an object" : "expected ',' or '}' in an object")
            }
        }
    }

    private mutating func string() throws -> String {
        p += 1
        let start = p
        // Fast path: no escapes.
        while true {
            let c = bytes[p]
            if c == UInt8(ascii: "\"") {
                let s = bytes.withUnsafeBufferPointer { String(decoding: $0[start..<p], as: UTF8.self) }
                p += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 {
                if atEnd { throw error("unexpected end of file inside a string") }
                throw error("control character in a string")
            }
            p += 1
        }
        var out = Array(bytes[start..<p])
        while true {
            let c = bytes[p]
            if c == UInt8(ascii: "\"") { p += 1; return String(decoding: out, as: UTF8.self) }
            if c < 0x20 {
                if atEnd { throw error("unexpected end of file inside a string") }
                throw error("control character in a string")
            }
            if c != UInt8(ascii: "\\") { out.append(c); p += 1; continue }
            p += 1
            switch bytes[p] {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar), bytes[p + 1] == UInt8(ascii: "\\"), bytes[p + 2] == UInt8(ascii: "u") {
                    p += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                out.append(contentsOf: Array(String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8))
            default: throw error("invalid escape in a string")
            }
            p += 1
        }
    }

    /// Reads the 4 hex digits after `\u`, leaving `p` on the last one.
    private mutating func hex4() throws -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            p += 1
            let c = bytes[p]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - 48
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - 87
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - 55
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    private static let powersOf10: [Double] = (0...22).map { pow(10.0, Double($0)) }

    /// A number, correctly rounded. Up to 15 significant digits with a decimal exponent of at most 22
    /// take the exact fast path (both operands are exact doubles, so one multiply or divide rounds
    /// correctly); anything else goes through strtod, which glibc rounds correctly.
    private mutating func number() throws -> Double {
        let start = p
        var negative = false
        if bytes[p] == UInt8(ascii: "-") { negative = true; p += 1 }
        var mantissa: UInt64 = 0, digits = 0, scale = 0
        guard (48...57).contains(bytes[p]) else { throw error("invalid number") }
        if bytes[p] == 48 {
            p += 1
        } else {
            while (48...57).contains(bytes[p]) { mantissa = mantissa &* 10 &+ UInt64(bytes[p] - 48); digits += 1; p += 1 }
        }
        if bytes[p] == UInt8(ascii: ".") {
            p += 1
            guard (48...57).contains(bytes[p]) else { throw error("invalid number: no digits after '.'") }
            while (48...57).contains(bytes[p]) {
                mantissa = mantissa &* 10 &+ UInt64(bytes[p] - 48); scale += 1
                if mantissa != 0 { digits += 1 }
                p += 1
            }
        }
        var hasExponent = false
        if bytes[p] == UInt8(ascii: "e") || bytes[p] == UInt8(ascii: "E") {
            hasExponent = true
            p += 1
            if bytes[p] == UInt8(ascii: "+") || bytes[p] == UInt8(ascii: "-") { p += 1 }
            guard (48...57).contains(bytes[p]) else { throw error("invalid number: no exponent digits") }
            while (48...57).contains(bytes[p]) { p += 1 }
        }
        if !hasExponent && digits <= 15 && scale <= 22 {
            let m = Double(mantissa)
            let v = scale == 0 ? m : m / JSONParser.powersOf10[scale]
            return negative ? -v : v
        }
        return bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.advanced(by: start).withMemoryRebound(to: CChar.self, capacity: p - start + 1) { strtod($0, nil) }
        }
    }
}
