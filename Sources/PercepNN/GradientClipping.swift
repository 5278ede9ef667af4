import Foundation
import PercepCore

/// Gradient clipping as detectron2's `CLIP_GRADIENTS` does it, applied to the (already averaged)
/// gradients before the optimizer step.
public enum GradientClipping {
    /// Clamps every gradient element to [−value, value] (detectron2's `CLIP_TYPE: value`).
    public static func clipValue(_ parameters: [Tensor], _ value: Float) {
        precondition(value > 0, "clip value must be positive, got \(value)")
        for p in parameters {
            guard let g = p.grad else { continue }
            Kernels.map(g.data, g.data, count: g.count) { Swift.min(Swift.max($0, -value), value) }
        }
    }

    /// Scales all gradients together so their global L2 norm is at most `maxNorm` (PyTorch's
    /// `clip_grad_norm_`, norm type 2); returns the norm before clipping.
    @discardableResult
    public static func clipNorm(_ parameters: [Tensor], _ maxNorm: Float) -> Double {
        precondition(maxNorm > 0, "max norm must be positive, got \(maxNorm)")
        var total = 0.0
        for p in parameters {
            guard let g = p.grad else { continue }
            for i in 0..<g.count { total += Double(g.data[i]) * Double(g.data[i]) }
        }
        let norm = total.squareRoot()
        // PyTorch's coefficient: max_norm / (norm + 1e-6), applied only when below 1.
        let coefficient = Double(maxNorm) / (norm + 1e-6)
        if coefficient < 1 {
            let c = Float(coefficient)
            for p in parameters {
                guard let g = p.grad else { continue }
                Kernels.map(g.data, g.data, count: g.count) { $0 * c }
            }
        }
        return norm
    }
}
