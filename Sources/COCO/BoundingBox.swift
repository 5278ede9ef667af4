/// An axis-aligned box in COCO's XYWH convention, in pixels: (x, y) is the top-left corner and the
/// box covers [x, x+w) × [y, y+h); pixel (i, j) covers [i, i+1) × [j, j+1).
public struct BoundingBox: Hashable, Sendable {
    /// Left edge (pixels).
    public var x: Double
    /// Top edge (pixels).
    public var y: Double
    /// Width (pixels).
    public var width: Double
    /// Height (pixels).
    public var height: Double

    /// A box from its corner and size.
    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }

    /// w·h, the area loadRes gives box results (no clamping of negative sizes, like pycocotools).
    public var area: Double { width * height }

    /// [x, y, w, h], the order COCO JSON uses.
    public var xywh: [Double] { [x, y, width, height] }

    /// IoU of `self` as a detection against `gt`, exactly as maskApi.c `bbIou`: no +1 convention,
    /// 0 when the boxes do not overlap, and when `gtIsCrowd` the union is the detection's own area
    /// (a crowd region may cover many objects, so only the part of the detection inside it counts).
    public func iou(_ gt: BoundingBox, gtIsCrowd: Bool) -> Double {
        // Same operation order as bbIou so the result is bit-identical.
        let w = min(width + x, gt.width + gt.x) - max(x, gt.x)
        if w <= 0 { return 0 }
        let h = min(height + y, gt.height + gt.y) - max(y, gt.y)
        if h <= 0 { return 0 }
        let inter = w * h
        let da = width * height
        let union = gtIsCrowd ? da : da + gt.width * gt.height - inter
        return inter / union
    }
}

/// Box IoU matrix, D×G row-major (`result[d * G + g]`), as pycocotools' `maskUtils.iou` on boxes.
/// - Parameters:
///   - detections: D boxes.
///   - groundTruth: G boxes.
///   - isCrowd: G flags; a crowd GT uses the detection's area as the union.
public func boxIoU(_ detections: [BoundingBox], _ groundTruth: [BoundingBox], isCrowd: [Bool]) -> [Double] {
    precondition(isCrowd.count == groundTruth.count, "one crowd flag per ground-truth box")
    var out = [Double](repeating: 0, count: detections.count * groundTruth.count)
    for (d, dt) in detections.enumerated() {
        for (g, gt) in groundTruth.enumerated() {
            out[d * groundTruth.count + g] = dt.iou(gt, gtIsCrowd: isCrowd[g])
        }
    }
    return out
}
