import Foundation
import PercepCore

/// How a loss reduces its per-element values.
public enum Reduction: String, Sendable {
    /// Keep per-element values.
    case none
    /// Average (for cross-entropy: weighted average over non-ignored positions).
    case mean
    /// Sum.
    case sum
}

/// Loss functions with PyTorch's definitions. Legend: N batch, C classes/channels, H×W spatial;
/// "positions" are all N·H·W (or N for [N, C] input).
public enum Loss {
    /// Cross-entropy from logits, PyTorch's `F.cross_entropy`.
    ///
    /// logits: [N, C] or [N, C, H, W]; target: class indices [N] or [N, H, W] (as Int32);
    /// positions whose target equals `ignoreIndex` contribute nothing. With class `weight` [C],
    /// the mean is Σ w[y]·nll / Σ w[y] over non-ignored positions. A target outside 0..<C (other
    /// than ignoreIndex) is a precondition failure naming the value.
    public static func crossEntropy(_ logits: Tensor, target: [Int32], ignoreIndex: Int32 = -100,
                                    weight: [Float]? = nil, reduction: Reduction = .mean) -> Tensor {
        precondition(logits.rank >= 2, "cross_entropy: logits \(logits.shape) must be [N, C, ...]")
        let n = logits.shape[0], c = logits.shape[1], inner = logits.shape[2...].reduce(1, *)
        precondition(target.count == n * inner, "cross_entropy: \(target.count) targets for logits \(logits.shape)")
        if let weight { precondition(weight.count == c, "cross_entropy: \(weight.count) class weights for \(c) classes") }
        let logp = Tensor(uninitialized: logits.shape)
        Tensor.logSoftmaxRaw(logp.data, logits.data, outer: n, n: c, inner: inner)
        var perPos = [Float](repeating: 0, count: n * inner)
        // w[y] per position, 0 where ignored: the backward scales whole planes by it.
        var posWeight = [Float](repeating: 0, count: n * inner)
        var wsum = 0.0, lsum = 0.0
        for pos in 0..<(n * inner) {
            let y = target[pos]
            if y == ignoreIndex { continue }
            precondition(y >= 0 && Int(y) < c, "cross_entropy: target \(y) is outside 0..<\(c) and is not ignore_index \(ignoreIndex)")
            let w = weight?[Int(y)] ?? 1
            let i = pos / inner, j = pos % inner
            let l = -logp.data[(i * c + Int(y)) * inner + j] * w
            perPos[pos] = l
            posWeight[pos] = w
            lsum += Double(l); wsum += Double(w)
        }
        let out: Tensor
        switch reduction {
        case .none: out = Tensor(shape: [n] + Array(logits.shape[2...]), values: perPos)
        case .sum: out = Tensor(scalar: Float(lsum))
        case .mean: out = Tensor(scalar: Float(lsum / wsum))   // 0/0 = NaN when all ignored, as PyTorch
        }
        let scaleMean = Float(1 / wsum)
        Tape.record(out, inputs: [logits]) { g in
            // d/dx = (softmax − onehot) · w[y] · upstream. Computed plane by plane (class k of
            // image i is contiguous over the `inner` positions) rather than position by
            // position, which strides across all C planes for every pixel: for [2, 150, 256²]
            // logits that is 20M cache-missing accesses on one thread.
            var factor = [Float](repeating: 0, count: n * inner)
            for pos in 0..<(n * inner) where posWeight[pos] != 0 {
                let up: Float
                switch reduction {
                case .none: up = g.data[pos]
                case .sum: up = g.data[0]
                case .mean: up = g.data[0] * scaleMean
                }
                factor[pos] = posWeight[pos] * up
            }
            // dx is written over logp, which nothing reads after this: a [2, 150, 256²] step
            // would otherwise hold a third logits-sized buffer at its peak.
            let dx = Tensor(shape: logits.shape, storage: logp.storage)
            let pd = dx.data, pl = logp.data
            factor.withUnsafeBufferPointer { f in
                parallelChunks(n * c, grain: Swift.max(1, 32_768 / Swift.max(inner, 1))) { planes in
                    for plane in planes {
                        let fi = f.baseAddress! + (plane / c) * inner, src = pl + plane * inner, dst = pd + plane * inner
                        Kernels.exp(dst, src, count: inner)
                        for j in 0..<inner { dst[j] *= fi[j] }
                    }
                }
                for pos in 0..<(n * inner) where f[pos] != 0 {
                    let i = pos / inner, j = pos % inner
                    pd[(i * c + Int(target[pos])) * inner + j] -= f[pos]
                }
            }
            return [dx]
        }
        return out
    }

    /// Cross-entropy against soft targets: mean over positions of −Σ_c target·log softmax(logits).
    /// logits, target: [N, C, ...] with target rows summing to 1 (e.g. a teacher's softmax).
    public static func softTargetCrossEntropy(_ logits: Tensor, target: Tensor) -> Tensor {
        precondition(logits.shape == target.shape, "soft cross-entropy: logits \(logits.shape) and target \(target.shape) differ")
        let positions = logits.count / logits.shape[1]
        return -(target * logits.logSoftmax(axis: 1)).sum() * (1 / Float(positions))
    }

    /// KL divergence, PyTorch's `F.kl_div(input, target)`: pointwise target·(log target − input)
    /// with 0·log 0 = 0. `input` holds log-probabilities; `batchMean` divides the sum by N.
    public static func klDivergence(logProbs input: Tensor, target: Tensor, reduction: Reduction = .mean,
                                    batchMean: Bool = false) -> Tensor {
        precondition(input.shape == target.shape, "kl_div: input \(input.shape) and target \(target.shape) differ")
        let pointwise = Tensor(uninitialized: input.shape)
        let pi = input.data, pt = target.data, pp = pointwise.data
        for k in 0..<input.count { let t = pt[k]; pp[k] = t > 0 ? t * (Foundation.log(t) - pi[k]) : 0 }
        let values = Tensor(shape: input.shape, storage: pointwise.storage)
        Tape.record(values, inputs: [input, target]) { g in
            let pt = target.data, pi = input.data, pg = g.data
            var dx: Tensor?, dt: Tensor?
            if input.requiresGrad {
                let d = Tensor(uninitialized: input.shape)
                for k in 0..<input.count { d.data[k] = -pt[k] * pg[k] }
                dx = d
            }
            if target.requiresGrad {   // d/dt [t·(log t − x)] = log t + 1 − x
                let d = Tensor(uninitialized: target.shape)
                for k in 0..<target.count { d.data[k] = (Foundation.log(pt[k]) + 1 - pi[k]) * pg[k] }
                dt = d
            }
            return [dx, dt]
        }
        if batchMean { return values.sum() * (1 / Float(input.shape[0])) }
        return reduce(values, reduction)
    }

    /// Mean (or summed) squared error.
    public static func mse(_ pred: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
        reduce((pred - target).pow(2), reduction)
    }

    /// Binary cross-entropy on logits, PyTorch's `F.binary_cross_entropy_with_logits`:
    /// max(x, 0) − x·t + log(1 + e^−|x|), computed without overflow.
    public static func bceWithLogits(_ logits: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
        precondition(logits.shape == target.shape, "bce_with_logits: logits \(logits.shape) and target \(target.shape) differ")
        let out = Tensor(uninitialized: logits.shape)
        Kernels.zip(out.data, logits.data, target.data, count: logits.count) { x, t in
            Swift.max(x, 0) - x * t + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        }
        let values = Tensor(shape: logits.shape, storage: out.storage)
        Tape.record(values, inputs: [logits, target]) { g in
            var dx: Tensor?, dt: Tensor?
            if logits.requiresGrad {
                let d = Tensor(uninitialized: logits.shape)
                Kernels.zip3(d.data, logits.data, target.data, g.data, count: logits.count) { x, t, gv in (Kernels.sigmoid(x) - t) * gv }
                dx = d
            }
            if target.requiresGrad {
                let d = Tensor(uninitialized: target.shape)
                Kernels.zip(d.data, logits.data, g.data, count: logits.count) { x, gv in -x * gv }
                dt = d
            }
            return [dx, dt]
        }
        return reduce(values, reduction)
    }

    /// Sigmoid focal loss, torchvision's `sigmoid_focal_loss`: bce·(1 − p_t)^γ weighted by
    /// α·t + (1 − α)·(1 − t) (no weighting when α < 0).
    public static func sigmoidFocal(_ logits: Tensor, _ target: Tensor, alpha: Float = 0.25, gamma: Float = 2,
                                    reduction: Reduction = .none) -> Tensor {
        let p = logits.sigmoid()
        let ce = bceWithLogits(logits, target, reduction: .none)
        let pt = p * target + (1 - p) * (1 - target)
        var loss = ce * (1 - pt).pow(gamma)
        if alpha >= 0 { loss = loss * (alpha * target + (1 - alpha) * (1 - target)) }
        return reduce(loss, reduction)
    }

    /// Smooth L1, PyTorch's `F.smooth_l1_loss`: 0.5·d²/β where |d| < β, |d| − 0.5·β elsewhere.
    public static func smoothL1(_ pred: Tensor, _ target: Tensor, beta: Float = 1, reduction: Reduction = .mean) -> Tensor {
        let d = pred - target
        if beta == 0 { return reduce(d.abs(), reduction) }
        let out = Tensor(uninitialized: d.shape)
        Kernels.map(out.data, d.data, count: d.count) { v in
            let a = Swift.abs(v)
            return a < beta ? 0.5 * v * v / beta : a - 0.5 * beta
        }
        let values = Tensor(shape: d.shape, storage: out.storage)
        Tape.record(values, inputs: [d]) { g in
            let dx = Tensor(uninitialized: d.shape)
            Kernels.zip(dx.data, d.data, g.data, count: d.count) { v, gv in
                (Swift.abs(v) < beta ? v / beta : (v > 0 ? 1 : -1)) * gv
            }
            return [dx]
        }
        return reduce(values, reduction)
    }

    static func reduce(_ t: Tensor, _ r: Reduction) -> Tensor {
        switch r {
        case .none: return t
        case .mean: return t.mean()
        case .sum: return t.sum()
        }
    }
}
