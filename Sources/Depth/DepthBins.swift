import Foundation
import PercepCore

/// VNL's depth classification (after Cao et al.): C bins uniform in log10 depth between d_min
/// and d_max (normalised depth, NYU metres / 10), ground truth as bin indices, and the
/// prediction as the soft expectation of the bin centres in log space.
public struct DepthBins: Sendable {
    /// Number of bins C (150 for NYU).
    public let count: Int
    /// Normalised depth range (0.01 and 1.7 for NYU).
    public let minDepth: Float, maxDepth: Float
    /// Bin width in log10 depth, Δ = (log10 d_max − log10 d_min) / C (computed in double, as
    /// NumPy does in VNL's config).
    public let interval: Double
    /// Bin centres c_i = log10 d_min + Δ(i + 0.5), as float32.
    public let centres: [Float]

    /// log10 d_min in double (VNL's config computes the bin geometry with NumPy doubles).
    let logMinDepth: Double

    /// NYU's bins by default.
    public init(count: Int = 150, minDepth: Double = 0.01, maxDepth: Double = 1.7) {
        precondition(count >= 2 && minDepth > 0 && maxDepth > minDepth, "DepthBins: \(count) bins over [\(minDepth), \(maxDepth)]")
        self.count = count; self.minDepth = Float(minDepth); self.maxDepth = Float(maxDepth)
        let lo = log10(minDepth), hi = log10(maxDepth)
        logMinDepth = lo
        let width = (hi - lo) / Double(count)
        interval = width
        centres = (0..<count).map { Float(lo + width * (Double($0) + 0.5)) }
    }

    /// The bin of each ground-truth depth, and the depth the losses see: padding (< 0) becomes
    /// bin C + 1 and depth −1; everything else is clamped to [d_min, d_max] (a depth of 0 lands
    /// in bin 0) and binned by truncation, bin C folded into C − 1.
    public func binned(_ depth: [Float]) -> (bins: [Int32], clamped: [Float]) {
        var bins = [Int32](repeating: 0, count: depth.count), clamped = depth
        let logMin = Float(logMinDepth), width = Float(interval)
        for i in 0..<depth.count {
            // Padding (< 0), and anything that is not a number, is invalid.
            if !(depth[i] >= 0) {
                bins[i] = Int32(count + 1); clamped[i] = -1
                continue
            }
            let d = Swift.min(Swift.max(depth[i], minDepth), maxDepth)
            clamped[i] = d
            let b = Int32((log10f(d) - logMin) / width)
            bins[i] = Swift.min(b, Int32(count - 1))
        }
        return (bins, clamped)
    }

    /// VNL's WCE weights: row j (the ground-truth bin) is exp(−coef·(i − j)²), normalised to sum
    /// to 1. C × C, row-major.
    public func crossEntropyWeights(coefficient: Float = 0.2) -> [Float] {
        var w = [Float](repeating: 0, count: count * count)
        for j in 0..<count {
            var row = (0..<count).map { i -> Double in Foundation.exp(-Double(coefficient) * Double((i - j) * (i - j))) }
            let s = row.reduce(0, +)
            for i in 0..<count { row[i] /= s; w[j * count + i] = Float(row[i]) }
        }
        return w
    }
}

extension Tensor {
    /// The predicted depth of bin logits: 10^(Σ_i softmax_i · c_i), the soft expectation of the
    /// bin centres in log10 space (VNL's `bins_to_depth`, not an argmax).
    /// self (logits): [N, C, H, W] → [N, 1, H, W]; the gradient flows through the softmax.
    public func binsToDepth(_ bins: DepthBins) -> Tensor {
        precondition(rank == 4 && shape[1] == bins.count, "binsToDepth: logits \(shape) need \(bins.count) channels")
        let (n, c, plane) = (shape[0], shape[1], shape[2] * shape[3])
        // The softmax sums and the expected log-depth in double: 10^E turns an error in E into
        // ln 10 times that relative error in depth, and the virtual-normal loss amplifies depth
        // errors further (nearly flat triplets), so float32 sums over 150 bins are not enough.
        // The stored probabilities are float32 (within 2 ulp); the backward's c_k − E[c] is double.
        let probabilities = Tensor(uninitialized: shape)
        let out = Tensor(uninitialized: [n, 1, shape[2], shape[3]])
        let z = data, p = probabilities.data, dst = out.data, centres = bins.centres
        var expectedLogDepth = [Double](repeating: 0, count: n * plane)
        // Blocks of up to 256 positions of one image, so every inner loop runs over contiguous
        // memory of one channel; exp is taken once per logit and kept in p until the total is known.
        let block = Swift.max(1, Swift.min(256, plane)), blocksPerImage = (plane + block - 1) / block
        expectedLogDepth.withUnsafeMutableBufferPointer { expectation in parallelChunks(n * blocksPerImage, grain: 1) { range in
            let peak = UnsafeMutablePointer<Float>.allocate(capacity: block)
            let total = UnsafeMutablePointer<Double>.allocate(capacity: block)
            let weighted = UnsafeMutablePointer<Double>.allocate(capacity: block)
            defer { peak.deallocate(); total.deallocate(); weighted.deallocate() }
            for task in range {
                let img = task / blocksPerImage, q0 = (task % blocksPerImage) * block
                let len = Swift.min(block, plane - q0), first = img * c * plane + q0
                peak.update(repeating: -.infinity, count: len)
                total.update(repeating: 0, count: len)
                weighted.update(repeating: 0, count: len)
                for k in 0..<c { let row = first + k * plane; for j in 0..<len { peak[j] = Swift.max(peak[j], z[row + j]) } }
                for k in 0..<c {
                    let row = first + k * plane, ck = Double(centres[k])
                    for j in 0..<len {
                        let e = Foundation.exp(Double(z[row + j]) - Double(peak[j]))
                        total[j] += e
                        weighted[j] += e * ck
                        p[row + j] = Float(e)
                    }
                }
                for j in 0..<len {
                    let i = img * plane + q0 + j
                    expectation[i] = weighted[j] / total[j]
                    dst[i] = Float(Foundation.pow(10, expectation[i]))
                    total[j] = 1 / total[j]
                }
                for k in 0..<c {
                    let row = first + k * plane
                    for j in 0..<len { p[row + j] = Float(Double(p[row + j]) * total[j]) }
                }
            }
        } }
        let inShape = shape
        Tape.record(out, inputs: [self]) { [probabilities, out, expectedLogDepth] g in
            // d depth / d z_k = depth · ln 10 · p_k · (c_k − E[c]).
            let dz = Tensor(uninitialized: inShape)
            let gz = dz.data, go = g.data, ln10: Float = Foundation.log(10), p = probabilities.data, dst = out.data
            expectedLogDepth.withUnsafeBufferPointer { mean in parallelChunks(n * c, grain: 1) { range in
                for row in range {
                    let img = row / c, ck = Double(centres[row % c]), base = row * plane
                    for q in 0..<plane {
                        let i = img * plane + q
                        // c_k − E[c] in double: it cancels where the probability mass sits.
                        gz[base + q] = Float(Double(go[i] * dst[i] * ln10 * p[base + q]) * (ck - mean[i]))
                    }
                }
            } }
            return [dz]
        }
        return out
    }
}
