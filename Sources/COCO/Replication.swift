import Foundation

/// A larger COCO set made from a small one: the images, annotations and results are copied
/// `copies` times, each copy with fresh image and annotation ids.
///
/// Used to time the evaluator at a realistic scale (5000 images, as val2017) from the 100-image
/// golden excerpt, without shipping a large file. It works on the JSON text rather than on
/// `COCODataset`, so every field the source holds (file names, polygons, RLE in either form,
/// extra keys) reaches the copy unchanged and other tools (pycocotools) can read the same files.
public struct COCOReplica: Sendable {
    /// Ground-truth instances JSON of the enlarged set.
    public let groundTruth: Data
    /// Each results JSON of the source, enlarged the same way (same order as given).
    public let results: [Data]
    /// Number of images in the enlarged set.
    public let imageCount: Int
    /// Number of annotations in the enlarged set.
    public let annotationCount: Int

    /// Copies `groundTruth` (an instances JSON) and `results` (results JSON lists) `copies` times.
    ///
    /// Copy `c` (from 0) gives image id `id + c·S` and annotation id `id + c·A`, where S and A are
    /// one more than the largest image and annotation id of the source, so the ids of copy 0 are the
    /// source's own and no two copies collide. Results follow their image; a result's own `id`, if
    /// it has one, is renumbered like an annotation's.
    /// - Parameters:
    ///   - groundTruthPath, resultsPaths: name the sources in errors.
    /// - Throws: `COCOError.malformedJSON` for invalid JSON (with the byte offset), and
    ///   `COCOError.evaluation` naming the source for one that is not an instances file (no
    ///   `images`/`annotations` lists, an entry without an integer id) or not a results list, or for
    ///   `copies < 1`.
    public init(groundTruth: Data, results: [Data], copies: Int,
                groundTruthPath: String = "<ground truth>", resultsPaths: [String]? = nil) throws {
        guard copies >= 1 else { throw COCOError.evaluation("replication needs at least 1 copy, not \(copies)") }
        let gt = try parseJSON(groundTruth, path: groundTruthPath)
        guard case .object(let members) = gt, case .array(let images)? = gt["images"],
              case .array(let annotations)? = gt["annotations"] else {
            throw COCOError.evaluation("\(groundTruthPath): not a COCO instances file (needs 'images' and 'annotations' lists)")
        }
        let imageStride = try Self.maxID(images, key: "id", path: groundTruthPath, what: "images") + 1
        let annotationStride = try Self.maxID(annotations, key: "id", path: groundTruthPath, what: "annotations") + 1

        var enlarged: [(key: String, value: JSONValue)] = []
        for m in members {
            switch m.key {
            case "images":
                enlarged.append((m.key, .array(Self.copy(images, copies: copies, shifts: ["id": imageStride]))))
            case "annotations":
                enlarged.append((m.key, .array(Self.copy(annotations, copies: copies,
                                                          shifts: ["id": annotationStride, "image_id": imageStride]))))
            default:
                enlarged.append(m)
            }
        }
        var writer = JSONWriter()
        writer.write(.object(enlarged))
        self.groundTruth = Data(writer.bytes)
        self.imageCount = images.count * copies
        self.annotationCount = annotations.count * copies

        let names = resultsPaths ?? results.indices.map { "<results \($0)>" }
        self.results = try results.enumerated().map { i, data in
            let name = i < names.count ? names[i] : "<results \(i)>"
            guard case .array(let items) = try parseJSON(data, path: name) else {
                throw COCOError.evaluation("\(name): a results file must be a JSON list")
            }
            var w = JSONWriter()
            w.write(.array(Self.copy(items, copies: copies, shifts: ["image_id": imageStride, "id": annotationStride])))
            return Data(w.bytes)
        }
    }

    /// The largest integer `key` of `items` (0 for an empty list), so ids above it are free.
    private static func maxID(_ items: [JSONValue], key: String, path: String, what: String) throws -> Int {
        var best = 0
        for (i, item) in items.enumerated() {
            guard case .number(let d)? = item[key], d == d.rounded(), abs(d) < 1e15 else {
                throw COCOError.evaluation("\(path): \(what)[\(i)] has no integer '\(key)'")
            }
            best = max(best, Int(d))
        }
        return best
    }

    /// `items` repeated `copies` times; in copy c each member named in `shifts` (when it is a
    /// number) is increased by c times its shift.
    private static func copy(_ items: [JSONValue], copies: Int, shifts: [String: Int]) -> [JSONValue] {
        var out: [JSONValue] = []
        out.reserveCapacity(items.count * copies)
        for c in 0..<copies {
            for item in items {
                guard c > 0, case .object(let members) = item else { out.append(item); continue }
                out.append(.object(members.map { m in
                    if let shift = shifts[m.key], case .number(let d) = m.value { return (m.key, .number(d + Double(c * shift))) }
                    return m
                }))
            }
        }
        return out
    }
}

/// Serialises a `JSONValue` back to JSON text that Python's json and this package's parser read as
/// the same values: integral numbers (below 2⁵³) as integers, because pycocotools needs integer RLE
/// counts and ids; other numbers in Swift's shortest round-trip form.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let b): append(b ? "true" : "false")
        case .number(let d):
            if d == d.rounded(), abs(d) < 9_007_199_254_740_992, !(d == 0 && d.sign == .minus) {
                append(String(Int64(d)))
            } else {
                append("\(d)")
            }
        case .string(let s): writeString(s)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                write(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (i, m) in members.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                writeString(m.key)
                bytes.append(UInt8(ascii: ":"))
                write(m.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    private mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// A JSON string literal: quotes, backslashes and control characters escaped, the rest as UTF-8.
    private mutating func writeString(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\\"): append("\\\\")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0..<0x20: append(String(format: "\\u%04x", Int(b)))
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
