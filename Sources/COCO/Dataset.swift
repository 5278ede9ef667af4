import Foundation

/// One entry of `images` (only what evaluation and training need).
public struct COCOImage: Hashable, Sendable {
    /// The image id annotations refer to.
    public var id: Int
    /// `file_name`, empty when absent.
    public var fileName: String
    /// Height in pixels (masks of this image's polygons have this many rows).
    public var height: Int
    /// Width in pixels.
    public var width: Int

    /// An image record.
    public init(id: Int, fileName: String = "", height: Int, width: Int) {
        self.id = id; self.fileName = fileName; self.height = height; self.width = width
    }
}

/// One entry of `categories`. COCO ids are not contiguous (80 ids in 1…90); `COCODataset` maps
/// them to contiguous indices in ascending id order.
public struct COCOCategory: Hashable, Sendable {
    /// The COCO category id.
    public var id: Int
    /// Human-readable name ("person").
    public var name: String
    /// `supercategory`, empty when absent.
    public var supercategory: String

    /// A category record.
    public init(id: Int, name: String, supercategory: String = "") {
        self.id = id; self.name = name; self.supercategory = supercategory
    }
}

/// An instance's shape as stored in COCO JSON.
public enum Segmentation: Hashable, Sendable {
    /// Polygon parts, each x1, y1, x2, y2, … in pixels, rasterised with the image's size.
    case polygons([[Double]])
    /// A run-length mask with its own size (uncompressed `counts` lists and compressed strings are
    /// both decoded into this).
    case rle(RLE)
}

/// A ground-truth annotation or a loaded detection result (pycocotools keeps both as annotations).
public struct COCOAnnotation: Hashable, Sendable {
    /// Annotation id; results get 1, 2, … in file order, as `loadRes` assigns.
    public var id: Int
    /// The image it belongs to.
    public var imageID: Int
    /// Its COCO category id (not the contiguous index).
    public var categoryID: Int
    /// XYWH box in pixels.
    public var bbox: BoundingBox
    /// `area` (pixels²): the polygon area for ground truth, w·h or the mask area for results. Area
    /// ranges (small/medium/large) are decided on this value in both bbox and segm mode.
    public var area: Double
    /// Crowd regions are never matched as objects; detections on them are ignored.
    public var isCrowd: Bool
    /// The shape, nil when the file has none.
    public var segmentation: Segmentation?
    /// Detection confidence; nil for ground truth.
    public var score: Double?

    /// An annotation record.
    public init(id: Int, imageID: Int, categoryID: Int, bbox: BoundingBox, area: Double, isCrowd: Bool = false,
                segmentation: Segmentation? = nil, score: Double? = nil) {
        self.id = id; self.imageID = imageID; self.categoryID = categoryID; self.bbox = bbox
        self.area = area; self.isCrowd = isCrowd; self.segmentation = segmentation; self.score = score
    }
}

/// A COCO instances file: images, categories and annotations, with id ↔ index maps.
public struct COCODataset: Sendable {
    /// Where it was read from (used in error messages).
    public let path: String
    /// Images in file order.
    public let images: [COCOImage]
    /// Categories in ascending id order; a category's position here is its contiguous index.
    public let categories: [COCOCategory]
    /// Annotations in file order.
    public let annotations: [COCOAnnotation]
    private let imageIndexByID: [Int: Int]
    private let categoryIndexByID: [Int: Int]

    /// Builds a dataset, checking that ids are unique and that every annotation refers to a known
    /// image and category.
    /// - Parameter path: names the source in errors.
    public init(images: [COCOImage], categories: [COCOCategory], annotations: [COCOAnnotation],
                path: String = "<memory>") throws {
        var imageIndex: [Int: Int] = [:]
        imageIndex.reserveCapacity(images.count)
        for (i, image) in images.enumerated() {
            guard imageIndex.updateValue(i, forKey: image.id) == nil else {
                throw COCOError.duplicateID(path: path, item: .image(id: image.id))
            }
        }
        let sorted = categories.sorted { $0.id < $1.id }
        var categoryIndex: [Int: Int] = [:]
        for (i, category) in sorted.enumerated() {
            guard categoryIndex.updateValue(i, forKey: category.id) == nil else {
                throw COCOError.duplicateID(path: path, item: .category(id: category.id))
            }
        }
        // pycocotools indexes annotations by id in a dict, so a repeated id silently aliases two
        // annotations; refuse it instead.
        var seen = Set<Int>()
        seen.reserveCapacity(annotations.count)
        for a in annotations {
            guard seen.insert(a.id).inserted else { throw COCOError.duplicateID(path: path, item: .annotation(id: a.id)) }
            guard imageIndex[a.imageID] != nil else {
                throw COCOError.unknownImage(path: path, item: .annotation(id: a.id), imageID: a.imageID)
            }
            guard categoryIndex[a.categoryID] != nil else {
                throw COCOError.unknownCategory(path: path, item: .annotation(id: a.id), categoryID: a.categoryID)
            }
        }
        self.path = path
        self.images = images
        self.categories = sorted
        self.annotations = annotations
        self.imageIndexByID = imageIndex
        self.categoryIndexByID = categoryIndex
    }

    /// Reads an instances JSON file.
    /// - Throws: `COCOError` naming the file and the offending item.
    public init(contentsOf path: String) throws {
        try self.init(json: try loadJSON(path: path), path: path)
    }

    /// Parses instances JSON bytes; `path` names the source in errors.
    public init(jsonData: Data, path: String = "<memory>") throws {
        try self.init(json: try parseJSON(jsonData, path: path), path: path)
    }

    private init(json: JSONValue, path: String) throws {
        let top = try JSONObject(json, path: path, item: .file)
        func list(_ key: String) throws -> [JSONValue] { try top.list(key) }
        var images: [COCOImage] = []
        let rawImages = try list("images")
        images.reserveCapacity(rawImages.count)
        for (i, raw) in rawImages.enumerated() {
            var o = try JSONObject(raw, path: path, item: .entry(list: "images", index: i))
            let id = try o.int("id")
            o.item = .image(id: id)
            let h = try o.int("height"), w = try o.int("width")
            // Sizes beyond Int32 would overflow h·w arithmetic downstream; no image is that large.
            guard (0...Int(Int32.max)).contains(h), (0...Int(Int32.max)).contains(w) else {
                throw o.invalid("height/width", "is outside 0…\(Int32.max) (\(h)×\(w))")
            }
            images.append(COCOImage(id: id, fileName: o.has("file_name") ? try o.string("file_name") : "", height: h, width: w))
        }
        var categories: [COCOCategory] = []
        for (i, raw) in try list("categories").enumerated() {
            var o = try JSONObject(raw, path: path, item: .entry(list: "categories", index: i))
            let id = try o.int("id")
            o.item = .category(id: id)
            categories.append(COCOCategory(id: id, name: try o.string("name"),
                                           supercategory: o.has("supercategory") ? try o.string("supercategory") : ""))
        }
        var annotations: [COCOAnnotation] = []
        // A file with no `annotations` key (image-info files) is an empty set, as in pycocotools.
        let rawAnnotations = top.has("annotations") ? try list("annotations") : []
        annotations.reserveCapacity(rawAnnotations.count)
        for (i, raw) in rawAnnotations.enumerated() {
            var o = try JSONObject(raw, path: path, item: .entry(list: "annotations", index: i))
            let id = try o.int("id")
            o.item = .annotation(id: id)
            let b = try o.doubles("bbox", count: 4)
            annotations.append(COCOAnnotation(
                id: id, imageID: try o.int("image_id"), categoryID: try o.int("category_id"),
                bbox: BoundingBox(x: b[0], y: b[1], width: b[2], height: b[3]),
                area: try o.double("area"),
                // pycocotools needs `iscrowd`; a missing one means 0, as faster-coco-eval reads it.
                isCrowd: try o.flag("iscrowd", default: false),
                segmentation: o.has("segmentation") ? try parseSegmentation(o) : nil))
        }
        try self.init(images: images, categories: categories, annotations: annotations, path: path)
    }

    /// The position of an image id in `images`.
    public func imageIndex(id: Int) -> Int? { imageIndexByID[id] }

    /// The image with this id.
    public func image(id: Int) -> COCOImage? { imageIndexByID[id].map { images[$0] } }

    /// The contiguous index (0..<categories.count, ascending id order) of a COCO category id.
    public func categoryIndex(id: Int) -> Int? { categoryIndexByID[id] }

    /// The COCO category id of a contiguous index.
    public func categoryID(index: Int) -> Int { categories[index].id }

    /// The annotation's mask as pycocotools' `annToRLE`: polygon parts rasterised with the image's
    /// size and unioned; RLEs (compressed or not) used with their own size.
    /// - Parameters:
    ///   - source: the file named in errors (default: this dataset's path).
    ///   - item: the item named in errors (default: `annotation id N`).
    /// - Throws: `COCOError.degeneratePolygon` for a part with fewer than 3 points,
    ///   `COCOError.evaluation` when the annotation has no segmentation.
    public func mask(of annotation: COCOAnnotation, source: String? = nil, item: COCOItem? = nil) throws -> RLE {
        let path = source ?? self.path
        let item = item ?? .annotation(id: annotation.id)
        guard let segmentation = annotation.segmentation else {
            throw COCOError.missingField(path: path, item: item, field: "segmentation")
        }
        switch segmentation {
        case .rle(let rle):
            return rle
        case .polygons(let parts):
            guard let image = image(id: annotation.imageID) else {
                throw COCOError.unknownImage(path: path, item: item, imageID: annotation.imageID)
            }
            try checkPolygons(parts, image: image, item: item, path: path)
            do {
                return try RLE(polygons: parts, height: image.height, width: image.width)
            } catch let e as RLEFormatError {
                throw COCOError.invalidField(path: path, item: item, field: "segmentation",
                                             reason: e.reason)
            }
        }
    }
}

extension COCODataset {
    /// The checks `mask(of:)` makes before rasterising, without rasterising: a part with fewer than
    /// 3 points is refused (pycocotools raises for a first part of ≤ 4 numbers and rasterises short
    /// later parts; such a part has no interior), and so is a coordinate `RLE(polygon:)` cannot take.
    func checkPolygons(_ parts: [[Double]], image: COCOImage, item: COCOItem, path: String) throws {
        let limit = RLE.polygonCoordinateLimit(height: image.height, width: image.width)
        for part in parts {
            if part.count < 6 {
                throw COCOError.degeneratePolygon(path: path, item: item, points: part.count / 2)
            }
            for v in part where !(v.isFinite && abs(v) <= limit) {
                throw COCOError.invalidField(path: path, item: item, field: "segmentation",
                                             reason: "has coordinate \(v), beyond ±\(limit) for its \(image.height)×\(image.width) image")
            }
        }
    }

    /// Throws what `mask(of:)` would throw, without building the mask (used where pycocotools
    /// rasterises a ground truth that no detection needs).
    func checkMask(of annotation: COCOAnnotation) throws {
        let item = COCOItem.annotation(id: annotation.id)
        guard let segmentation = annotation.segmentation else {
            throw COCOError.missingField(path: path, item: item, field: "segmentation")
        }
        if case .polygons(let parts) = segmentation {
            guard let image = image(id: annotation.imageID) else {
                throw COCOError.unknownImage(path: path, item: item, imageID: annotation.imageID)
            }
            try checkPolygons(parts, image: image, item: item, path: path)
        }
    }
}

/// Parses `segmentation` of an annotation or result: a list of polygons, an uncompressed RLE
/// (`counts` as a list of integers) or a compressed RLE (`counts` as a string).
func parseSegmentation(_ o: JSONObject) throws -> Segmentation {
    let key = "segmentation"
    let v = try o.raw(key)
    if case .array(let parts) = v {
        var polygons: [[Double]] = []
        polygons.reserveCapacity(parts.count)
        for (i, part) in parts.enumerated() {
            guard case .array(let list) = part, let numbers = JSONObject.numbers(list) else {
                throw o.invalid(key, "part \(i) is not a list of numbers")
            }
            guard numbers.count % 2 == 0 else { throw o.invalid(key, "part \(i) has an odd number of coordinates (\(numbers.count))") }
            polygons.append(numbers)
        }
        return .polygons(polygons)
    }
    guard case .object = v else { throw o.invalid(key, "is neither a polygon list nor an RLE object") }
    let rleObject = try JSONObject(v, path: o.path, item: o.item)
    let size = try rleObject.doubles("size", count: 2)
    guard let h = Int32(exactly: size[0]).map(Int.init), let w = Int32(exactly: size[1]).map(Int.init), h >= 0, w >= 0 else {
        throw COCOError.malformedRLE(path: o.path, item: o.item, reason: "size \(size) is not two integers in 0…\(Int32.max)")
    }
    let counts = try rleObject.raw("counts")
    do {
        if case .string(let s) = counts {
            return .rle(try RLE(compressedCounts: s, height: h, width: w))
        }
        guard case .array(let list) = counts, let numbers = JSONObject.numbers(list) else {
            throw RLEFormatError("counts is neither a string nor a list of integers")
        }
        var runs: [UInt32] = []
        runs.reserveCapacity(numbers.count)
        for (i, x) in numbers.enumerated() {
            guard let c = UInt32(exactly: x) else { throw RLEFormatError("count \(i) (\(x)) is not a non-negative 32-bit integer") }
            runs.append(c)
        }
        let rle = RLE(height: h, width: w, counts: runs)
        try rle.validate()
        return .rle(rle)
    } catch let e as RLEFormatError {
        throw COCOError.malformedRLE(path: o.path, item: o.item, reason: e.reason)
    }
}
