import Foundation

/// Reads and parses a JSON file, turning failures into `COCOError`s with the path and, for syntax
/// errors, the byte offset.
func loadJSON(path: String) throws -> JSONValue {
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        let reason = FileManager.default.fileExists(atPath: path) ? "\(error.localizedDescription)" : "no such file"
        throw COCOError.unreadableFile(path: path, reason: reason)
    }
    return try parseJSON(data, path: path)
}

/// Parses JSON bytes; `path` names the source in errors.
func parseJSON(_ data: Data, path: String) throws -> JSONValue {
    do {
        return try JSONParser.parse(data)
    } catch let e as JSONSyntaxError {
        throw COCOError.malformedJSON(path: path, offset: e.offset, message: e.message)
    }
}

/// Typed access to one JSON object of a COCO file, naming the item in every error.
struct JSONObject {
    let value: JSONValue
    let path: String
    var item: COCOItem

    init(_ value: JSONValue, path: String, item: COCOItem) throws {
        guard case .object = value else {
            throw COCOError.invalidField(path: path, item: item, field: "(entry)", reason: "is not a JSON object (\(value.brief))")
        }
        self.value = value; self.path = path; self.item = item
    }

    /// Whether `key` is present and not null.
    func has(_ key: String) -> Bool {
        if let v = value[key], case .null = v { return false }
        return value[key] != nil
    }

    func raw(_ key: String) throws -> JSONValue {
        guard let v = value[key] else { throw COCOError.missingField(path: path, item: item, field: key) }
        if case .null = v { throw COCOError.missingField(path: path, item: item, field: key) }
        return v
    }

    func invalid(_ key: String, _ reason: String) -> COCOError {
        COCOError.invalidField(path: path, item: item, field: key, reason: reason)
    }

    /// An integer; numbers with an integral value are accepted (Python writes 1.0 for some ids).
    func int(_ key: String) throws -> Int {
        let v = try raw(key)
        guard case .number(let d) = v, d.rounded() == d, abs(d) < 9.0e15 else { throw invalid(key, "is not an integer (\(v.brief))") }
        return Int(d)
    }

    func double(_ key: String) throws -> Double {
        let v = try raw(key)
        guard case .number(let d) = v else { throw invalid(key, "is not a number (\(v.brief))") }
        return d
    }

    func string(_ key: String) throws -> String {
        let v = try raw(key)
        guard case .string(let s) = v else { throw invalid(key, "is not a string (\(v.brief))") }
        return s
    }

    /// A boolean written as 0/1 or true/false (COCO writes `iscrowd` as 0/1).
    func flag(_ key: String, default fallback: Bool) throws -> Bool {
        guard has(key) else { return fallback }
        switch try raw(key) {
        case .number(let d): return d != 0
        case .bool(let b): return b
        case let v: throw invalid(key, "is not 0/1 or a boolean (\(v.brief))")
        }
    }

    func list(_ key: String) throws -> [JSONValue] {
        let v = try raw(key)
        guard case .array(let a) = v else { throw invalid(key, "is not a list (\(v.brief))") }
        return a
    }

    func doubles(_ key: String, count: Int? = nil) throws -> [Double] {
        guard let out = JSONObject.numbers(try list(key)) else { throw invalid(key, "is not a list of numbers") }
        if let count, out.count != count { throw invalid(key, "has \(out.count) numbers, expected \(count)") }
        return out
    }

    /// The values of a list of numbers, nil when any item is not a number.
    static func numbers(_ a: [JSONValue]) -> [Double]? {
        var out: [Double] = []
        out.reserveCapacity(a.count)
        for x in a {
            guard case .number(let d) = x else { return nil }
            out.append(d)
        }
        return out
    }
}
