import Foundation
import PercepCore

// Fused losses of FCOS and CondInst: each computes its value and gradient in one pass over the
// elements instead of a chain of elementwise ops, because the classification loss runs over
// every location × class of the batch (millions of elements) and the dice loss over n instances ×
// the stride-4 canvas. Sums are accumulated in double.

extension Tensor {
    /// Picks the C-vectors at given (image, y, x) positions of an NCHW map.
    /// input: [N, C, H, W] → [P, C]; gradients scatter back (repeated picks add).
    public func pickLocations(_ picks: [(image: Int, y: Int, x: Int)]) -> Tensor {
        precondition(rank == 4, "pickLocations: input \(shape) must be [N, C, H, W]")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let offsets = picks.map { p -> Int in
            precondition(p.image >= 0 && p.image < n && p.y >= 0 && p.y < h && p.x >= 0 && p.x < w, "pickLocations: \(p) outside \(shape)")
            return p.image * c * h * w + p.y * w + p.x
        }
        let out = Tensor(uninitialized: [picks.count, c])
        let plane = h * w, src = data, dst = out.data
        for (k, o) in offsets.enumerated() { for ch in 0..<c { dst[k * c + ch] = src[o + ch * plane] } }
        let inShape = shape
        Tape.record(out, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            for (k, o) in offsets.enumerated() { for ch in 0..<c { dx.data[o + ch * plane] += g.data[k * c + ch] } }
            return [dx]
        }
        return out
    }
}

/// FCOS and CondInst losses.
public enum InstanceLoss {
    /// Σ over every location and class of fvcore's sigmoid focal loss with one-hot targets:
    /// α_t·(1 − p_t)^γ·BCE(z, y), p = σ(z), y = 1 for the location's class only (none for
    /// `labels[i] == C`, background). logits: [N, C, H, W]; labels: N·H·W class indices in
    /// (image, y, x) order → scalar. Computed in float32 per element, as fvcore does.
    public static func sigmoidFocalSum(_ logits: Tensor, labels: [Int32], alpha: Float = 0.25, gamma: Float = 2) -> Tensor {
        precondition(logits.rank == 4, "focal: logits \(logits.shape) must be [N, C, H, W]")
        let (n, c, h, w) = (logits.shape[0], logits.shape[1], logits.shape[2], logits.shape[3]), plane = h * w
        precondition(labels.count == n * plane, "focal: \(labels.count) labels for \(n * plane) locations")
        let z = logits.data
        func element(_ x: Float, positive: Bool) -> (loss: Float, grad: Float) {
            let p = Kernels.sigmoid(x)
            let ce = Swift.max(x, 0) - (positive ? x : 0) + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
            if positive {
                let q = 1 - p, mod = Foundation.pow(q, gamma)
                // d/dz: α[−γ·p·q^γ·CE + q^γ·(p − 1)]
                return (alpha * mod * ce, alpha * (-gamma * p * mod * ce + mod * (p - 1)))
            }
            let mod = Foundation.pow(p, gamma)
            // d/dz: (1 − α)[γ·p^γ·(1 − p)·CE + p^γ·p]
            return ((1 - alpha) * mod * ce, (1 - alpha) * (gamma * mod * (1 - p) * ce + mod * p))
        }
        var partial = [Double](repeating: 0, count: n * c)
        partial.withUnsafeMutableBufferPointer { sums in
            parallelFor(n * c) { nc in
                let image = nc / c, cls = Int32(nc % c), base = nc * plane
                var s = 0.0
                for j in 0..<plane { s += Double(element(z[base + j], positive: labels[image * plane + j] == cls).loss) }
                sums[nc] = s
            }
        }
        let out = Tensor(scalar: Float(partial.reduce(0, +)))
        Tape.record(out, inputs: [logits]) { g in
            let dx = Tensor(uninitialized: logits.shape), scale = g.item, pd = dx.data
            parallelFor(n * c) { nc in
                let image = nc / c, cls = Int32(nc % c), base = nc * plane
                for j in 0..<plane { pd[base + j] = scale * element(z[base + j], positive: labels[image * plane + j] == cls).grad }
            }
            return [dx]
        }
        return out
    }

    /// Σ (1 − GIoU)·weight over positives (AdelaiDet's `IOULoss("giou")`, with its +1 smoothing of
    /// the IoU). pred, target: [P, 4] distances (l, t, r, b) from the location; weight: [P]
    /// (the centerness targets) → scalar. Differentiable in `pred`.
    public static func giouSum(_ pred: Tensor, _ target: Tensor, weight: [Float]) -> Tensor {
        precondition(pred.shape == target.shape && pred.rank == 2 && pred.shape[1] == 4 && weight.count == pred.shape[0],
                     "giou: pred \(pred.shape), target \(target.shape), \(weight.count) weights")
        let count = pred.shape[0], p = pred.data, t = target.data
        var total = 0.0
        var grads = [Float](repeating: 0, count: count * 4)
        for i in 0..<count {
            let (pl, pt, pr, pb) = (p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3])
            let (tl, tt, tr, tb) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3])
            let targetArea = (tl + tr) * (tt + tb), predArea = (pl + pr) * (pt + pb)
            let wi = Swift.min(pl, tl) + Swift.min(pr, tr), hi = Swift.min(pb, tb) + Swift.min(pt, tt)
            let gw = Swift.max(pl, tl) + Swift.max(pr, tr), gh = Swift.max(pb, tb) + Swift.max(pt, tt)
            let enclosing = gw * gh, inter = wi * hi, union = targetArea + predArea - inter
            let iou = (inter + 1) / (union + 1)
            let giou = iou - (enclosing - union) / enclosing
            total += Double((1 - giou) * weight[i])
            // L = 1 − GIoU = 2 − (I + 1)/(U + 1) − U/E, with U = A_t + A_p − I. A tie in a min
            // or max splits the gradient as PyTorch's minimum/maximum do.
            let dUnion = (inter + 1) / ((union + 1) * (union + 1)) - 1 / enclosing        // ∂L/∂U
            let dI = -1 / (union + 1) - dUnion                                           // ∂L/∂I, U included
            let dEnclosing = union / (enclosing * enclosing)                             // ∂L/∂E
            let dPW = (pt + pb) * dUnion, dPH = (pl + pr) * dUnion                       // A_p = (pl + pr)(pt + pb)
            func minGrad(_ a: Float, _ b: Float) -> Float { a < b ? 1 : (a == b ? 0.5 : 0) }
            func maxGrad(_ a: Float, _ b: Float) -> Float { a > b ? 1 : (a == b ? 0.5 : 0) }
            let w = weight[i]
            grads[4 * i] = w * (dI * hi * minGrad(pl, tl) + dPW + dEnclosing * gh * maxGrad(pl, tl))
            grads[4 * i + 2] = w * (dI * hi * minGrad(pr, tr) + dPW + dEnclosing * gh * maxGrad(pr, tr))
            grads[4 * i + 1] = w * (dI * wi * minGrad(pt, tt) + dPH + dEnclosing * gw * maxGrad(pt, tt))
            grads[4 * i + 3] = w * (dI * wi * minGrad(pb, tb) + dPH + dEnclosing * gw * maxGrad(pb, tb))
        }
        let out = Tensor(scalar: Float(total))
        Tape.record(out, inputs: [pred]) { g in
            let scale = g.item
            return [Tensor(shape: [count, 4], values: grads.map { $0 * scale })]
        }
        return out
    }

    /// Per-instance dice loss on sigmoid probabilities: 1 − 2·Σ(P·G)/(ΣP² + ΣG² + 1e-5), over
    /// every pixel of each instance's map. logits: [n, 1, H, W]; masks: a bank of binary maps
    /// [K, H, W] (row-major bytes) of which instance i uses map `maskIndex[i]` → [n].
    public static func dice(_ logits: Tensor, masks: [UInt8], maskIndex: [Int], eps: Float = 1e-5) -> Tensor {
        let n = logits.shape[0], plane = logits.count / Swift.max(n, 1)
        precondition(maskIndex.count == n && maskIndex.allSatisfy { ($0 + 1) * plane <= masks.count }, "dice: mask indices outside the bank")
        var intersection = [Double](repeating: 0, count: n), union = [Double](repeating: 0, count: n)
        let z = logits.data
        masks.withUnsafeBufferPointer { bank in
        intersection.withUnsafeMutableBufferPointer { inter in
            union.withUnsafeMutableBufferPointer { uni in
                parallelFor(n) { i in
                    let m = bank.baseAddress! + maskIndex[i] * plane, base = i * plane
                    var a = 0.0, b = 0.0
                    for j in 0..<plane {
                        let p = Double(Kernels.sigmoid(z[base + j])), g = Double(m[j])
                        a += p * g; b += p * p + g * g
                    }
                    inter[i] = a; uni[i] = b + Double(eps)
                }
            }
        }
        }
        let out = Tensor(shape: [n], values: (0..<n).map { Float(1 - 2 * intersection[$0] / union[$0]) })
        Tape.record(out, inputs: [logits]) { g in
            let dx = Tensor(uninitialized: logits.shape), pd = dx.data
            // The closure keeps its own reference to the mask bytes: backward runs long after
            // the caller's buffers are gone.
            masks.withUnsafeBufferPointer { bank in
            parallelFor(n) { i in
                let m = bank.baseAddress! + maskIndex[i] * plane, base = i * plane
                let inter = intersection[i], uni = union[i], scale = Double(g.data[i])
                for j in 0..<plane {
                    let p = Double(Kernels.sigmoid(z[base + j])), gt = Double(m[j])
                    // d/dp of −2I/U = −2(g·U − I·2p)/U², then dp/dz = p(1 − p).
                    let dp = -2 * (gt * uni - inter * 2 * p) / (uni * uni)
                    pd[base + j] = Float(scale * dp * p * (1 - p))
                }
            }
            }
            return [dx]
        }
        return out
    }
}
