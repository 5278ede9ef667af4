import Foundation

/// Per-channel mean and standard deviation subtracted and divided on 0…255 RGB values.
public struct Normalization: Equatable, Sendable {
    /// R, G, B means.
    public var mean: [Float]
    /// R, G, B standard deviations.
    public var std: [Float]
    /// mmseg's ImageNet statistics, RGB order, on the 0…255 scale.
    public static let imagenet = Normalization(mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375])
    /// Explicit statistics (3 values each).
    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == 3 && std.count == 3 && std.allSatisfy { $0 > 0 }, "normalisation needs 3 means and 3 positive stds")
        self.mean = mean; self.std = std
    }
}

/// Resampling with OpenCV's conventions (what mmcv's `imresize` and VNL's `cv2.resize` call):
/// shared by the segmentation and depth pipelines.
public enum OpenCVImageOps {
    /// Bilinear resize as OpenCV's INTER_LINEAR (half-pixel centres, edge clamping, no
    /// antialiasing, results rounded to the nearest byte).
    public static func resizeBilinear(_ image: RGBImage, height: Int, width: Int) -> RGBImage {
        if height == image.height && width == image.width { return image }
        let xs = axis(source: image.width, target: width), ys = axis(source: image.height, target: height)
        var out = [UInt8](repeating: 0, count: height * width * 3)
        let src = image.pixels, sw = image.width
        for y in 0..<height {
            let (y0, y1, fy) = ys[y]
            for x in 0..<width {
                let (x0, x1, fx) = xs[x]
                for c in 0..<3 {
                    let a = Float(src[(y0 * sw + x0) * 3 + c]), b = Float(src[(y0 * sw + x1) * 3 + c])
                    let d = Float(src[(y1 * sw + x0) * 3 + c]), e = Float(src[(y1 * sw + x1) * 3 + c])
                    let top = a + (b - a) * fx, bottom = d + (e - d) * fx
                    let v = top + (bottom - top) * fy
                    out[(y * width + x) * 3 + c] = UInt8(min(255, max(0, v.rounded())))
                }
            }
        }
        return try! RGBImage(height: height, width: width, pixels: out)   // sizes are positive by construction
    }

    /// Bilinear resize of a single-channel float map (depth) as OpenCV's INTER_LINEAR on float32:
    /// the same taps as for images, no rounding. values: height × width → toHeight × toWidth.
    public static func resizeBilinear(_ values: [Float], height: Int, width: Int, toHeight: Int, toWidth: Int) -> [Float] {
        precondition(values.count == height * width && toHeight > 0 && toWidth > 0, "resizeBilinear: \(values.count) values for \(height)×\(width)")
        if toHeight == height && toWidth == width { return values }
        let xs = axis(source: width, target: toWidth), ys = axis(source: height, target: toHeight)
        var out = [Float](repeating: 0, count: toHeight * toWidth)
        for y in 0..<toHeight {
            let (y0, y1, fy) = ys[y]
            for x in 0..<toWidth {
                let (x0, x1, fx) = xs[x]
                let a = values[y0 * width + x0], b = values[y0 * width + x1], d = values[y1 * width + x0], e = values[y1 * width + x1]
                let top = a + (b - a) * fx, bottom = d + (e - d) * fx
                out[y * toWidth + x] = top + (bottom - top) * fy
            }
        }
        return out
    }

    /// Source taps (lower, upper, weight of upper) of each target coordinate.
    static func axis(source: Int, target: Int) -> [(Int, Int, Float)] {
        let scale = Double(source) / Double(target)
        return (0..<target).map { i in
            var s = (Double(i) + 0.5) * scale - 0.5
            if s < 0 { s = 0 }
            var i0 = Int(s)
            var f = Float(s - Double(i0))
            if i0 >= source - 1 { i0 = source - 1; f = 0 }
            return (i0, min(i0 + 1, source - 1), f)
        }
    }

    /// Normalises an interleaved RGB image into a channel-major float buffer of 3 × h × w.
    public static func normalize(_ image: RGBImage, _ n: Normalization) -> [Float] {
        let hw = image.height * image.width
        var out = [Float](repeating: 0, count: 3 * hw)
        let inv = n.std.map { 1 / $0 }
        for p in 0..<hw {
            for c in 0..<3 { out[c * hw + p] = (Float(image.pixels[p * 3 + c]) - n.mean[c]) * inv[c] }
        }
        return out
    }
}
