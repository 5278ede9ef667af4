import Foundation

/// One detection of a model, in training-side terms (contiguous category index), to be written as
/// a COCO results entry.
public struct COCODetection: Hashable, Sendable {
    /// The COCO image id.
    public var imageID: Int
    /// Contiguous category index (position in `COCODataset.categories`); mapped back to the COCO id.
    public var categoryIndex: Int
    /// Confidence.
    public var score: Double
    /// XYWH box in pixels; written as `bbox` when present.
    public var bbox: BoundingBox?
    /// Instance mask; written as compressed RLE `segmentation` when present.
    public var mask: RLE?

    /// A detection.
    public init(imageID: Int, categoryIndex: Int, score: Double, bbox: BoundingBox? = nil, mask: RLE? = nil) {
        self.imageID = imageID; self.categoryIndex = categoryIndex; self.score = score; self.bbox = bbox; self.mask = mask
    }
}

/// Reading and writing COCO results files (a JSON list of detections).
public enum COCOResults {
    /// Reads a results file against its ground truth, as pycocotools' `loadRes`.
    ///
    /// The branch is chosen by the **first** entry, as loadRes does: when it has a non-empty `bbox`,
    /// every entry is a box result (area = w·h; without `segmentation` the box polygon
    /// x1,y1, x1,y2, x2,y2, x2,y1 is used); otherwise every entry needs an RLE `segmentation`
    /// (area = mask pixel count; a missing `bbox` is the mask's tight box). So segm results that also
    /// carry `bbox` get box areas, exactly like pycocotools. Ids are 1, 2, … in file order, and
    /// `iscrowd` is 0. An empty list is accepted (pycocotools fails on it) and evaluates to no
    /// detections.
    /// - Throws: `COCOError` naming the entry (`results[i]`) for unknown images or categories,
    ///   missing fields, non-finite scores and malformed RLEs.
    public static func load(contentsOf path: String, groundTruth: COCODataset) throws -> [COCOAnnotation] {
        try load(json: try loadJSON(path: path), path: path, groundTruth: groundTruth)
    }

    /// Parses results JSON bytes; `path` names the source in errors.
    public static func load(jsonData: Data, path: String = "<memory>", groundTruth: COCODataset) throws -> [COCOAnnotation] {
        try load(json: try parseJSON(jsonData, path: path), path: path, groundTruth: groundTruth)
    }

    private static func load(json: JSONValue, path: String, groundTruth gt: COCODataset) throws -> [COCOAnnotation] {
        guard case .array(let entries) = json else {
            throw COCOError.invalidField(path: path, item: .file, field: "(top level)", reason: "is not a list of results")
        }
        guard let first = entries.first else { return [] }
        let head = try JSONObject(first, path: path, item: .entry(list: "results", index: 0))
        let boxBranch: Bool
        if head.has("bbox"), case .array(let b)? = head.value["bbox"], !b.isEmpty {
            boxBranch = true
        } else if head.has("segmentation") {
            boxBranch = false
        } else {
            throw COCOError.missingField(path: path, item: head.item, field: "bbox' or 'segmentation")
        }
        var out: [COCOAnnotation] = []
        out.reserveCapacity(entries.count)
        for (i, raw) in entries.enumerated() {
            let o = try JSONObject(raw, path: path, item: .entry(list: "results", index: i))
            let imageID = try o.int("image_id")
            guard gt.imageIndex(id: imageID) != nil else { throw COCOError.unknownImage(path: path, item: o.item, imageID: imageID) }
            let categoryID = try o.int("category_id")
            guard gt.categoryIndex(id: categoryID) != nil else {
                throw COCOError.unknownCategory(path: path, item: o.item, categoryID: categoryID)
            }
            let score = try o.double("score")
            guard score.isFinite else { throw o.invalid("score", "is not finite (\(score))") }
            var segmentation = o.has("segmentation") ? try parseSegmentation(o) : nil
            let bbox: BoundingBox
            let area: Double
            if boxBranch {
                let b = try o.doubles("bbox", count: 4)
                bbox = BoundingBox(x: b[0], y: b[1], width: b[2], height: b[3])
                area = b[2] * b[3]
                if segmentation == nil {
                    let x1 = b[0], x2 = b[0] + b[2], y1 = b[1], y2 = b[1] + b[3]
                    segmentation = .polygons([[x1, y1, x1, y2, x2, y2, x2, y1]])
                }
            } else {
                guard case .rle(let rle)? = segmentation else {
                    if segmentation == nil { throw COCOError.missingField(path: path, item: o.item, field: "segmentation") }
                    throw o.invalid("segmentation", "must be an RLE object in mask results (pycocotools accepts only RLE here)")
                }
                area = Double(rle.area)
                if o.has("bbox") {
                    let b = try o.doubles("bbox", count: 4)
                    bbox = BoundingBox(x: b[0], y: b[1], width: b[2], height: b[3])
                } else {
                    bbox = rle.boundingBox
                }
            }
            out.append(COCOAnnotation(id: i + 1, imageID: imageID, categoryID: categoryID, bbox: bbox, area: area,
                                      isCrowd: false, segmentation: segmentation, score: score))
        }
        return out
    }

    /// COCO results JSON for detections: a list of {image_id, category_id (mapped back from the
    /// contiguous index), score, bbox [x, y, w, h] when present, segmentation {size [h, w], counts
    /// compressed string} when present}. Numbers are written in Swift's shortest round-trip form.
    /// - Throws: `COCOError.evaluation` for a category index outside the dataset or a non-finite
    ///   number (JSON cannot hold NaN or infinity).
    public static func jsonData(_ detections: [COCODetection], dataset: COCODataset) throws -> Data {
        var s = "["
        for (i, d) in detections.enumerated() {
            guard dataset.categories.indices.contains(d.categoryIndex) else {
                throw COCOError.evaluation("detection \(i): category index \(d.categoryIndex) outside 0..<\(dataset.categories.count)")
            }
            let numbers = [d.score] + (d.bbox?.xywh ?? [])
            guard numbers.allSatisfy(\.isFinite) else {
                throw COCOError.evaluation("detection \(i): score or bbox is not finite")
            }
            if i > 0 { s += "," }
            s += "\n{\"image_id\": \(d.imageID), \"category_id\": \(dataset.categoryID(index: d.categoryIndex))"
            if let b = d.bbox { s += ", \"bbox\": [\(b.x), \(b.y), \(b.width), \(b.height)]" }
            s += ", \"score\": \(d.score)"
            if let m = d.mask {
                // The counts alphabet ('0'…'o') needs escaping only for the backslash.
                let counts = m.compressedCounts.replacingOccurrences(of: "\\", with: "\\\\")
                s += ", \"segmentation\": {\"size\": [\(m.height), \(m.width)], \"counts\": \"\(counts)\"}"
            }
            s += "}"
        }
        s += "\n]\n"
        return Data(s.utf8)
    }

    /// Writes `jsonData(_:dataset:)` to a file.
    public static func write(_ detections: [COCODetection], dataset: COCODataset, to path: String) throws {
        let data = try jsonData(detections, dataset: dataset)
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw COCOError.unreadableFile(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
