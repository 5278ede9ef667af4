import ImageCodecs
import PercepCore

/// A transformed sample ready to stack: a normalised CHW float image and its labels.
public struct TransformedSample: Sendable {
    /// Image rows.
    public let height: Int
    /// Image columns.
    public let width: Int
    /// 3 × height × width floats, channel-major (R plane, G plane, B plane), normalised.
    public var image: [Float]
    /// Label rows (equal to `height` after the training transform; the original annotation's
    /// height after the evaluation transform, which leaves labels at full size).
    public let labelHeight: Int
    /// Label columns.
    public let labelWidth: Int
    /// labelHeight × labelWidth class indices, 255 ignored (also in padding).
    public var labels: [UInt8]
}

/// Resampling and geometry with OpenCV's conventions (what mmcv's `imresize`/`imrescale` call).
public enum SegmentationImageOps {
    /// mmcv `rescale_size`: the size (height, width) of an image scaled, keeping its aspect ratio,
    /// by the largest factor that fits its long side into `long` and its short side into `short`:
    /// factor = min(long / max(h, w), short / min(h, w)), new side = Int(side · factor + 0.5).
    public static func rescaledSize(height: Int, width: Int, long: Double, short: Double) -> (height: Int, width: Int) {
        let factor = min(long / Double(max(height, width)), short / Double(min(height, width)))
        return (max(1, Int(Double(height) * factor + 0.5)), max(1, Int(Double(width) * factor + 0.5)))
    }

    /// Nearest-neighbour resize as OpenCV's INTER_NEAREST (source index floor(dst · src/dst)),
    /// for label maps: never invents label values.
    public static func resizeNearest(_ labels: LabelMap, height: Int, width: Int) -> LabelMap {
        if height == labels.height && width == labels.width { return labels }
        let sx = Double(labels.width) / Double(width), sy = Double(labels.height) / Double(height)
        let xs = (0..<width).map { min(Int(Double($0) * sx), labels.width - 1) }
        var out = [UInt8](repeating: 0, count: height * width)
        for y in 0..<height {
            let row = min(Int(Double(y) * sy), labels.height - 1) * labels.width
            for x in 0..<width { out[y * width + x] = labels.values[row + xs[x]] }
        }
        return LabelMap(height: height, width: width, values: out)
    }

}

/// mmseg's training pipeline: RandomResize (keep ratio) → RandomCrop (with cat_max_ratio) →
/// RandomFlip → normalise → pad to the crop size.
///
/// Every random draw comes from `SeededRNG(seed:stream:)` on the stream "seg-aug/<epoch>/<index>",
/// so the output is a pure function of (seed, epoch, sample index): the same sample is augmented
/// identically whichever rank or loader thread handles it, at any world size.
public struct SegmentationTrainTransform: Sendable {
    /// The base scale's long side (mmseg ADE20K: 2048).
    public var scaleLong: Int
    /// The base scale's short side (mmseg ADE20K: 512).
    public var scaleShort: Int
    /// Range of the random factor applied to the base scale (mmseg: 0.5…2.0).
    public var ratioRange: ClosedRange<Double>
    /// Crop rows.
    public var cropHeight: Int
    /// Crop columns.
    public var cropWidth: Int
    /// mmseg RandomCrop's cat_max_ratio: up to 10 crops are drawn until no single class covers
    /// more than this fraction of the crop's non-ignored pixels; 1 disables the check.
    public var catMaxRatio: Double
    /// Probability of a horizontal flip.
    public var flipProbability: Double
    /// Normalisation statistics.
    public var normalization: Normalization
    /// The data seed.
    public var seed: UInt64

    /// A training transform; defaults are mmseg's ADE20K settings except the crop size.
    public init(scaleLong: Int = 2048, scaleShort: Int = 512, ratioRange: ClosedRange<Double> = 0.5...2.0,
                cropHeight: Int, cropWidth: Int, catMaxRatio: Double = 0.75, flipProbability: Double = 0.5,
                normalization: Normalization = .imagenet, seed: UInt64) {
        precondition(scaleLong > 0 && scaleShort > 0 && cropHeight > 0 && cropWidth > 0 && ratioRange.lowerBound > 0)
        self.scaleLong = scaleLong; self.scaleShort = scaleShort; self.ratioRange = ratioRange
        self.cropHeight = cropHeight; self.cropWidth = cropWidth; self.catMaxRatio = catMaxRatio
        self.flipProbability = flipProbability; self.normalization = normalization; self.seed = seed
    }

    /// The random stream of one sample in one epoch.
    public func rng(epoch: Int, index: Int) -> SeededRNG {
        SeededRNG(seed: seed, stream: "seg-aug/\(epoch)/\(index)")
    }

    /// Augments `sample` (sample `index` of the data set, in `epoch`). The output is cropHeight ×
    /// cropWidth: regions outside the rescaled image are 0 in the normalised image (mmseg pads
    /// after normalising) and 255 (ignored) in the labels.
    public func apply(_ sample: SegmentationSample, epoch: Int, index: Int) -> TransformedSample {
        var rng = rng(epoch: epoch, index: index)
        // RandomResize: scale = base · ratio, then rescale keeping the aspect ratio.
        let ratio = ratioRange.lowerBound + (ratioRange.upperBound - ratioRange.lowerBound) * rng.nextUnit()
        let target = SegmentationImageOps.rescaledSize(height: sample.image.height, width: sample.image.width,
                                                       long: Double(Int(Double(scaleLong) * ratio)),
                                                       short: Double(Int(Double(scaleShort) * ratio)))
        let image = OpenCVImageOps.resizeBilinear(sample.image, height: target.height, width: target.width)
        let labels = SegmentationImageOps.resizeNearest(sample.labels, height: target.height, width: target.width)

        // RandomCrop: offsets uniform in 0…margin; retry while one class dominates.
        let h = target.height, w = target.width
        let marginH = max(h - cropHeight, 0), marginW = max(w - cropWidth, 0)
        func draw() -> (Int, Int) {
            let oy = Int(rng.next() % UInt64(marginH + 1)), ox = Int(rng.next() % UInt64(marginW + 1))
            return (oy, ox)
        }
        var (oy, ox) = draw()
        if catMaxRatio < 1 {
            for _ in 0..<10 {
                var counts = [Int](repeating: 0, count: 256)
                for y in oy..<min(oy + cropHeight, h) {
                    for x in ox..<min(ox + cropWidth, w) { counts[Int(labels.values[y * w + x])] += 1 }
                }
                counts[Int(SegmentationDataset.ignoreIndex)] = 0
                let present = counts.filter { $0 > 0 }
                if present.count > 1, Double(present.max()!) / Double(present.reduce(0, +)) < catMaxRatio { break }
                (oy, ox) = draw()
            }
        }
        let flip = rng.nextUnit() < flipProbability

        // Crop, flip, normalise and pad in one pass over the output.
        let ch = cropHeight, cw = cropWidth, plane = ch * cw
        var out = [Float](repeating: 0, count: 3 * plane)
        var outLabels = [UInt8](repeating: SegmentationDataset.ignoreIndex, count: plane)
        let validH = min(ch, h - oy), validW = min(cw, w - ox)
        let mean = normalization.mean, inv = normalization.std.map { 1 / $0 }
        for y in 0..<validH {
            for x in 0..<validW {
                // A flip mirrors the cropped content within its valid width, as mmseg flips the crop
                // before the data preprocessor pads it.
                let sx = ox + (flip ? validW - 1 - x : x), sy = oy + y
                let s = sy * w + sx, d = y * cw + x
                outLabels[d] = labels.values[s]
                for c in 0..<3 { out[c * plane + d] = (Float(image.pixels[s * 3 + c]) - mean[c]) * inv[c] }
            }
        }
        return TransformedSample(height: ch, width: cw, image: out, labelHeight: ch, labelWidth: cw, labels: outLabels)
    }
}

/// mmseg's test pipeline: resize the image keeping its ratio to fit (scaleLong, scaleShort), or
/// leave it, and normalise. Labels stay at the original size, because metrics are computed
/// against the original annotation.
public struct SegmentationEvalTransform: Sendable {
    /// (long, short) bound of the rescale, or nil for no resize.
    public var scale: (long: Int, short: Int)?
    /// Normalisation statistics.
    public var normalization: Normalization

    /// An evaluation transform.
    public init(scale: (long: Int, short: Int)?, normalization: Normalization = .imagenet) {
        self.scale = scale; self.normalization = normalization
    }

    /// The resized, normalised image and the untouched labels.
    public func apply(_ sample: SegmentationSample) -> TransformedSample {
        var image = sample.image
        if let scale {
            let t = SegmentationImageOps.rescaledSize(height: image.height, width: image.width,
                                                      long: Double(scale.long), short: Double(scale.short))
            image = OpenCVImageOps.resizeBilinear(image, height: t.height, width: t.width)
        }
        return TransformedSample(height: image.height, width: image.width,
                                 image: OpenCVImageOps.normalize(image, normalization),
                                 labelHeight: sample.labels.height, labelWidth: sample.labels.width, labels: sample.labels.values)
    }
}
