import COCO
import Foundation
import ImageCodecs
import PercepCore

/// One prepared image with its instances on the resized (unpadded) canvas.
public struct InstanceSample: Sendable {
    /// Data set index and COCO image id.
    public let index: Int, imageID: Int
    /// [3, h, w] BGR pixels minus the mean (std 1), as AdelaiDet feeds R-50.pkl.
    public let image: [Float]
    /// Resized size (h, w) and original size (H0, W0).
    public let height: Int, width: Int, originalHeight: Int, originalWidth: Int
    /// 4·K boxes (x1, y1, x2, y2) on the resized canvas.
    public let boxes: [Float]
    /// K contiguous class indices.
    public let classes: [Int]
    /// K × h × w mask bytes on the resized canvas.
    public let masks: [UInt8]
    /// Number of instances.
    public var count: Int { classes.count }
}

/// detectron2's and AdelaiDet's instance pipeline: ResizeShortestEdge (short side drawn from the
/// choices, long side capped; Pillow bilinear), horizontal flip, boxes and masks moved with the
/// image, clipped, empty ones dropped; BGR minus the pixel mean. Randomness is a pure function of
/// (seed, epoch, index), so any rank or thread prepares the same sample.
public struct InstanceTransform: Sendable {
    /// Short-side choices (INPUT.MIN_SIZE_TRAIN, or [MIN_SIZE_TEST]).
    public var shortSides: [Int]
    /// Long-side cap (INPUT.MAX_SIZE_TRAIN / MAX_SIZE_TEST).
    public var maxSize: Int
    /// Horizontal flip with probability ½ (INPUT.HFLIP_TRAIN; off for testing).
    public var flip: Bool
    /// Per-channel mean in BGR order (MODEL.PIXEL_MEAN) and std (MODEL.PIXEL_STD).
    public var pixelMean: [Float] = [103.530, 116.280, 123.675], pixelStd: [Float] = [1, 1, 1]
    /// Seed of the augmentation draws.
    public var seed: UInt64

    /// A transform.
    public init(shortSides: [Int], maxSize: Int, flip: Bool, seed: UInt64) {
        self.shortSides = shortSides; self.maxSize = maxSize; self.flip = flip; self.seed = seed
    }

    /// detectron2's `ResizeShortestEdge.get_output_shape`: scale the short side to `short`, cap
    /// the long side at `maxSize`, round each side with int(v + 0.5).
    public static func outputSize(height h: Int, width w: Int, short: Int, maxSize: Int) -> (Int, Int) {
        let size = Double(short)
        let scale = size / Double(min(h, w))
        var (newH, newW) = h < w ? (size, scale * Double(w)) : (scale * Double(h), size)
        if max(newH, newW) > Double(maxSize) {
            let s = Double(maxSize) / max(newH, newW)
            newH *= s; newW *= s
        }
        return (Int(newH + 0.5), Int(newW + 0.5))
    }

    /// The draws of sample `index` in `epoch`: the short side and the flip.
    public func draws(epoch: Int, index: Int) -> (short: Int, flip: Bool) {
        var rng = SeededRNG(seed: seed, stream: "instance-augment \(epoch) \(index)")
        let short = shortSides[Int(rng.next() % UInt64(shortSides.count))]
        let flipped = rng.next() & 1 == 1
        return (short, flip && flipped)
    }

    /// Loads and prepares sample `index` of `dataset`; without `targets` only the image (testing).
    public func apply(_ dataset: InstanceDataset, index: Int, epoch: Int, targets: Bool = true) throws -> InstanceSample {
        let info = dataset.image(index), path = dataset.imagePath(index)
        let rgb = try ImageFile.readRGB(path)
        guard rgb.height == info.height && rgb.width == info.width else {
            throw InstanceDataError(path, "image is \(rgb.height)×\(rgb.width), the annotations say \(info.height)×\(info.width)")
        }
        let (short, flipped) = draws(epoch: epoch, index: index)
        let (h, w) = Self.outputSize(height: rgb.height, width: rgb.width, short: short, maxSize: maxSize)
        // An extreme aspect ratio under the long-side cap rounds a side to 0 (detectron2 would
        // build an empty image); the model's kernels do not check shapes, so stop it here.
        guard h >= 1, w >= 1 else {
            throw InstanceDataError(path, "a \(rgb.height)×\(rgb.width) image resizes to \(h)×\(w) (short side \(short), long side at most \(maxSize)): aspect ratio too extreme")
        }
        let resized = PILResize.bilinear(rgb.pixels, height: rgb.height, width: rgb.width, channels: 3, to: (h, w))
        let plane = h * w
        var image = [Float](repeating: 0, count: 3 * plane)
        for y in 0..<h {
            for x in 0..<w {
                let src = (y * w + (flipped ? w - 1 - x : x)) * 3
                for c in 0..<3 {   // BGR: channel c reads RGB channel 2 − c
                    image[c * plane + y * w + x] = (Float(resized[src + 2 - c]) - pixelMean[c]) / pixelStd[c]
                }
            }
        }
        let sx = Double(w) / Double(info.width), sy = Double(h) / Double(info.height)
        var boxes: [Float] = [], classes: [Int] = [], masks: [UInt8] = []
        for a in targets ? dataset.annotations[index] : [] {
            guard let cls = dataset.coco.categoryIndex(id: a.categoryID) else { continue }
            // The box through the same resize and flip, clipped to the image.
            var x1 = a.bbox.x * sx, x2 = (a.bbox.x + a.bbox.width) * sx
            let y1 = min(max(a.bbox.y * sy, 0), Double(h)), y2 = min(max((a.bbox.y + a.bbox.height) * sy, 0), Double(h))
            if flipped { (x1, x2) = (Double(w) - x2, Double(w) - x1) }
            x1 = min(max(x1, 0), Double(w)); x2 = min(max(x2, 0), Double(w))
            guard x2 - x1 > 1e-5 && y2 - y1 > 1e-5 else { continue }
            let mask = try instanceMask(a, image: info, dataset: dataset, size: (h, w), scale: (sx, sy), flipped: flipped)
            guard mask.contains(1) else { continue }
            boxes += [Float(x1), Float(y1), Float(x2), Float(y2)]
            classes.append(cls)
            masks += mask
        }
        return InstanceSample(index: index, imageID: info.id, image: image, height: h, width: w, originalHeight: info.height,
                              originalWidth: info.width, boxes: boxes, classes: classes, masks: masks)
    }

    /// The annotation's mask on the resized canvas (h × w bytes): polygons moved with the image
    /// and rasterised there with the COCO rasteriser, as detectron2's PolygonMasks; RLE masks
    /// decoded at the original size and resized nearest-neighbour, as its BitMasks.
    func instanceMask(_ a: COCOAnnotation, image info: COCOImage, dataset: InstanceDataset, size: (Int, Int), scale: (Double, Double),
                      flipped: Bool) throws -> [UInt8] {
        let (h, w) = size
        switch a.segmentation {
        case .polygons(let parts)?:
            let moved = parts.map { part in
                part.enumerated().map { k, v in k % 2 == 0 ? (flipped ? Double(w) - v * scale.0 : v * scale.0) : v * scale.1 }
            }
            do { return try RLE(polygons: moved, height: h, width: w).decodeRowMajor() }
            catch { throw InstanceDataError(dataset.annotationsPath, "annotation \(a.id): \(error)") }
        case .rle(let rle)?:
            guard rle.height == info.height && rle.width == info.width else {
                throw InstanceDataError(dataset.annotationsPath, "annotation \(a.id): RLE of \(rle.height)×\(rle.width) on a \(info.height)×\(info.width) image")
            }
            let full: [UInt8]
            do { full = try rle.decodeRowMajor() } catch { throw InstanceDataError(dataset.annotationsPath, "annotation \(a.id): \(error)") }
            var mask = PILResize.nearest(full, height: rle.height, width: rle.width, to: (h, w))
            if flipped { for y in 0..<h { mask[(y * w)..<(y * w + w)].reverse() } }
            return mask
        case nil:
            throw InstanceDataError(dataset.annotationsPath, "annotation \(a.id) has no segmentation")
        }
    }
}
