import DataLoading
import Foundation
import ImageCodecs

/// A crop (r0, r1, c0, c1) applied to prediction and ground truth as half-open slices; VNL and
/// BTS evaluate NYU on Eigen's crop (45, 471, 41, 601).
public struct DepthCrop: Equatable, Sendable {
    public let rowStart: Int, rowEnd: Int, colStart: Int, colEnd: Int

    /// Eigen's NYU crop: rows 45..470, columns 41..600.
    public static let eigen = DepthCrop(rowStart: 45, rowEnd: 471, colStart: 41, colEnd: 601)

    /// A crop; `parsing` reads "r0,r1,c0,c1".
    public init(rowStart: Int, rowEnd: Int, colStart: Int, colEnd: Int) {
        precondition(0 <= rowStart && rowStart < rowEnd && 0 <= colStart && colStart < colEnd, "DepthCrop: empty or negative crop")
        self.rowStart = rowStart; self.rowEnd = rowEnd; self.colStart = colStart; self.colEnd = colEnd
    }

    /// "r0,r1,c0,c1" with 0 ≤ r0 < r1 and 0 ≤ c0 < c1, or nil.
    public init?(parsing text: String) {
        let v = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == 4, text.split(separator: ",").count == 4, v[0] >= 0, v[0] < v[1], v[2] >= 0, v[2] < v[3] else { return nil }
        self.init(rowStart: v[0], rowEnd: v[1], colStart: v[2], colEnd: v[3])
    }
}

/// VNL's depth metrics (`evaluate_err`), pooled over every valid pixel of a test set rather than
/// averaged per image: each pixel with ground truth > 0 inside the crop adds to the sums, and
/// the metrics are ratios of the sums. Sums add across images and ranks (`merge`).
///
/// Conventions, as VNL: abs_rel = mean |g − p| / g; sq_rel = mean (g − p)² / g² (VNL's squared
/// *relative* error, not Eigen's (g − p)²/g); rms = sqrt(mean (g − p)²) in metres; rms_log on
/// natural logs; log10 = mean |log10 g − log10 p|; δk = share of max(g/p, p/g) < 1.25^k (strict);
/// silog = sqrt(mean d² − (mean d)²), d = ln p − ln g, without ×100.
public struct DepthMetricSums: Equatable, Sendable {
    /// Valid pixels.
    public var count = 0.0
    public var absRel = 0.0, sqRel = 0.0, squaredError = 0.0, squaredLogError = 0.0, log10Error = 0.0
    public var delta = [0.0, 0.0, 0.0]
    public var logDifference = 0.0, squaredLogDifference = 0.0

    /// Empty sums.
    public init() {}

    /// The metric names in `values` order (the JSON keys of `eval-depth --json`).
    public static let names = ["abs_rel", "sq_rel", "rms", "rms_log", "log10", "delta1", "delta2", "delta3", "silog"]

    /// Adds one pixel pair in metres (the ground truth is valid, > 0). `deltaHits` are the three
    /// δ tests, computed by the caller (exactly, from integers, for PNG depths).
    mutating func add(prediction p: Double, truth g: Double, deltaHits: (Bool, Bool, Bool)) {
        count += 1
        let e = g - p
        absRel += abs(e) / g
        sqRel += e * e / (g * g)
        squaredError += e * e
        let d = log(p) - log(g)
        squaredLogError += d * d
        log10Error += abs(log10(g) - log10(p))
        if deltaHits.0 { delta[0] += 1 }
        if deltaHits.1 { delta[1] += 1 }
        if deltaHits.2 { delta[2] += 1 }
        logDifference += d
        squaredLogDifference += d * d
    }

    /// Adds an image of depths in metres (row-major, `height` × `width`): pixels with ground truth
    /// > 0 inside `crop` count. δ is decided in floating point, as VNL does.
    public mutating func add(prediction: [Float], truth: [Float], height: Int, width: Int, crop: DepthCrop?) {
        for i in Self.pixels(crop, height: height, width: width) where truth[i] > 0 {
            let g = Double(truth[i]), p = Double(prediction[i])
            let ratio = max(g / p, p / g)
            add(prediction: p, truth: g, deltaHits: (ratio < 1.25, ratio < 1.25 * 1.25, ratio < 1.25 * 1.25 * 1.25))
        }
    }

    /// Adds an image of integer depths (16-bit PNG values; metres = value / `scale`). δ compares
    /// the integers exactly (max·4 < min·5 for 1.25), so a ratio of exactly 1.25 never counts.
    public mutating func add(prediction: [UInt16], truth: [UInt16], height: Int, width: Int, scale: Double, crop: DepthCrop?) {
        for i in Self.pixels(crop, height: height, width: width) where truth[i] > 0 {
            let gi = Int(truth[i]), pi = Int(prediction[i])
            let hi = max(gi, pi), lo = min(gi, pi)
            // 1.25 = 5/4, 1.25² = 25/16, 1.25³ = 125/64.
            add(prediction: Double(pi) / scale, truth: Double(gi) / scale,
                deltaHits: (hi * 4 < lo * 5, hi * 16 < lo * 25, hi * 64 < lo * 125))
        }
    }

    /// Row-major indices of the pixels inside `crop` (the whole image without one).
    static func pixels(_ crop: DepthCrop?, height: Int, width: Int) -> [Int] {
        let (r0, r1, c0, c1) = bounds(crop, height: height, width: width)
        return (r0..<r1).flatMap { y in (c0..<c1).map { y * width + $0 } }
    }

    static func bounds(_ crop: DepthCrop?, height: Int, width: Int) -> (Int, Int, Int, Int) {
        guard let crop else { return (0, height, 0, width) }
        // Half-open slices as NumPy takes them: clipped to the image.
        return (min(crop.rowStart, height), min(crop.rowEnd, height), min(crop.colStart, width), min(crop.colEnd, width))
    }

    /// The sums as a flat list (the trainer all-reduces them), in a fixed order.
    public var flat: [Double] {
        [count, absRel, sqRel, squaredError, squaredLogError, log10Error] + delta + [logDifference, squaredLogDifference]
    }

    /// Sums from `flat`.
    public init(flat f: [Double]) {
        precondition(f.count == 11, "DepthMetricSums: \(f.count) sums, expected 11")
        count = f[0]; absRel = f[1]; sqRel = f[2]; squaredError = f[3]; squaredLogError = f[4]; log10Error = f[5]
        delta = Array(f[6..<9]); logDifference = f[9]; squaredLogDifference = f[10]
    }

    /// Sums of two shards (images or ranks).
    public mutating func merge(_ other: DepthMetricSums) {
        count += other.count; absRel += other.absRel; sqRel += other.sqRel; squaredError += other.squaredError
        squaredLogError += other.squaredLogError; log10Error += other.log10Error
        for k in 0..<3 { delta[k] += other.delta[k] }
        logDifference += other.logDifference; squaredLogDifference += other.squaredLogDifference
    }

    /// The metrics in `names` order (NaN without valid pixels).
    public var values: [Double] {
        let n = count
        let meanD = logDifference / n, meanD2 = squaredLogDifference / n
        return [absRel / n, sqRel / n, (squaredError / n).squareRoot(), (squaredLogError / n).squareRoot(), log10Error / n,
                delta[0] / n, delta[1] / n, delta[2] / n, max(0, meanD2 - meanD * meanD).squareRoot()]
    }
}

/// `eval-depth --pred-dir P --gt-dir G`: 16-bit PNG depth maps matched by file stem.
public enum DepthPredictionFolder {
    /// Pools VNL's metrics over every pair (value / `scale` = metres; ground truth 0 = invalid).
    /// Prediction zeros at valid pixels, other bit depths than 16, colour PNGs and size mismatches
    /// are errors naming the file.
    public static func evaluate(predDir: String, gtDir: String, scale: Double, crop: DepthCrop?) throws -> (sums: DepthMetricSums, images: Int) {
        let pairs: [(stem: String, prediction: String, truth: String)]
        do { pairs = try FileListing.pairByStem(predDir: predDir, truthDir: gtDir, suffix: ".png", what: ("prediction", "ground truth")) } catch {
            throw DepthDataError(file: error.path, error.problem)
        }
        var sums = DepthMetricSums()
        for (_, predPath, gtPath) in pairs {
            let p = try readDepthPNG(predPath), g = try readDepthPNG(gtPath)
            guard p.width == g.width, p.height == g.height else {
                throw DepthDataError(file: predPath, "prediction is \(p.height)×\(p.width) but ground truth \(gtPath) is \(g.height)×\(g.width)")
            }
            if let i = p.pixels.indices.first(where: { p.pixels[$0] == 0 && g.pixels[$0] > 0 }) {
                throw DepthDataError(file: predPath, item: "row \(i / p.width), column \(i % p.width)",
                                     "prediction 0 where the ground truth is valid (write predictions clamped to [1, 65535])")
            }
            sums.add(prediction: p.pixels, truth: g.pixels, height: p.height, width: p.width, scale: scale, crop: crop)
        }
        return (sums, pairs.count)
    }

    /// Writes 16-bit depth values (height × width) as a grey PNG, creating the folder.
    public static func writeDepthPNG(_ values: [UInt16], height: Int, width: Int, to path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let bytes = try PNG.encode(try Grey16Image(height: height, width: width, pixels: values))
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch let error as PNGError {
            throw DepthDataError(file: path, error.message)
        } catch {
            throw DepthDataError(file: path, "cannot write: \(error.localizedDescription)")
        }
    }

    /// A grey 16-bit PNG; any other bit depth or colour type is refused (an 8-bit PNG of depths
    /// would silently mean metres/255).
    public static func readDepthPNG(_ path: String) throws -> Grey16Image {
        let data: [UInt8]
        do { data = try ImageFile.bytes(path) } catch { throw DepthDataError(file: path, error.problem) }
        do {
            let info = try PNG.info(data)
            guard info.bitDepth == 16, info.colorType == .grey else {
                throw DepthDataError(file: path, "a depth map must be a 16-bit grey PNG, this one is \(info.bitDepth)-bit \(info.colorType)")
            }
            return try PNG.decodeGrey16(data)
        } catch let error as PNGError {
            throw DepthDataError(file: path, error.message)
        }
    }
}

/// Depth maps as pictures: the frame, its ground truth and the prediction side by side, both
/// depths colour-mapped over the same range (the ground truth's valid 1st–99th percentile), near
/// in warm and far in cool colours, invalid ground truth black.
public enum DepthVisual {
    /// Colour stops from near to far (red, yellow, green, cyan, blue, violet).
    static let stops: [SIMD3<Double>] = [[0.85, 0.1, 0.1], [0.95, 0.8, 0.1], [0.2, 0.75, 0.2], [0.1, 0.7, 0.8], [0.15, 0.3, 0.85], [0.35, 0.1, 0.55]]

    /// RGB of `value` in [lo, hi].
    static func colour(_ value: Float, lo: Float, hi: Float) -> (UInt8, UInt8, UInt8) {
        let t = Double(max(0, min(1, (value - lo) / max(hi - lo, 1e-6)))) * Double(stops.count - 1)
        let i = min(Int(t), stops.count - 2), f = t - Double(i)
        let c = stops[i] * (1 - f) + stops[i + 1] * f
        return (UInt8(c.x * 255), UInt8(c.y * 255), UInt8(c.z * 255))
    }

    /// A (height × 3·width) RGB picture: `rgb` | ground truth | prediction (metres, row-major).
    public static func sideBySide(rgb: [UInt8], truth: [Float], prediction: [Float], height: Int, width: Int) -> RGBImage {
        let valid = truth.filter { $0 > 0 }.sorted()
        let lo = valid.isEmpty ? 0 : valid[valid.count / 100], hi = valid.isEmpty ? 1 : valid[valid.count * 99 / 100]
        var out = [UInt8](repeating: 0, count: height * width * 3 * 3)
        for y in 0..<height {
            for x in 0..<width {
                let row = y * width * 3, i = y * width + x
                for c in 0..<3 { out[(row + x) * 3 + c] = rgb[i * 3 + c] }
                if truth[i] > 0 {
                    let (r, g, b) = colour(truth[i], lo: lo, hi: hi)
                    out[(row + width + x) * 3] = r; out[(row + width + x) * 3 + 1] = g; out[(row + width + x) * 3 + 2] = b
                }
                let (r, g, b) = colour(prediction[i], lo: lo, hi: hi)
                out[(row + 2 * width + x) * 3] = r; out[(row + 2 * width + x) * 3 + 1] = g; out[(row + 2 * width + x) * 3 + 2] = b
            }
        }
        return try! RGBImage(height: height, width: 3 * width, pixels: out)   // sizes are positive
    }
}
