import Foundation

extension COCODataset {
    /// Instances JSON for this dataset, readable by `init(jsonData:)` and by pycocotools.
    ///
    /// Polygons are written as lists; masks of crowd annotations as uncompressed RLE (a `counts`
    /// list, as the COCO files store crowds), other masks as compressed RLE strings.
    /// - Throws: `COCOError.evaluation` naming the annotation for a non-finite number (JSON cannot
    ///   hold NaN or infinity).
    public func jsonData() throws -> Data {
        func number(_ d: Double, _ item: String) throws -> JSONValue {
            guard d.isFinite else { throw COCOError.evaluation("\(path): \(item) has a non-finite number") }
            return .number(d)
        }
        let imageValues: [JSONValue] = images.map { image in
            .object([("id", .number(Double(image.id))), ("file_name", .string(image.fileName)),
                     ("height", .number(Double(image.height))), ("width", .number(Double(image.width)))])
        }
        let categoryValues: [JSONValue] = categories.map { c in
            .object([("id", .number(Double(c.id))), ("name", .string(c.name)), ("supercategory", .string(c.supercategory))])
        }
        var annotationValues: [JSONValue] = []
        annotationValues.reserveCapacity(annotations.count)
        for a in annotations {
            let item = "annotation id \(a.id)"
            var members: [(key: String, value: JSONValue)] = [
                ("id", .number(Double(a.id))), ("image_id", .number(Double(a.imageID))),
                ("category_id", .number(Double(a.categoryID))),
                ("bbox", .array(try a.bbox.xywh.map { try number($0, item) })),
                ("area", try number(a.area, item)), ("iscrowd", .number(a.isCrowd ? 1 : 0)),
            ]
            switch a.segmentation {
            case .polygons(let parts)?:
                members.append(("segmentation", .array(try parts.map { .array(try $0.map { try number($0, item) }) })))
            case .rle(let rle)?:
                let size: JSONValue = .array([.number(Double(rle.height)), .number(Double(rle.width))])
                let counts: JSONValue = a.isCrowd ? .array(rle.counts.map { .number(Double($0)) }) : .string(rle.compressedCounts)
                members.append(("segmentation", .object([("size", size), ("counts", counts)])))
            case nil:
                break
            }
            annotationValues.append(.object(members))
        }
        var writer = JSONWriter()
        writer.write(.object([("images", .array(imageValues)), ("categories", .array(categoryValues)),
                              ("annotations", .array(annotationValues))]))
        return Data(writer.bytes)
    }
}
