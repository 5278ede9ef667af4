import Foundation

/// Pillow's `Image.resize` for 8-bit images, which detectron2's `ResizeTransform` calls: bilinear
/// with a triangle filter widened by the scale when shrinking (antialiasing), coefficients in
/// 22-bit fixed point, a horizontal pass then a vertical one, each rounded and clipped to 8 bits;
/// and nearest-neighbour (source index ⌊(o + ½)·in/out⌋) for masks.
public enum PILResize {
    static let precisionBits = 32 - 8 - 2

    /// Source window and fixed-point weights of each output index (Pillow's `precompute_coeffs`
    /// and `normalize_coeffs_8bpc`).
    static func coefficients(inSize: Int, outSize: Int) -> [(start: Int, weights: [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale   // the bilinear filter's support is 1
        return (0..<outSize).map { xx in
            let center = (Double(xx) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), inSize)
            var weights = (lo..<hi).map { x -> Double in
                let t = abs((Double(x) - center + 0.5) / filterScale)
                return t < 1 ? 1 - t : 0
            }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            let one = Double(1 << precisionBits)
            return (lo, weights.map { $0 < 0 ? Int32(-0.5 + $0 * one) : Int32(0.5 + $0 * one) })
        }
    }

    /// Resizes interleaved 8-bit pixels (`channels` per pixel) of height × width to `size`.
    public static func bilinear(_ pixels: [UInt8], height: Int, width: Int, channels: Int, to size: (height: Int, width: Int)) -> [UInt8] {
        precondition(pixels.count == height * width * channels, "PIL resize: \(pixels.count) bytes for \(height)×\(width)×\(channels)")
        func clip8(_ v: Int32) -> UInt8 {
            if v >= Int32(255) << Int32(precisionBits) { return 255 }
            if v <= 0 { return 0 }
            return UInt8(v >> Int32(precisionBits))
        }
        let half = Int32(1) << Int32(precisionBits - 1)
        var horizontal = pixels, w = width
        if size.width != width {
            let coeffs = coefficients(inSize: width, outSize: size.width)
            horizontal = [UInt8](repeating: 0, count: height * size.width * channels)
            for y in 0..<height {
                for (xx, c) in coeffs.enumerated() {
                    for ch in 0..<channels {
                        var acc = half
                        for (k, weight) in c.weights.enumerated() {
                            acc &+= Int32(pixels[(y * width + c.start + k) * channels + ch]) &* weight
                        }
                        horizontal[(y * size.width + xx) * channels + ch] = clip8(acc)
                    }
                }
            }
            w = size.width
        }
        guard size.height != height else { return horizontal }
        let coeffs = coefficients(inSize: height, outSize: size.height)
        var out = [UInt8](repeating: 0, count: size.height * w * channels)
        for (yy, c) in coeffs.enumerated() {
            for x in 0..<w {
                for ch in 0..<channels {
                    var acc = half
                    for (k, weight) in c.weights.enumerated() {
                        acc &+= Int32(horizontal[((c.start + k) * w + x) * channels + ch]) &* weight
                    }
                    out[(yy * w + x) * channels + ch] = clip8(acc)
                }
            }
        }
        return out
    }

    /// Nearest-neighbour resize of a single-channel byte map (masks).
    public static func nearest(_ pixels: [UInt8], height: Int, width: Int, to size: (height: Int, width: Int)) -> [UInt8] {
        let sy = Double(height) / Double(size.height), sx = Double(width) / Double(size.width)
        let xs = (0..<size.width).map { min(Int((Double($0) + 0.5) * sx), width - 1) }
        var out = [UInt8](repeating: 0, count: size.height * size.width)
        for y in 0..<size.height {
            let src = min(Int((Double(y) + 0.5) * sy), height - 1) * width
            for x in 0..<size.width { out[y * size.width + x] = pixels[src + xs[x]] }
        }
        return out
    }
}
