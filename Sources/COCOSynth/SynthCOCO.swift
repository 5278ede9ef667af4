import COCO
import Foundation
import ImageCodecs

/// Why `SynthCOCO` could not produce or write a set.
public enum SynthCOCOError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A parameter out of range (message names it).
    case invalidParameter(String)
    /// A file or folder could not be written.
    case cannotWrite(path: String, reason: String)
    /// JPEG encoding failed (libjpeg-turbo's message).
    case jpeg(String)
    /// The COCO layer refused something (message from `COCOError` or `RLEFormatError`).
    case coco(String)

    /// The message.
    public var description: String {
        switch self {
        case .invalidParameter(let m): return m
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        case .jpeg(let m): return "JPEG encoding failed: \(m)"
        case .coco(let m): return m
        }
    }
}

/// One generated image: its pixels and its annotations (image id and annotation ids filled in).
public struct SynthCOCOSample: Sendable {
    /// The rendered image.
    public let image: RGBImage
    /// Instances in painting order; crowd regions first.
    public let annotations: [COCOAnnotation]
}

/// A synthetic instance-segmentation set in the COCO layout: overlapping shapes of four categories
/// on smooth noisy backgrounds, with some crowd regions (clusters of small discs).
///
/// Annotations are modal, as COCO's are: each instance is what stays visible after later shapes are
/// painted over it. A fully visible shape keeps its exact polygon (the polygon rasterises to exactly
/// its pixels, since the painting uses the same rasteriser); a partly covered one gets its visible
/// mask as compressed RLE; one with fewer than `minVisiblePixels` left is dropped. Crowd regions
/// are uncompressed RLE with `iscrowd: 1`, as in COCO's own files. Every image is a function of
/// (seed, image index) alone, so sets of different sizes agree on their common images.
public enum SynthCOCO {
    /// The categories, with non-contiguous ids on purpose (as COCO's) so id ↔ index mapping is exercised.
    public static let categories: [COCOCategory] = [
        COCOCategory(id: 1, name: "disc", supercategory: "shape"),
        COCOCategory(id: 3, name: "square", supercategory: "shape"),
        COCOCategory(id: 7, name: "triangle", supercategory: "shape"),
        COCOCategory(id: 12, name: "star", supercategory: "shape"),
    ]
    /// Instances left with fewer visible pixels are dropped (they would be noise to train on).
    public static let minVisiblePixels = 16

    /// The file name of image `id`, COCO style.
    public static func fileName(imageID id: Int) -> String { String(format: "%012d.jpg", id) }

    /// Renders image `index` (0-based; its id is index + 1) of the set with `seed`.
    /// - Parameter firstAnnotationID: the id of its first annotation (ids are consecutive).
    public static func sample(index: Int, seed: UInt64, height: Int, width: Int,
                              firstAnnotationID: Int) throws(SynthCOCOError) -> SynthCOCOSample {
        guard height >= 16, width >= 16, height <= 8192, width <= 8192 else {
            throw .invalidParameter("image size must be 16…8192 on each side, not \(height)×\(width)")
        }
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03 &+ 1)
        let imageID = index + 1
        let n = height * width
        // owner[p]: index into `shapes` of the topmost shape covering row-major pixel p, or -1.
        var owner = [Int32](repeating: -1, count: n)
        struct Shape { var category: Int; var polygons: [[Double]]; var crowd: Bool; var color: (Double, Double, Double) }
        var shapes: [Shape] = []

        func paint(_ polygons: [[Double]], index: Int32) throws(SynthCOCOError) {
            for polygon in polygons {
                let mask: [UInt8]
                do { mask = try RLE(polygon: polygon, height: height, width: width).decodeRowMajor() } catch {
                    throw .coco("\(error)")
                }
                for p in 0..<n where mask[p] != 0 { owner[p] = index }
            }
        }
        let palette: [(Double, Double, Double)] = [(220, 60, 50), (60, 190, 80), (50, 90, 220), (230, 210, 40)]
        func color(_ category: Int) -> (Double, Double, Double) {
            let base = palette[category]
            return (base.0 + rng.uniform(-25, 25), base.1 + rng.uniform(-25, 25), base.2 + rng.uniform(-25, 25))
        }
        let side = Double(min(height, width))

        // A crowd region (about one image in three): many small discs of one category in a patch,
        // painted first so objects can cover it.
        if rng.uniform(0, 1) < 0.35 {
            let category = rng.int(below: categories.count)
            let patchW = Double(width) * rng.uniform(0.25, 0.45), patchH = Double(height) * rng.uniform(0.25, 0.45)
            let x0 = rng.uniform(0, Double(width) - patchW), y0 = rng.uniform(0, Double(height) - patchH)
            let r = max(1.5, side * 0.02)
            var discs: [[Double]] = []
            for _ in 0..<(8 + rng.int(below: 10)) {
                let cx = x0 + r + rng.uniform(0, max(patchW - 2 * r, 0.01)), cy = y0 + r + rng.uniform(0, max(patchH - 2 * r, 0.01))
                discs.append(regularPolygon(cx: cx, cy: cy, radius: r * rng.uniform(0.7, 1.3), sides: 12, angle: 0))
            }
            shapes.append(Shape(category: category, polygons: discs, crowd: true, color: color(category)))
            try paint(discs, index: 0)
        }
        // Objects, 2…6, painted back to front; centres are drawn so every shape lies inside the image.
        for _ in 0..<(2 + rng.int(below: 5)) {
            let category = rng.int(below: categories.count)
            let radius = side * rng.uniform(0.06, 0.2)
            let cx = rng.uniform(radius + 1, Double(width) - radius - 1), cy = rng.uniform(radius + 1, Double(height) - radius - 1)
            let angle = rng.uniform(0, 2 * Double.pi)
            let polygon: [Double]
            switch category {
            case 0: polygon = regularPolygon(cx: cx, cy: cy, radius: radius, sides: 32, angle: angle)
            case 1: polygon = regularPolygon(cx: cx, cy: cy, radius: radius, sides: 4, angle: angle)
            case 2: polygon = regularPolygon(cx: cx, cy: cy, radius: radius, sides: 3, angle: angle)
            default: polygon = star(cx: cx, cy: cy, radius: radius, angle: angle)
            }
            shapes.append(Shape(category: category, polygons: [polygon], crowd: false, color: color(category)))
            try paint([polygon], index: Int32(shapes.count - 1))
        }

        // Pixels: a horizontal/vertical gradient background, the shapes' flat colours, mild noise
        // (so the JPEGs look like photographs to a codec rather than flat art).
        let bg = (rng.uniform(30, 200), rng.uniform(30, 200), rng.uniform(30, 200))
        let gx = rng.uniform(-40, 40), gy = rng.uniform(-40, 40)
        var pixels = [UInt8](repeating: 0, count: n * 3)
        for y in 0..<height {
            for x in 0..<width {
                let p = y * width + x
                let c: (Double, Double, Double)
                if owner[p] >= 0 {
                    c = shapes[Int(owner[p])].color
                } else {
                    let t = gx * Double(x) / Double(width) + gy * Double(y) / Double(height)
                    c = (bg.0 + t, bg.1 + t, bg.2 + t)
                }
                let noise = rng.uniform(-6, 6)
                pixels[3 * p] = clampByte(c.0 + noise)
                pixels[3 * p + 1] = clampByte(c.1 + noise)
                pixels[3 * p + 2] = clampByte(c.2 + noise)
            }
        }

        var annotations: [COCOAnnotation] = []
        for (i, shape) in shapes.enumerated() {
            var visible = [UInt8](repeating: 0, count: n)
            for p in 0..<n where owner[p] == Int32(i) { visible[p] = 1 }
            let mask = RLE(encodingRowMajor: visible, height: height, width: width)
            guard mask.area >= minVisiblePixels else { continue }
            let segmentation: Segmentation
            if shape.crowd {
                segmentation = .rle(mask)
            } else {
                let full: RLE
                do { full = try RLE(polygons: shape.polygons, height: height, width: width) } catch { throw .coco("\(error)") }
                segmentation = full == mask ? .polygons(shape.polygons) : .rle(mask)
            }
            annotations.append(COCOAnnotation(id: firstAnnotationID + annotations.count, imageID: imageID,
                                              categoryID: categories[shape.category].id, bbox: mask.boundingBox,
                                              area: Double(mask.area), isCrowd: shape.crowd, segmentation: segmentation))
        }
        let image: RGBImage
        do { image = try RGBImage(height: height, width: width, pixels: pixels) } catch { throw .jpeg(error.message) }
        return SynthCOCOSample(image: image, annotations: annotations)
    }

    /// Writes `images` images to `<out>/<split>/<id>.jpg` and their annotations to
    /// `<out>/annotations/instances_<split>.json`; returns the dataset as written.
    /// - Parameter quality: JPEG quality 1…100.
    @discardableResult
    public static func write(to out: String, split: String = "train", images: Int, seed: UInt64,
                             height: Int = 256, width: Int = 256, quality: Int = 90) throws(SynthCOCOError) -> COCODataset {
        guard images > 0 else { throw .invalidParameter("--images must be positive, not \(images)") }
        guard !split.isEmpty, !split.contains("/") else { throw .invalidParameter("split name '\(split)' must be a plain folder name") }
        let root = URL(fileURLWithPath: out)
        let imageDir = root.appendingPathComponent(split), annotationDir = root.appendingPathComponent("annotations")
        for dir in [imageDir, annotationDir] {
            do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                throw .cannotWrite(path: dir.path, reason: error.localizedDescription)
            }
        }
        var imageRecords: [COCOImage] = [], annotations: [COCOAnnotation] = []
        for index in 0..<images {
            let s = try sample(index: index, seed: seed, height: height, width: width, firstAnnotationID: annotations.count + 1)
            let name = fileName(imageID: index + 1)
            let jpeg: [UInt8]
            do { jpeg = try JPEG.encode(s.image, quality: quality) } catch { throw .jpeg(error.message) }
            let path = imageDir.appendingPathComponent(name)
            do { try Data(jpeg).write(to: path) } catch { throw .cannotWrite(path: path.path, reason: error.localizedDescription) }
            imageRecords.append(COCOImage(id: index + 1, fileName: name, height: height, width: width))
            annotations += s.annotations
        }
        let path = annotationDir.appendingPathComponent("instances_\(split).json")
        do {
            let dataset = try COCODataset(images: imageRecords, categories: categories, annotations: annotations, path: path.path)
            try dataset.jsonData().write(to: path)
            return dataset
        } catch let error as COCOError {
            throw .coco(error.description)
        } catch {
            throw .cannotWrite(path: path.path, reason: error.localizedDescription)
        }
    }

    /// A regular polygon's vertices (x1, y1, …), rounded to 1/100 px so the JSON stays short and
    /// the written numbers are the ones rasterised.
    static func regularPolygon(cx: Double, cy: Double, radius: Double, sides: Int, angle: Double) -> [Double] {
        (0..<sides).flatMap { k -> [Double] in
            let a = angle + 2 * Double.pi * Double(k) / Double(sides)
            return [round2(cx + radius * cos(a)), round2(cy + radius * sin(a))]
        }
    }

    /// A five-pointed star: ten vertices alternating between `radius` and `radius / 2.2`.
    static func star(cx: Double, cy: Double, radius: Double, angle: Double) -> [Double] {
        (0..<10).flatMap { k -> [Double] in
            let a = angle + Double.pi * Double(k) / 5, r = k % 2 == 0 ? radius : radius / 2.2
            return [round2(cx + r * cos(a)), round2(cy + r * sin(a))]
        }
    }

    static func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
    static func clampByte(_ v: Double) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }
}

/// SplitMix64 (Steele et al.): a tiny seeded generator, enough for scene layout; the same seed
/// gives the same set on every machine.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * Double(next() >> 11) / 9_007_199_254_740_992 }
    /// Uniform in 0..<n.
    mutating func int(below n: Int) -> Int { Int(next() % UInt64(n)) }
}
