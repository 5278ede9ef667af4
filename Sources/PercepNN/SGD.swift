import Foundation
import PercepCore

/// Stochastic gradient descent with momentum in PyTorch's form:
/// buf = m·buf + (g + wd·w); w −= lr·buf (the first step sets buf = g + wd·w).
///
/// Parameters without a gradient this step are skipped, as in PyTorch.
public final class SGD {
    /// The parameters it updates, with their weight decay.
    public let groups: [(parameters: [Tensor], weightDecay: Float)]
    /// Momentum factor m.
    public let momentum: Float
    /// Learning rate for the next step (set by the LR schedule).
    public var learningRate: Float
    private var buffers: [ObjectIdentifier: Tensor] = [:]

    /// An optimizer over `parameters`, all with weight decay `weightDecay`.
    public convenience init(_ parameters: [Tensor], learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.init(groups: [(parameters, weightDecay)], learningRate: learningRate, momentum: momentum)
    }

    /// An optimizer with a weight decay per parameter group (e.g. 0 for normalisation layers).
    public init(groups: [(parameters: [Tensor], weightDecay: Float)], learningRate: Float, momentum: Float = 0.9) {
        self.groups = groups
        self.learningRate = learningRate
        self.momentum = momentum
    }

    /// The momentum buffer of `p`, if a step has created one.
    public func momentumBuffer(_ p: Tensor) -> Tensor? { buffers[ObjectIdentifier(p)] }

    /// Sets the momentum buffer of `p` to a copy of `buffer`, or removes it when `buffer` is nil.
    ///
    /// Resuming from a checkpoint needs this: without the saved buffers the first step after a
    /// resume would start momentum from scratch and the run would diverge from an uninterrupted
    /// one. The value is copied so later steps never write into the caller's tensor.
    public func setMomentumBuffer(_ buffer: Tensor?, for p: Tensor) {
        guard let buffer else { buffers[ObjectIdentifier(p)] = nil; return }
        precondition(buffer.shape == p.shape, "setMomentumBuffer: buffer \(buffer.shape) for parameter \(p.shape)")
        buffers[ObjectIdentifier(p)] = buffer.copy()
    }

    /// Applies one update to every parameter that has a gradient.
    public func step() {
        let lr = learningRate, m = momentum
        for (params, wd) in groups {
            for p in params {
                guard let g = p.grad else { continue }
                let pw = p.data, pg = g.data
                if let buf = buffers[ObjectIdentifier(p)] {
                    let pb = buf.data
                    for i in 0..<p.count {
                        pb[i] = m * pb[i] + (pg[i] + wd * pw[i])
                        pw[i] -= lr * pb[i]
                    }
                } else {
                    let buf = Tensor(uninitialized: p.shape)
                    let pb = buf.data
                    for i in 0..<p.count {
                        pb[i] = pg[i] + wd * pw[i]
                        pw[i] -= lr * pb[i]
                    }
                    if m != 0 { buffers[ObjectIdentifier(p)] = buf }
                }
            }
        }
    }

    /// Clears the gradients of every parameter.
    public func zeroGrad() { for (params, _) in groups { for p in params { p.grad = nil } } }
}
