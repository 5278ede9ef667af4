import Foundation
import ImageCodecs
import PercepCore

/// The geometry of a depth data set: raw frame size, network crop, the square sides the training
/// augmentation draws from, and the side the test pipeline pads to (NYU: 480 × 640, crop 385,
/// sides 385…640, test 640; the tiny synthetic set: 120 × 160, crop 97, sides 97…160, test 160).
public struct DepthGeometry: Equatable, Sendable {
    public var rawHeight = 480, rawWidth = 640
    /// The network's square input side (`INPUT.CROP_SIZE`).
    public var crop = 385
    /// Square sides drawn uniformly for training (`INPUT.TRAIN_SQUARE_SIZES`).
    public var trainSides = [385, 416, 448, 480, 512, 544, 576, 608, 640]
    /// The square side of the test pipeline (`INPUT.TEST_SQUARE_SIZE`).
    public var testSide = 640
    /// Metres per unit of normalised depth (`MODEL.DEPTH.SCALE`: NYU depths are divided by 10).
    public var depthScale: Float = 10

    /// NYU's geometry.
    public init() {}

    /// The tiny synthetic set's geometry (`synth depth --tiny`).
    public static var tiny: DepthGeometry {
        var g = DepthGeometry()
        g.rawHeight = 120; g.rawWidth = 160; g.crop = 97; g.trainSides = [97, 104, 112, 120, 128, 136, 144, 152, 160]; g.testSide = 160
        return g
    }

    /// What is inconsistent, or nil.
    public var problem: String? {
        if rawHeight < 1 || rawWidth < rawHeight { return "the raw frame must be at least as wide as it is high" }
        if crop < 1 || trainSides.isEmpty || trainSides.contains(where: { $0 < 1 || $0 > rawWidth }) { return "training sides must lie in 1…\(rawWidth)" }
        if testSide < rawHeight || testSide > rawWidth { return "the test side must lie in \(rawHeight)…\(rawWidth)" }
        if !(depthScale > 0) { return "the depth scale must be positive" }
        return nil
    }
}

/// One training sample after VNL's augmentation: the normalised image [3, crop, crop] and the
/// depth in training units [crop, crop] (metres / scale × side / crop; padding −1).
public struct DepthTrainingSample: Sendable {
    public let image: [Float]
    public let depth: [Float]
}

/// VNL's NYU training augmentation (`online_aug`, train phase; ../shared/specs/depth.md §3):
/// flip (u > 0.5), a square side S drawn from `trainSides`, rows of padding on top when S exceeds
/// the frame height (image 128, depth −1), a random S × S crop (at the top when padded), an
/// OpenCV-bilinear resize of image and depth to the crop, ImageNet normalisation, and the depth
/// multiplied by S / crop, so that the pinhole geometry at the fixed focal length stays right.
/// Draws come from `SeededRNG(seed:stream:)` on "depth-aug/<epoch>/<index>" in VNL's order (flip,
/// side, x, y): a sample is augmented identically on any rank or thread.
public struct DepthTrainTransform: Sendable {
    public var geometry: DepthGeometry
    public var flip = true
    public var normalization = Normalization.imagenet
    public var seed: UInt64

    /// A transform over `geometry`.
    public init(geometry: DepthGeometry, seed: UInt64) {
        precondition(geometry.problem == nil, "DepthGeometry: \(geometry.problem!)")
        self.geometry = geometry; self.seed = seed
    }

    /// Augments sample `index` of the set in `epoch`.
    public func apply(_ sample: NYUSample, epoch: Int, index: Int) -> DepthTrainingSample {
        let g = geometry
        precondition(sample.height == g.rawHeight && sample.width == g.rawWidth, "depth sample \(sample.height)×\(sample.width) is not \(g.rawHeight)×\(g.rawWidth)")
        var rng = SeededRNG(seed: seed, stream: "depth-aug/\(epoch)/\(index)")
        let flipped = flip && rng.nextUnit() > 0.5
        let side = g.trainSides[Int(rng.next() % UInt64(g.trainSides.count))]
        let pad = max(0, side - g.rawHeight)
        let x0 = Int(rng.next() % UInt64(g.rawWidth - side + 1))
        let y0 = pad > 0 ? 0 : Int(rng.next() % UInt64(g.rawHeight - side + 1))
        // The padded frame, cropped: (side × side), rows above the frame are padding.
        var rgb = [UInt8](repeating: 128, count: side * side * 3), depth = [Float](repeating: -1, count: side * side)
        for y in 0..<side {
            let sy = y0 + y - pad
            guard sy >= 0 else { continue }
            for x in 0..<side {
                var sx = x0 + x
                if flipped { sx = g.rawWidth - 1 - sx }
                let s = sy * g.rawWidth + sx
                for c in 0..<3 { rgb[(y * side + x) * 3 + c] = sample.rgb[s * 3 + c] }
                depth[y * side + x] = sample.depth[s] / g.depthScale
            }
        }
        let image = try! RGBImage(height: side, width: side, pixels: rgb)   // side ≥ 1 by the geometry's check
        let resized = OpenCVImageOps.resizeBilinear(image, height: g.crop, width: g.crop)
        let factor = Float(side) / Float(g.crop)
        let units = OpenCVImageOps.resizeBilinear(depth, height: side, width: side, toHeight: g.crop, toWidth: g.crop).map { $0 >= 0 ? $0 * factor : $0 }
        return DepthTrainingSample(image: OpenCVImageOps.normalize(resized, normalization), depth: units)
    }
}

/// VNL's NYU test pipeline (evaluation.md §3.2): the frame padded on top to a `testSide` square
/// (value 128) and resized to the crop; the prediction's padded rows dropped, the depth divided by
/// testSide / crop, resized back to the frame and scaled to metres.
public struct DepthTestTransform: Sendable {
    public var geometry: DepthGeometry
    public var normalization = Normalization.imagenet

    /// The pipeline for `geometry`.
    public init(geometry: DepthGeometry) {
        precondition(geometry.problem == nil, "DepthGeometry: \(geometry.problem!)")
        self.geometry = geometry
    }

    /// The network input [3, crop, crop] of a frame.
    public func input(_ sample: NYUSample) -> [Float] {
        let g = geometry, pad = g.testSide - g.rawHeight
        var rgb = [UInt8](repeating: 128, count: g.testSide * g.rawWidth * 3)
        for i in 0..<(g.rawHeight * g.rawWidth * 3) { rgb[pad * g.rawWidth * 3 + i] = sample.rgb[i] }
        // The padded frame is testSide × rawWidth; NYU's is square (640 × 640).
        let image = try! RGBImage(height: g.testSide, width: g.rawWidth, pixels: rgb)
        return OpenCVImageOps.normalize(OpenCVImageOps.resizeBilinear(image, height: g.crop, width: g.crop), normalization)
    }

    /// The prediction [crop, crop] (normalised depth in training units) as metres on the frame
    /// [rawHeight, rawWidth]: drop int(pad · crop / testSide) rows, divide by float32(testSide /
    /// crop), resize (OpenCV bilinear), × depthScale.
    public func metres(_ prediction: [Float]) -> [Float] {
        let g = geometry
        let dropped = Int(Double(g.testSide - g.rawHeight) * Double(g.crop) / Double(g.testSide))
        let ratio = Float(Double(g.testSide) / Double(g.crop))
        let kept = Array(prediction[(dropped * g.crop)...]).map { $0 / ratio }
        return OpenCVImageOps.resizeBilinear(kept, height: g.crop - dropped, width: g.crop, toHeight: g.rawHeight, toWidth: g.rawWidth)
            .map { $0 * g.depthScale }
    }
}
