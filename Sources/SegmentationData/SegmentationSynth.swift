import Foundation
import ImageCodecs
import PercepCore

/// Synthetic semantic-segmentation sets in the ADE20K (or Cityscapes, VOC) layout, where
/// structure matters.
///
/// Scenes: sky above a horizon, textured ground below, then trees (trunk below a crown), houses
/// (wall, roof above it, door on the wall's bottom edge, windows in its upper half), person-like
/// figures (head, torso, 1–2 px limbs) and poles, painted back to front so nearer objects occlude
/// farther ones, plus "other" clutter labelled 0. Colour alone does not give the class: door and
/// window share one texture per house (only their place on the wall differs), trunks and poles
/// draw from the same brown range (only a crown above tells a trunk), and every region is a
/// striped, checked or noisy fill of colours drawn from overlapping ranges.
///
/// Labels are ADE-style raw values: 0 = other (ignored with reduce_zero_label), 1…K the classes
/// of `classNames`. Every image is a pure function of (seed, split, index).
public enum SegmentationSynth {
    /// Class names for raw values 1…K (written to `classes.txt`).
    public static let classNames = ["sky", "ground", "trunk", "crown", "wall", "roof", "door", "window", "person", "pole"]

    enum Class: UInt8 { case other = 0, sky, ground, trunk, crown, wall, roof, door, window, person, pole }

    /// A fill: two colours combined by a pattern, plus per-pixel hash noise.
    struct Texture {
        enum Kind { case stripes, checker, noise }
        var a: (Float, Float, Float), b: (Float, Float, Float)
        var kind: Kind, period: Float, angle: (Float, Float), noise: Float, salt: UInt64

        func color(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8) {
            let t: Float
            switch kind {
            case .stripes:
                let u = Float(x) * angle.0 + Float(y) * angle.1
                t = (u / period).rounded(.down).truncatingRemainder(dividingBy: 2) == 0 ? 0 : 1
            case .checker:
                t = (Int((Float(x) / period).rounded(.down)) + Int((Float(y) / period).rounded(.down))) & 1 == 0 ? 0 : 1
            case .noise:
                t = Float(SegmentationSynth.hash(salt, x / 2, y / 2) & 0xFF) / 255
            }
            let n = (Float(SegmentationSynth.hash(salt &+ 1, x, y) & 0xFF) / 255 - 0.5) * noise
            func mix(_ p: Float, _ q: Float) -> UInt8 { UInt8(max(0, min(255, p + (q - p) * t + n))) }
            return (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
        }
    }

    /// A deterministic 64-bit hash of (salt, x, y) (SplitMix64 finaliser): position-based noise
    /// that does not depend on drawing order.
    static func hash(_ salt: UInt64, _ x: Int, _ y: Int) -> UInt64 {
        var z = salt &+ UInt64(bitPattern: Int64(x)) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(bitPattern: Int64(y)) &* 0xC2B2_AE3D_27D4_EB4F
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The canvas being painted: interleaved RGB and raw labels, both row-major.
    struct Canvas {
        let h: Int, w: Int
        var rgb: [UInt8], labels: [UInt8]
        init(h: Int, w: Int) { self.h = h; self.w = w; rgb = .init(repeating: 0, count: h * w * 3); labels = .init(repeating: 0, count: h * w) }

        mutating func set(_ x: Int, _ y: Int, _ c: Class, _ t: Texture) {
            guard x >= 0, y >= 0, x < w, y < h else { return }
            let (r, g, b) = t.color(x, y)
            let p = y * w + x
            labels[p] = c.rawValue
            rgb[3 * p] = r; rgb[3 * p + 1] = g; rgb[3 * p + 2] = b
        }

        /// Pixel indices lo..<hi clipped to 0..<n; empty when they miss (a range with lower > upper
        /// would trap, so every loop bound goes through here).
        static func clip(_ lo: Int, _ hi: Int, _ n: Int) -> Range<Int> {
            let a = max(lo, 0), b = min(hi, n)
            return a < b ? a..<b : 0..<0
        }

        mutating func rect(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: Class, _ t: Texture) {
            let xs = Self.clip(Int(x0.rounded()), Int(x1.rounded()), w)
            for y in Self.clip(Int(y0.rounded()), Int(y1.rounded()), h) { for x in xs { set(x, y, c, t) } }
        }

        mutating func ellipse(_ cx: Double, _ cy: Double, _ rx: Double, _ ry: Double, _ c: Class, _ t: Texture) {
            guard rx > 0, ry > 0 else { return }
            for y in Self.clip(Int((cy - ry).rounded(.down)), Int((cy + ry).rounded(.up)) + 1, h) {
                for x in Self.clip(Int((cx - rx).rounded(.down)), Int((cx + rx).rounded(.up)) + 1, w) {
                    let dx = (Double(x) + 0.5 - cx) / rx, dy = (Double(y) + 0.5 - cy) / ry
                    if dx * dx + dy * dy <= 1 { set(x, y, c, t) }
                }
            }
        }

        /// A triangle with a horizontal base from (x0, yBase) to (x1, yBase) and apex (xa, yApex).
        mutating func triangle(_ x0: Double, _ x1: Double, _ yBase: Double, _ xa: Double, _ yApex: Double, _ c: Class, _ t: Texture) {
            guard yBase > yApex else { return }
            for y in Self.clip(Int(yApex.rounded(.down)), Int(yBase.rounded()), h) {
                let f = (Double(y) + 0.5 - yApex) / (yBase - yApex)
                guard f >= 0 else { continue }
                let l = xa + (x0 - xa) * f, r = xa + (x1 - xa) * f
                for x in Self.clip(Int(l.rounded()), Int(r.rounded()), w) { set(x, y, c, t) }
            }
        }

        /// A line of the given thickness (thin parts: limbs one or two pixels wide).
        mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, thickness: Int, _ c: Class, _ t: Texture) {
            let n = Int(max(abs(x1 - x0), abs(y1 - y0)).rounded(.up)) + 1
            for i in 0...n {
                let f = Double(i) / Double(n)
                let x = Int((x0 + (x1 - x0) * f).rounded(.down)), y = Int((y0 + (y1 - y0) * f).rounded(.down))
                for dy in 0..<thickness { for dx in 0..<thickness { set(x + dx, y + dy, c, t) } }
            }
        }
    }

    static func uniform(_ rng: inout SeededRNG, _ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * rng.nextUnit() }

    /// A texture with colours drawn around `center` (±spread per channel), random pattern.
    static func texture(_ rng: inout SeededRNG, _ center: (Double, Double, Double), spread: Double) -> Texture {
        func c() -> (Float, Float, Float) {
            (Float(max(0, min(255, center.0 + uniform(&rng, -spread, spread)))),
             Float(max(0, min(255, center.1 + uniform(&rng, -spread, spread)))),
             Float(max(0, min(255, center.2 + uniform(&rng, -spread, spread)))))
        }
        let a = c(), b = c()
        let kind: Texture.Kind = [.stripes, .checker, .noise][Int(rng.next() % 3)]
        let theta = uniform(&rng, 0, 1)
        let (s, co) = DeterministicMath.sinCosTurns(theta)
        return Texture(a: a, b: b, kind: kind, period: Float(uniform(&rng, 2, 5)), angle: (Float(co), Float(s)),
                       noise: Float(uniform(&rng, 10, 40)), salt: rng.next())
    }

    /// A colour centre anywhere in a broad mid range: wall, roof, clothes and clutter all draw
    /// from it, so their colours overlap.
    static func anyColor(_ rng: inout SeededRNG) -> (Double, Double, Double) {
        (uniform(&rng, 40, 215), uniform(&rng, 40, 215), uniform(&rng, 40, 215))
    }

    /// Renders image `index` of `split`: the RGB image (height × width × 3) and the raw ADE-style
    /// labels (height × width, 0 = other, 1…K = `classNames`).
    public static func render(height: Int, width: Int, seed: UInt64, split: SegmentationSplit, index: Int) -> (image: RGBImage, labels: GreyImage) {
        precondition(height >= 16 && width >= 16, "synthetic images need sides of at least 16 pixels")
        var rng = SeededRNG(seed: seed, stream: "seg-synth/\(split.rawValue)/\(index)")
        var canvas = Canvas(h: height, w: width)
        let H = Double(height), W = Double(width)
        let horizon = uniform(&rng, 0.3, 0.55) * H
        // Sky and ground: blue-ish and green/brown-ish but with overlap between them and the objects.
        let sky = texture(&rng, (uniform(&rng, 90, 170), uniform(&rng, 130, 200), uniform(&rng, 170, 240)), spread: 25)
        let ground = texture(&rng, (uniform(&rng, 70, 150), uniform(&rng, 90, 160), uniform(&rng, 40, 110)), spread: 30)
        canvas.rect(0, 0, W, horizon, .sky, sky)
        canvas.rect(0, horizon, W, H, .ground, ground)

        // Objects stand on the ground; farther (higher base) ones are smaller and painted first.
        let count = 3 + Int(rng.next() % 4)
        var objects: [(base: Double, kind: Int, x: Double)] = []
        for _ in 0..<count {
            objects.append((uniform(&rng, horizon + 2, H + 0.15 * H), Int(rng.next() % 5), uniform(&rng, -0.05, 1.05) * W))
        }
        objects.sort { $0.base < $1.base }
        let brown = (uniform(&rng, 90, 140), uniform(&rng, 60, 100), uniform(&rng, 30, 70))
        for o in objects {
            let depth = (o.base - horizon) / (H * 1.15 - horizon)   // 0 far … 1 near
            let s = (0.35 + 0.65 * depth) * H                       // object scale in pixels
            switch o.kind {
            case 0: // tree: trunk below a crown overlapping its top
                let trunkW = max(2, s * uniform(&rng, 0.06, 0.1)), trunkH = s * uniform(&rng, 0.25, 0.4)
                let bark = texture(&rng, brown, spread: 30)
                canvas.rect(o.x - trunkW / 2, o.base - trunkH, o.x + trunkW / 2, o.base, .trunk, bark)
                let r = s * uniform(&rng, 0.15, 0.25)
                let leaves = texture(&rng, (uniform(&rng, 30, 110), uniform(&rng, 90, 170), uniform(&rng, 30, 90)), spread: 35)
                canvas.ellipse(o.x, o.base - trunkH - r * 0.7, r * uniform(&rng, 0.8, 1.2), r, .crown, leaves)
            case 1, 2: // house: wall, roof above, door on the bottom edge, windows in the upper half
                let ww = s * uniform(&rng, 0.35, 0.6), wh = s * uniform(&rng, 0.25, 0.4)
                let x0 = o.x - ww / 2, x1 = o.x + ww / 2, top = o.base - wh
                canvas.rect(x0, top, x1, o.base, .wall, texture(&rng, anyColor(&rng), spread: 30))
                let over = ww * 0.08
                canvas.triangle(x0 - over, x1 + over, top, o.x + uniform(&rng, -0.1, 0.1) * ww, top - wh * uniform(&rng, 0.4, 0.8),
                                .roof, texture(&rng, anyColor(&rng), spread: 30))
                let openings = texture(&rng, anyColor(&rng), spread: 25)   // door and windows share it
                let dw = max(2, ww * 0.18), dh = wh * uniform(&rng, 0.45, 0.6)
                let dx = o.x + uniform(&rng, -0.25, 0.25) * ww
                canvas.rect(dx - dw / 2, o.base - dh, dx + dw / 2, o.base, .door, openings)
                let win = max(2, ww * 0.14)
                for side in [-1.0, 1.0] where abs(dx - (o.x + side * ww * 0.3)) > dw / 2 + win / 2 {
                    let cx = o.x + side * ww * 0.3, cy = top + wh * 0.3
                    canvas.rect(cx - win / 2, cy - win / 2, cx + win / 2, cy + win / 2, .window, openings)
                }
            case 3: // person-like figure: head, torso, thin arms and legs
                let ph = s * uniform(&rng, 0.3, 0.45)
                let clothes = texture(&rng, anyColor(&rng), spread: 30)
                let limb = max(1, Int((ph / 40).rounded()))
                let hip = o.base - ph * 0.45, shoulder = o.base - ph * 0.8
                canvas.line(o.x - ph * 0.08, hip, o.x - ph * 0.15, o.base - 1, thickness: limb, .person, clothes)
                canvas.line(o.x + ph * 0.08, hip, o.x + ph * 0.15, o.base - 1, thickness: limb, .person, clothes)
                canvas.rect(o.x - ph * 0.1, shoulder, o.x + ph * 0.1, hip + 1, .person, clothes)
                canvas.line(o.x - ph * 0.1, shoulder, o.x - ph * 0.28, hip - ph * uniform(&rng, -0.05, 0.2), thickness: limb, .person, clothes)
                canvas.line(o.x + ph * 0.1, shoulder, o.x + ph * 0.28, hip - ph * uniform(&rng, -0.05, 0.2), thickness: limb, .person, clothes)
                canvas.ellipse(o.x, shoulder - ph * 0.09, ph * 0.08, ph * 0.09, .person,
                               texture(&rng, (uniform(&rng, 150, 230), uniform(&rng, 110, 180), uniform(&rng, 80, 150)), spread: 20))
            default: // pole: trunk-coloured thin vertical bar with no crown, sometimes a cross arm
                let pw = max(1, s * uniform(&rng, 0.02, 0.04)), ph = s * uniform(&rng, 0.5, 0.8)
                let metal = texture(&rng, brown, spread: 30)
                canvas.rect(o.x - pw / 2, o.base - ph, o.x + pw / 2, o.base, .pole, metal)
                if rng.nextUnit() < 0.5 { canvas.rect(o.x - pw * 3, o.base - ph, o.x + pw * 3, o.base - ph + pw, .pole, metal) }
            }
        }
        // "Other" clutter in front (ignored by reduce_zero_label), occluding whatever it covers.
        for _ in 0..<Int(rng.next() % 3) {
            canvas.ellipse(uniform(&rng, 0, W), uniform(&rng, horizon, H), uniform(&rng, 2, 0.08 * W), uniform(&rng, 2, 0.06 * H),
                           .other, texture(&rng, anyColor(&rng), spread: 40))
        }
        return (try! RGBImage(height: height, width: width, pixels: canvas.rgb),     // sizes checked above
                try! GreyImage(height: height, width: width, pixels: canvas.labels))
    }

    /// Writes the scenes in `layout`'s official layout with `train` training and `val` validation
    /// images and returns the data set root:
    /// - ADE20K: `<out>/ADEChallengeData2016`, `images/{training,validation}/ADE_{train,val}_%08d.jpg`,
    ///   8-bit grey annotation PNGs under `annotations/`, and `classes.txt` (the 10 class names).
    /// - Cityscapes: `<out>/cityscapes`, `leftImg8bit/{train,val}/synth/synth_%06d_000019_leftImg8bit.png`
    ///   and, under `gtFine/`, both `*_gtFine_labelIds.png` and `*_gtFine_labelTrainIds.png` (as
    ///   cityscapesScripts leaves them): class k becomes trainId k − 1 (the first 10 of the 19),
    ///   "other" labelId 0 / trainId 255.
    /// - VOC: `<out>/VOC2012`, `JPEGImages/synth_{train,val}_%06d.jpg`, palette `SegmentationClass/*.png`
    ///   (class k is index k of the 21, "other" the background) and
    ///   `ImageSets/Segmentation/{train,val}.txt`.
    /// Cityscapes and VOC keep their own class lists, of which the scenes use the first ten.
    /// - Throws: `SegmentationDataError` naming the file that could not be written.
    @discardableResult
    public static func write(to out: String, train: Int, val: Int, height: Int, width: Int, seed: UInt64,
                             quality: Int = 95, layout: SegmentationDatasetFormat = .ade20k) throws(SegmentationDataError) -> String {
        switch layout {
        case .ade20k: return try writeADE20K(to: out, train: train, val: val, height: height, width: width, seed: seed, quality: quality)
        case .cityscapes: return try writeCityscapes(to: out, train: train, val: val, height: height, width: width, seed: seed)
        case .voc: return try writeVOC(to: out, train: train, val: val, height: height, width: width, seed: seed, quality: quality)
        }
    }

    static func makeFolder(_ dir: String) throws(SegmentationDataError) {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw SegmentationDataError(path: dir, problem: "cannot create the folder: \(error.localizedDescription)")
        }
    }

    static func save(_ bytes: [UInt8], _ path: String) throws(SegmentationDataError) {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw SegmentationDataError(path: path, problem: "cannot write") }
    }

    static func jpeg(_ image: RGBImage, quality: Int, _ path: String) throws(SegmentationDataError) -> [UInt8] {
        do { return try JPEG.encode(image, quality: quality) } catch { throw SegmentationDataError(path: path, problem: error.message) }
    }

    static func png(_ labels: GreyImage, palette: [UInt8]? = nil, _ path: String) throws(SegmentationDataError) -> [UInt8] {
        do { return try PNG.encode(labels, palette: palette) } catch { throw SegmentationDataError(path: path, problem: error.message) }
    }

    static func png(_ image: RGBImage, _ path: String) throws(SegmentationDataError) -> [UInt8] {
        do { return try PNG.encode(image) } catch { throw SegmentationDataError(path: path, problem: error.message) }
    }

    static func writeCityscapes(to out: String, train: Int, val: Int, height: Int, width: Int, seed: UInt64) throws(SegmentationDataError) -> String {
        let root = out + "/cityscapes"
        var labelIdOfTrainId = [Int: UInt8]()
        for (id, trainId) in SegmentationClasses.cityscapesTrainIds { labelIdOfTrainId[trainId] = UInt8(id) }
        for (split, n) in [(SegmentationSplit.train, train), (.val, val)] {
            let images = "\(root)/leftImg8bit/\(split.rawValue)/synth", annotations = "\(root)/gtFine/\(split.rawValue)/synth"
            try makeFolder(images); try makeFolder(annotations)
            for i in 0..<n {
                let (image, labels) = render(height: height, width: width, seed: seed, split: split, index: i)
                let stem = String(format: "synth_%06d_000019", i)
                let imagePath = "\(images)/\(stem)_leftImg8bit.png"
                try save(try png(image, imagePath), imagePath)
                let trainIds = labels.pixels.map { $0 == 0 ? 255 : $0 - 1 }
                let labelIds = trainIds.map { $0 == 255 ? 0 : labelIdOfTrainId[Int($0)]! }
                for (suffix, values) in [("_gtFine_labelIds.png", labelIds), ("_gtFine_labelTrainIds.png", trainIds)] {
                    let path = "\(annotations)/\(stem)\(suffix)"
                    try save(try png(try! GreyImage(height: height, width: width, pixels: values), path), path)   // sizes as rendered
                }
            }
        }
        return root
    }

    static func writeVOC(to out: String, train: Int, val: Int, height: Int, width: Int, seed: UInt64, quality: Int) throws(SegmentationDataError) -> String {
        let root = out + "/VOC2012"
        for folder in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] { try makeFolder("\(root)/\(folder)") }
        for (split, n) in [(SegmentationSplit.train, train), (.val, val)] {
            var ids = [String]()
            for i in 0..<n {
                let (image, labels) = render(height: height, width: width, seed: seed, split: split, index: i)
                let id = String(format: "synth_\(split.rawValue)_%06d", i)
                let imagePath = "\(root)/JPEGImages/\(id).jpg", annotationPath = "\(root)/SegmentationClass/\(id).png"
                try save(try jpeg(image, quality: quality, imagePath), imagePath)
                try save(try png(labels, palette: PNG.vocPalette, annotationPath), annotationPath)
                ids.append(id)
            }
            try save(Array((ids.map { $0 + "\n" }.joined()).utf8), "\(root)/ImageSets/Segmentation/\(split.rawValue).txt")
        }
        return root
    }

    static func writeADE20K(to out: String, train: Int, val: Int, height: Int, width: Int, seed: UInt64,
                            quality: Int) throws(SegmentationDataError) -> String {
        let root = out + "/ADEChallengeData2016"
        for (split, folder, prefix, n) in [(SegmentationSplit.train, "training", "ADE_train", train), (.val, "validation", "ADE_val", val)] {
            for kind in ["images", "annotations"] { try makeFolder("\(root)/\(kind)/\(folder)") }
            for i in 0..<n {
                let (image, labels) = render(height: height, width: width, seed: seed, split: split, index: i)
                let name = prefix + "_" + String(format: "%08d", i + 1)
                let jpegPath = "\(root)/images/\(folder)/\(name).jpg", pngPath = "\(root)/annotations/\(folder)/\(name).png"
                try save(try jpeg(image, quality: quality, jpegPath), jpegPath)
                try save(try png(labels, pngPath), pngPath)
            }
        }
        try save(Array((classNames.joined(separator: "\n") + "\n").utf8), root + "/classes.txt")
        return root
    }
}
