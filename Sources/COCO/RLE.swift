/// A binary mask as COCO run-length encoding (maskApi.c `RLE`).
///
/// Pixels are taken in column-major order (index = x·h + y). `counts` alternates runs of 0s and
/// 1s and always starts with a run of 0s, which may be empty: [0 0 1 1 1 0 1] → [2, 3, 1, 1].
/// For a well-formed RLE the counts sum to `height · width`; the readers check this.
public struct RLE: Hashable, Sendable {
    /// Mask height h (rows, pixels).
    public var height: Int
    /// Mask width w (columns, pixels).
    public var width: Int
    /// Alternating run lengths, starting with background.
    public var counts: [UInt32]

    /// An RLE from its size and counts, taken as they are (see `validate()`).
    public init(height: Int, width: Int, counts: [UInt32]) {
        self.height = height; self.width = width; self.counts = counts
    }

    /// Throws unless the counts sum to exactly h·w (pycocotools' decode rejects overruns; a short sum
    /// would leave pixels undefined), or the size is negative.
    public func validate() throws {
        guard height >= 0, width >= 0 else { throw RLEFormatError("negative size [\(height), \(width)]") }
        var total = 0
        for c in counts { total += Int(c) }
        guard total == height * width else {
            throw RLEFormatError("counts sum to \(total) but size [\(height), \(width)] has \(height * width) pixels")
        }
    }

    /// Encodes a mask given column-major (index = x·h + y), one byte per pixel, any non-zero value
    /// meaning foreground. Emits a run at every value change starting from value 0, as `rleEncode`.
    /// - Parameters:
    ///   - columnMajor: h·w bytes.
    ///   - height: h.
    ///   - width: w.
    public init(encoding columnMajor: [UInt8], height: Int, width: Int) {
        precondition(columnMajor.count == height * width, "mask must have h·w bytes")
        var counts: [UInt32] = []
        var previous: UInt8 = 0
        var run: UInt32 = 0
        for byte in columnMajor {
            let v: UInt8 = byte != 0 ? 1 : 0
            if v != previous { counts.append(run); run = 0; previous = v }
            run += 1
        }
        counts.append(run)
        self.init(height: height, width: width, counts: counts)
    }

    /// Encodes a mask given row-major (index = y·w + x), the layout images and tensors use.
    /// - Parameters:
    ///   - rowMajor: h·w bytes, non-zero = foreground.
    public init(encodingRowMajor rowMajor: [UInt8], height: Int, width: Int) {
        precondition(rowMajor.count == height * width, "mask must have h·w bytes")
        var col = [UInt8](repeating: 0, count: rowMajor.count)
        for y in 0..<height { for x in 0..<width { col[x * height + y] = rowMajor[y * width + x] } }
        self.init(encoding: col, height: height, width: width)
    }

    /// The mask, column-major (index = x·h + y), 0 or 1 per pixel. Throws when the counts overrun
    /// h·w (as pycocotools 2.0.11 does) or fall short of it.
    public func decode() throws -> [UInt8] {
        try validate()
        var out = [UInt8](repeating: 0, count: height * width)
        var p = 0
        var value: UInt8 = 0
        for c in counts {
            let n = Int(c)
            if value == 1 { for i in p..<(p + n) { out[i] = 1 } }
            p += n
            value ^= 1
        }
        return out
    }

    /// The mask, row-major (index = y·w + x), 0 or 1 per pixel.
    public func decodeRowMajor() throws -> [UInt8] {
        let col = try decode()
        var out = [UInt8](repeating: 0, count: col.count)
        for x in 0..<width { for y in 0..<height { out[y * width + x] = col[x * height + y] } }
        return out
    }

    /// Number of foreground pixels: the sum of the odd-indexed counts (`rleArea`).
    public var area: Int {
        var a = 0
        var i = 1
        while i < counts.count { a += Int(counts[i]); i += 2 }
        return a
    }

    /// The tight box around the foreground, as pycocotools 2.0.11's fixed `rleToBbox`: only whole
    /// (background, foreground) pairs count, empty foreground runs are skipped, a run that crosses a
    /// column spans rows 0..h−1. With no runs the box is [0, 0, 0, 0]. The C code computes in uint32,
    /// so the degenerate case of pairs whose foreground runs are all empty wraps the same way here.
    public var boundingBox: BoundingBox {
        let h = UInt32(truncatingIfNeeded: height), w = UInt32(truncatingIfNeeded: width)
        let m = counts.count / 2 * 2
        if m == 0 || h == 0 { return BoundingBox(x: 0, y: 0, width: 0, height: 0) }
        var xs = w, ys = h, xe: UInt32 = 0, ye: UInt32 = 0, cc: UInt32 = 0
        for j in 0..<m {
            let start = cc
            cc &+= counts[j]
            if j % 2 == 0 || counts[j] == 0 { continue }
            let yStart = start % h, xStart = (start - yStart) / h
            let yEnd = (cc &- 1) % h, xEnd = (cc &- 1 &- yEnd) / h
            xs = min(xs, xStart)
            xe = max(xe, xEnd)
            if xStart < xEnd {
                ys = 0; ye = h - 1
            } else {
                ys = min(ys, yStart)
                ye = max(ye, yEnd)
            }
        }
        return BoundingBox(x: Double(xs), y: Double(ys), width: Double(xe &- xs &+ 1), height: Double(ye &- ys &+ 1))
    }

    /// Union (or, with `intersect`, intersection) of masks of one size, walking all run lists
    /// together as `rleMerge`. No masks give an empty 0×0 RLE; masks of different sizes give an
    /// empty RLE of size 0×0, as in maskApi.c.
    public static func merge(_ masks: [RLE], intersect: Bool = false) -> RLE {
        guard let first = masks.first else { return RLE(height: 0, width: 0, counts: []) }
        if masks.count == 1 { return first }
        let h = first.height, w = first.width
        var acc = first.counts
        for b in masks.dropFirst() {
            guard b.height == h, b.width == w else { return RLE(height: 0, width: 0, counts: []) }
            guard !acc.isEmpty, !b.counts.isEmpty else { acc = []; continue }
            var out: [UInt32] = []
            out.reserveCapacity(acc.count + b.counts.count)
            var ca = acc[0], cb = b.counts[0]
            var v = false, va = false, vb = false
            var ia = 1, ib = 1
            var cc: UInt32 = 0
            var ct: UInt32 = 1
            while ct > 0 {
                let c = min(ca, cb)
                cc &+= c
                ct = 0
                ca -= c
                if ca == 0 && ia < acc.count { ca = acc[ia]; ia += 1; va.toggle() }
                ct &+= ca
                cb -= c
                if cb == 0 && ib < b.counts.count { cb = b.counts[ib]; ib += 1; vb.toggle() }
                ct &+= cb
                let vp = v
                v = intersect ? (va && vb) : (va || vb)
                if v != vp || ct == 0 { out.append(cc); cc = 0 }
            }
            acc = out
        }
        return RLE(height: h, width: w, counts: acc)
    }

    /// IoU of `self` as a detection against `gt`, as `rleIou`: 0 when the masks' boxes do not
    /// overlap, −1 when the sizes differ, 0 when the intersection is empty, and for a crowd GT the
    /// union is the detection's own area.
    public func iou(_ gt: RLE, gtIsCrowd: Bool) -> Double {
        iou(gt, gtIsCrowd: gtIsCrowd, boxes: (boundingBox, gt.boundingBox))
    }

    /// The same as `iou(_:gtIsCrowd:)` with the two boxes precomputed (the evaluator caches them).
    func iou(_ gt: RLE, gtIsCrowd: Bool, boxes: (BoundingBox, BoundingBox)) -> Double {
        // The box test runs first, like rleIou (it decides between 0 and −1 for size mismatches).
        guard boxes.0.iou(boxes.1, gtIsCrowd: gtIsCrowd) > 0 else { return 0 }
        guard height == gt.height, width == gt.width else { return -1 }
        let a = counts, b = gt.counts
        guard !a.isEmpty, !b.isEmpty else { return 0 }
        var ca = a[0], cb = b[0]
        var va = false, vb = false
        var ia = 1, ib = 1
        var inter: UInt32 = 0, union: UInt32 = 0
        var ct: UInt32 = 1
        while ct > 0 {
            let c = min(ca, cb)
            if va || vb { union &+= c; if va && vb { inter &+= c } }
            ct = 0
            ca -= c
            if ca == 0 && ia < a.count { ca = a[ia]; ia += 1; va.toggle() }
            ct &+= ca
            cb -= c
            if cb == 0 && ib < b.count { cb = b[ib]; ib += 1; vb.toggle() }
            ct &+= cb
        }
        if inter == 0 { union = 1 } else if gtIsCrowd { union = UInt32(truncatingIfNeeded: area) }
        return Double(inter) / Double(union)
    }
}

/// Mask IoU matrix, D×G row-major (`result[d * G + g]`), as pycocotools' `maskUtils.iou` on RLEs.
/// - Parameters:
///   - detections: D masks.
///   - groundTruth: G masks.
///   - isCrowd: G flags.
public func maskIoU(_ detections: [RLE], _ groundTruth: [RLE], isCrowd: [Bool]) -> [Double] {
    precondition(isCrowd.count == groundTruth.count, "one crowd flag per ground-truth mask")
    let db = detections.map(\.boundingBox), gb = groundTruth.map(\.boundingBox)
    var out = [Double](repeating: 0, count: detections.count * groundTruth.count)
    for d in detections.indices {
        for g in groundTruth.indices {
            out[d * groundTruth.count + g] = detections[d].iou(groundTruth[g], gtIsCrowd: isCrowd[g], boxes: (db[d], gb[g]))
        }
    }
    return out
}
