import Foundation

/// The item of a COCO file an error is about, so every message names what to fix.
public enum COCOItem: Hashable, Sendable, CustomStringConvertible {
    /// The file as a whole (its top-level structure).
    case file
    /// An entry of `images`, by its `id` (or by position while the id is unknown).
    case image(id: Int)
    /// An entry of `categories`, by its `id`.
    case category(id: Int)
    /// An entry of `annotations`, by its `id`.
    case annotation(id: Int)
    /// An entry of a list by 0-based position, used before the entry's id is known or when it has none
    /// (results have no ids in the file).
    case entry(list: String, index: Int)

    /// The message, naming the file and item.
    public var description: String {
        switch self {
        case .file: return "top level"
        case .image(let id): return "image id \(id)"
        case .category(let id): return "category id \(id)"
        case .annotation(let id): return "annotation id \(id)"
        case .entry(let list, let index): return "\(list)[\(index)]"
        }
    }
}

/// Errors of the COCO reader, mask API and evaluator. Each names the file and item it is about.
public enum COCOError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be read at all (missing, unreadable).
    case unreadableFile(path: String, reason: String)
    /// The file is not valid JSON; `offset` is the byte offset Foundation reported, when it did.
    case malformedJSON(path: String, offset: Int?, message: String)
    /// A required key is absent (or null).
    case missingField(path: String, item: COCOItem, field: String)
    /// A key is present but its value has the wrong type or an impossible value.
    case invalidField(path: String, item: COCOItem, field: String, reason: String)
    /// An annotation or result refers to an image id that the ground truth does not have.
    case unknownImage(path: String, item: COCOItem, imageID: Int)
    /// An annotation or result refers to a category id that the ground truth does not have.
    case unknownCategory(path: String, item: COCOItem, categoryID: Int)
    /// Two entries of one list share an id.
    case duplicateID(path: String, item: COCOItem)
    /// An RLE whose counts string cannot be decoded or whose counts do not cover h·w pixels.
    case malformedRLE(path: String, item: COCOItem, reason: String)
    /// A polygon part with fewer than 3 points (rasterising it is refused, see `RLE(polygon:)`).
    case degeneratePolygon(path: String, item: COCOItem, points: Int)
    /// Something the evaluator needs is absent (for example a segmentation in segm mode).
    case evaluation(String)

    /// The message, naming the file and item.
    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .malformedJSON(let path, let offset, let message):
            let at = offset.map { " at byte \($0)" } ?? ""
            return "\(path): malformed JSON\(at): \(message)"
        case .missingField(let path, let item, let field):
            return "\(path): \(item): missing required field '\(field)'"
        case .invalidField(let path, let item, let field, let reason):
            return "\(path): \(item): field '\(field)' \(reason)"
        case .unknownImage(let path, let item, let imageID):
            return "\(path): \(item): refers to image id \(imageID), which the ground truth does not have"
        case .unknownCategory(let path, let item, let categoryID):
            return "\(path): \(item): refers to category id \(categoryID), which the ground truth does not have"
        case .duplicateID(let path, let item):
            return "\(path): \(item) appears more than once"
        case .malformedRLE(let path, let item, let reason):
            return "\(path): \(item): malformed RLE: \(reason)"
        case .degeneratePolygon(let path, let item, let points):
            return "\(path): \(item): polygon with \(points) point(s); at least 3 are needed"
        case .evaluation(let message):
            return message
        }
    }
}

/// A mask-level failure without file context (the readers wrap it into `COCOError.malformedRLE`).
public struct RLEFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong, in words.
    public let reason: String
    /// Wraps a reason.
    public init(_ reason: String) { self.reason = reason }
    /// The message, naming the file and item.
    public var description: String { reason }
}
