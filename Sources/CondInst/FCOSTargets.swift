import Foundation

/// The size of one FPN level's map and its stride.
public struct LevelGeometry: Equatable, Sendable {
    /// Pixels per location.
    public var stride: Int
    /// Map size.
    public var height: Int, width: Int

    /// A level of `height` × `width` locations `stride` pixels apart.
    public init(stride: Int, height: Int, width: Int) { self.stride = stride; self.height = height; self.width = width }

    /// Locations on the level.
    public var count: Int { height * width }

    /// Image coordinates of location (i, j): (j·s + ⌊s/2⌋, i·s + ⌊s/2⌋), AdelaiDet's
    /// `compute_locations`.
    public func location(_ index: Int) -> (x: Float, y: Float) {
        (Float((index % width) * stride + stride / 2), Float((index / width) * stride + stride / 2))
    }
}

/// One image's ground truth in the padded input's pixels: boxes (x1, y1, x2, y2), classes
/// 0..<C and the centre point center sampling uses (the mask's centre of mass).
public struct ImageBoxes: Sendable {
    /// 4·K box coordinates.
    public var boxes: [Float]
    /// K class indices.
    public var classes: [Int]
    /// K centres (x, y).
    public var centers: [(x: Float, y: Float)]

    /// Ground truth of K instances.
    public init(boxes: [Float], classes: [Int], centers: [(x: Float, y: Float)]) {
        precondition(boxes.count == 4 * classes.count && centers.count == classes.count, "ImageBoxes: \(boxes.count / 4) boxes, \(classes.count) classes, \(centers.count) centres")
        self.boxes = boxes; self.classes = classes; self.centers = centers
    }

    /// Number of instances.
    public var count: Int { classes.count }
}

/// FCOS's per-location targets for one image, over every location of every level (level by
/// level, row-major within a level).
public struct FCOSAssignment: Sendable {
    /// Class of each location, `numClasses` for background.
    public var labels: [Int32]
    /// 4 per location: (l, t, r, b) to the assigned box in units of the level's stride (0 for
    /// background).
    public var regressionTargets: [Float]
    /// Index of the assigned instance, −1 for background.
    public var instanceIndex: [Int]

    /// Locations whose label is not background.
    public func positives(numClasses: Int) -> [Int] { labels.indices.filter { labels[$0] != Int32(numClasses) } }
}

/// AdelaiDet's FCOS target assignment (`fcos_outputs.py`: `compute_targets_for_locations`,
/// `get_sample_region`), in float32 as AdelaiDet computes it.
public enum FCOSTargets {
    /// Centres of mass of binary masks, (Σx·m/Σm, Σy·m/Σm) with Σm clamped to ≥ 1e-6 and pixel
    /// coordinates 0…W−1, 0…H−1. masks: K × height × width bytes.
    public static func maskCenters(_ masks: UnsafeBufferPointer<UInt8>, count k: Int, height: Int, width: Int) -> [(x: Float, y: Float)] {
        precondition(masks.count == k * height * width, "maskCenters: \(masks.count) bytes for \(k) masks of \(height)×\(width)")
        return (0..<k).map { i in
            var m00 = 0.0, m10 = 0.0, m01 = 0.0
            let base = i * height * width
            for y in 0..<height {
                var row = 0.0, rowX = 0.0
                for x in 0..<width where masks[base + y * width + x] != 0 { row += 1; rowX += Double(x) }
                m00 += row; m10 += rowX; m01 += row * Double(y)
            }
            let mass = Float(Swift.max(m00, 1e-6))
            return (Float(m10) / mass, Float(m01) / mass)
        }
    }

    /// The targets of one image. `sizeRanges[l]` is level l's inclusive range of the largest
    /// distance to the box sides; `radius` the center-sampling radius in strides (1.5).
    public static func assign(_ gt: ImageBoxes, levels: [LevelGeometry], sizeRanges: [(Float, Float)], radius: Float = 1.5,
                              numClasses: Int) -> FCOSAssignment {
        precondition(sizeRanges.count == levels.count, "FCOS targets: \(sizeRanges.count) size ranges for \(levels.count) levels")
        let total = levels.reduce(0) { $0 + $1.count }
        var labels = [Int32](repeating: Int32(numClasses), count: total)
        var targets = [Float](repeating: 0, count: 4 * total)
        var instance = [Int](repeating: -1, count: total)
        // An image without instances, or whose first centre has x exactly 0 (AdelaiDet tests
        // `center_x[..., 0].sum() == 0`), has no positive location.
        guard gt.count > 0, gt.centers[0].x != 0 else { return FCOSAssignment(labels: labels, regressionTargets: targets, instanceIndex: instance) }
        let areas = (0..<gt.count).map { k -> Float in
            let w: Float = gt.boxes[4 * k + 2] - gt.boxes[4 * k], h: Float = gt.boxes[4 * k + 3] - gt.boxes[4 * k + 1]
            return w * h
        }
        var at = 0
        for (l, level) in levels.enumerated() {
            let reach = Float(level.stride) * radius, (lo, hi) = sizeRanges[l], stride = Float(level.stride)
            for i in 0..<level.count {
                let (x, y) = level.location(i)
                var best = -1, bestArea = Float.infinity
                for k in 0..<gt.count {
                    let x1 = gt.boxes[4 * k], y1 = gt.boxes[4 * k + 1], x2 = gt.boxes[4 * k + 2], y2 = gt.boxes[4 * k + 3]
                    let (cx, cy) = gt.centers[k]
                    // The centre square ± 1.5 strides, clipped to the box; strictly inside.
                    let xmin: Float = cx - reach, ymin: Float = cy - reach, xmax: Float = cx + reach, ymax: Float = cy + reach
                    let sx1 = xmin > x1 ? xmin : x1, sy1 = ymin > y1 ? ymin : y1
                    let sx2 = xmax > x2 ? x2 : xmax, sy2 = ymax > y2 ? y2 : ymax
                    let dl: Float = x - sx1, dt: Float = y - sy1, dr: Float = sx2 - x, db: Float = sy2 - y
                    guard Swift.min(Swift.min(dl, dt), Swift.min(dr, db)) > 0 else { continue }
                    let l: Float = x - x1, t: Float = y - y1, r: Float = x2 - x, b: Float = y2 - y
                    let farthest = Swift.max(Swift.max(l, t), Swift.max(r, b))
                    guard farthest >= lo && farthest <= hi else { continue }
                    if areas[k] < bestArea { bestArea = areas[k]; best = k }   // first of equal areas wins
                }
                if best >= 0 {
                    let x1 = gt.boxes[4 * best], y1 = gt.boxes[4 * best + 1], x2 = gt.boxes[4 * best + 2], y2 = gt.boxes[4 * best + 3]
                    labels[at + i] = Int32(gt.classes[best])
                    instance[at + i] = best
                    targets[4 * (at + i)] = (x - x1) / stride
                    targets[4 * (at + i) + 1] = (y - y1) / stride
                    targets[4 * (at + i) + 2] = (x2 - x) / stride
                    targets[4 * (at + i) + 3] = (y2 - y) / stride
                }
            }
            at += level.count
        }
        return FCOSAssignment(labels: labels, regressionTargets: targets, instanceIndex: instance)
    }

    /// FCOS's size ranges from MODEL.FCOS.SIZES_OF_INTEREST: [−1, s₀], [s₀, s₁], …, [s_last, 1e8].
    public static func sizeRanges(_ sizesOfInterest: [Float]) -> [(Float, Float)] {
        var out: [(Float, Float)] = [], previous: Float = -1
        for s in sizesOfInterest { out.append((previous, s)); previous = s }
        out.append((previous, 100_000_000))
        return out
    }

    /// Centerness target √(min(l,r)/max(l,r) · min(t,b)/max(t,b)) of one (l, t, r, b).
    public static func centerness(_ ltrb: ArraySlice<Float>) -> Float {
        let i = ltrb.startIndex
        let (l, t, r, b) = (ltrb[i], ltrb[i + 1], ltrb[i + 2], ltrb[i + 3])
        return ((Swift.min(l, r) / Swift.max(l, r)) * (Swift.min(t, b) / Swift.max(t, b))).squareRoot()
    }
}
