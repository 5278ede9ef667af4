import Foundation
import PercepCore
import PercepNN

/// A loss network that is a plain chain of convolutions, ReLUs and max-pools (VGG, AlexNet):
/// the layers in order and, for each level, the index of the layer whose output ends it.
public struct LayerChain {
    /// Conv2d, ReLU and MaxPool2d layers only.
    public let layers: [any Layer]
    /// Index into `layers` of the layer ending level 0, 1, ….
    public let levelEnds: [Int]
}

/// The perceptual loss through a `LayerChain`, recorded on the tape as one op.
///
/// The generic path keeps every activation of the prediction's embedding until backward (the
/// tape holds each op's output, each convolution its input). The weights are frozen, so the
/// backward needs none of them: a convolution's backward-data needs only its weights, a ReLU one
/// sign bit per element and a max-pool the position of each window's maximum. This op keeps
/// exactly that (`PackedBits`) plus each level's difference f_j(pred) − f_j(target); for VGG16 on
/// a [2, 150, 256, 256] prediction that is about 10 MiB of bits instead of ~150 MiB of floats.
/// The passes are the same kernels in the same order as the generic path, so the two agree to
/// rounding (LayerChainLossTests).
enum LayerChainLoss {
    /// What one layer's backward needs, and the level term whose gradient enters at its output.
    private enum Saved {
        case conv(Conv2d, ConvGeometry, reluSigns: PackedBits?)
        case relu(PackedBits)
        case pool(MaxPoolWindow, argmax: PackedBits, inputShape: [Int])

        /// The sign bits of a ReLU at this step's output, if it has one.
        var reluSigns: PackedBits? {
            switch self {
            case let .conv(_, _, signs): return signs
            case let .relu(signs): return signs
            case .pool: return nil
            }
        }
    }
    private struct Step {
        let saved: Saved
        /// The level's difference d = f_j(pred) − f_j(target) and w_j / numel(d): the term
        /// w_j·mean(d²) has gradient 2·(w_j / numel)·d.
        var level: (difference: Tensor, weightPerElement: Float)?
    }

    /// Runs the chain on the prediction x (on softmax(x) over channels with `softmaxFirst`) and on
    /// the target in lockstep, layer by layer, up to the end of level `last` with recording off:
    /// each convolution's weight transform is made once for both (`ConvDispatch.frozenForward`
    /// with two inputs) unless the prediction's switches are kept for a gradient (then the
    /// prediction runs `ConvDispatch.switchingForward`: Winograd F(2×2, 3×3) or a direct
    /// convolution, which round alike), and of
    /// the target only the layer being run is alive, never a whole
    /// embedding. Once the layer after a level end has read both level outputs,
    /// `levelEnd(level, prediction's, target's)` may return the level's term for the backward (it
    /// may overwrite the target's output). With `keep`, returns what each layer's backward needs.
    private static func run(_ chain: LayerChain, _ x: Tensor, softmaxFirst: Bool, target: Tensor, upTo last: Int, keep: Bool,
                            levelEnd: (Int, Tensor, Tensor) -> (difference: Tensor, weightPerElement: Float)?) -> [Step] {
        precondition(x.shape == target.shape, "LayerChainLoss: prediction \(x.shape) and target \(target.shape) differ")
        var steps: [Step] = []
        Tape.withoutGrad {
            var h = x, ht = target, i = 0, level = 0
            let direct = keep && !ConvDispatch.winogradOnSwitchingForward
            // The prediction's first convolution takes the softmax band by band
            // (`ConvDispatch.forwardInRowBands`, each band a switching forward: a PSPNet's
            // 150-class softmax at 256² would be 79 MB whole); otherwise p is a temporary,
            // released when the first layer's output replaces it in h.
            let softmaxInBands = softmaxFirst && direct && (chain.layers.first as? Conv2d).map {
                $0.stride.0 == 1 && $0.dilation.0 == 1 && $0.groups == 1
            } == true
            if softmaxFirst && !softmaxInBands {
                h = Tensor(uninitialized: x.shape)
                Tensor.softmaxRaw(h.data, x.data, outer: x.shape[0], n: x.shape[1], inner: x.shape[2] * x.shape[3])
            }
            // The last level end's outputs, until the next layer has read them.
            var pending: (level: Int, step: Int, prediction: Tensor, target: Tensor)?
            func settle() {
                guard let p = pending else { return }
                if let term = levelEnd(p.level, p.prediction, p.target), keep { steps[p.step].level = term }
                pending = nil
            }
            let layers = chain.layers
            while i < layers.count && level <= last {
                let y: Tensor, yt: Tensor
                if let conv = layers[i] as? Conv2d {
                    let fuse = i + 1 < layers.count && layers[i + 1] is ReLU && !chain.levelEnds.contains(i)
                    let g = ConvGeometry(n: h.shape[0], cIn: h.shape[1], h: h.shape[2], w: h.shape[3], cOut: conv.weight.shape[0],
                                         kh: conv.weight.shape[2], kw: conv.weight.shape[3], stride: conv.stride,
                                         padding: conv.padding, dilation: conv.dilation, groups: conv.groups)
                    if let p = g.problem { preconditionFailure("loss network conv \(g): \(p)") }
                    y = Tensor(uninitialized: [g.n, g.cOut, g.outH, g.outW])
                    yt = Tensor(uninitialized: y.shape)
                    let (w, b) = (conv.weight.data, conv.bias?.data)
                    if direct {
                        // The prediction's ReLU signs and argmaxes route the gradient: F(2×2, 3×3)
                        // or a direct convolution, rounding like PyTorch's; F(4×4, 3×3) for the
                        // target only.
                        if softmaxInBands && i == 0 {
                            let logits = h.data, plane = g.h * g.w
                            ConvDispatch.forwardInRowBands(y.data, w, b, g, relu: fuse) { band, channelStride, image, rows in
                                Tensor.softmaxRaw(band, outStride: channelStride, logits + image * g.cIn * plane + rows.lowerBound * g.w,
                                                  stride: plane, n: g.cIn, count: rows.count * g.w)
                            }
                        } else {
                            ConvDispatch.switchingForward(y.data, h.data, w, b, g, relu: fuse)
                        }
                        ConvDispatch.frozenForward([(y: yt.data, x: UnsafePointer(ht.data))], w, b, g, relu: fuse)
                    } else {
                        let pairs = [(y: y.data, x: UnsafePointer(h.data)), (y: yt.data, x: UnsafePointer(ht.data))]
                        ConvDispatch.frozenForward(pairs, w, b, g, relu: fuse)
                    }
                    if keep {
                        let signs = fuse ? PackedBits.positive(y.data, rows: y.shape[0] * y.shape[1], entriesPerRow: y.shape[2] * y.shape[3]) : nil
                        steps.append(Step(saved: .conv(conv, g, reluSigns: signs)))
                    }
                    if fuse { i += 1 }   // the ReLU ran inside the convolution
                } else if layers[i] is ReLU {
                    y = h.relu()
                    yt = ht.relu()
                    if keep { steps.append(Step(saved: .relu(PackedBits.positive(y.data, rows: y.shape[0] * y.shape[1], entriesPerRow: y.shape[2] * y.shape[3])))) }
                } else if let pool = layers[i] as? MaxPool2d {
                    let (out, argmax) = pool.window.forward(h, keepArgmax: keep)
                    y = out
                    yt = pool.window.forward(ht, keepArgmax: false).0
                    if let argmax { steps.append(Step(saved: .pool(pool.window, argmax: argmax, inputShape: h.shape))) }
                } else {
                    preconditionFailure("LayerChain holds \(type(of: layers[i])); only Conv2d, ReLU and MaxPool2d can run here")
                }
                settle()
                if chain.levelEnds.contains(i) {
                    pending = (level, steps.count - 1, y, yt)
                    level += 1
                }
                h = y
                ht = yt
                i += 1
            }
            settle()
        }
        return steps
    }

    /// Σ_j w_j · mean((f_j(p) − f_j(target))²) over levels 0…`last` with w_j > 0, as a scalar;
    /// differentiable with respect to x when x needs a gradient and the tape is recording (the
    /// target gets no gradient). p = x, or with `softmaxOfInput` p = softmax(x) over channels:
    /// the softmax is then part of this op. The forward holds p only until the first layer has
    /// run and the backward recomputes it from x (which the tape keeps anyway), so no tensor of
    /// the input's size waits for the backward — 75 MiB for a [2, 150, 256, 256] segmentation
    /// prediction. Each level's difference is written over the target's level output (the
    /// backward keeps it; no third copy of a level). x, target: [N, C, H, W].
    static func loss(_ chain: LayerChain, _ x: Tensor, softmaxOfInput: Bool = false, target: Tensor,
                     levelWeights: [Float], last: Int) -> Tensor {
        let keep = x.requiresGrad && Tape.current.isRecording
        var total: Tensor?
        let (outer, channels, inner) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        let steps = run(chain, x, softmaxFirst: softmaxOfInput, target: target, upTo: last, keep: keep) { level, y, difference in
            guard levelWeights[level] > 0 else { return nil }
            Kernels.zip(difference.data, y.data, difference.data, count: y.count) { $0 - $1 }
            let term = difference.pow(2).mean() * levelWeights[level]
            total = total.map { $0 + term } ?? term
            return (difference, levelWeights[level] / Float(difference.count))
        }
        guard let total else { preconditionFailure("LayerChainLoss: no level up to \(last) has a positive weight") }
        guard keep else { return total }
        Tape.record(total, inputs: [x]) { g in
            let upstream = g.item
            var grad: Tensor?   // d(loss)/d(output of the step being undone)
            // Whether grad already went through the ReLU at the output of the step being undone:
            // a convolution's backward-data and a max-pool's backward apply the sign bits of the
            // ReLU in front of them as they write their input's gradient (one pass over it
            // instead of two), unless a level term still enters there.
            var masked = false
            for index in steps.indices.reversed() {
                let step = steps[index], arrivedMasked = masked
                masked = false
                if let (difference, weightPerElement) = step.level {
                    let scale = 2 * weightPerElement * upstream
                    let term = Tensor(uninitialized: difference.shape)
                    Kernels.map(term.data, difference.data, count: difference.count) { $0 * scale }
                    if let grad { Kernels.addInPlace(grad.data, term.data, count: grad.count) } else { grad = term }
                }
                guard let dy = grad else { continue }
                // The sign bits of the ReLU this step's input gradient passes next, if it can take them.
                let next = index > 0 && steps[index - 1].level == nil ? steps[index - 1].saved.reluSigns : nil
                switch step.saved {
                case let .conv(conv, geometry, signs):
                    if !arrivedMasked { signs?.maskGradient(dy.data, dy.data) }
                    let dx = Tensor(uninitialized: [geometry.n, geometry.cIn, geometry.h, geometry.w])
                    ConvDispatch.frozenBackwardData(dx.data, dy.data, conv.weight.data, geometry, mask: next)
                    grad = dx
                    masked = next != nil
                case let .relu(signs):
                    if !arrivedMasked { signs.maskGradient(dy.data, dy.data) }
                case let .pool(window, argmax, inputShape):
                    grad = window.backward(dy, argmax: argmax, inputShape: inputShape, mask: next)
                    masked = next != nil
                }
            }
            if softmaxOfInput, let grad {
                Tensor.softmaxBackwardRecomputing(grad.data, logits: x.data, outer: outer, n: channels, inner: inner)
            }
            return [grad]
        }
        return total
    }
}
