import Foundation
import PercepCore
import PercepNN

/// Where each mask instance sits: its image within the batch, its FCOS location in image pixels
/// and its FPN level (which picks the relative-coordinate scale).
public struct MaskInstances: Sendable {
    /// Image index of each instance (into the mask features' batch).
    public var imageIndex: [Int]
    /// (x, y) of each instance's location, in input-image pixels.
    public var locations: [(x: Float, y: Float)]
    /// FPN level index (0 = P3) of each instance.
    public var levels: [Int]

    /// Instances described by parallel arrays of equal length.
    public init(imageIndex: [Int], locations: [(x: Float, y: Float)], levels: [Int]) {
        precondition(imageIndex.count == locations.count && locations.count == levels.count, "MaskInstances: arrays differ in length")
        self.imageIndex = imageIndex; self.locations = locations; self.levels = levels
    }

    /// Number of instances.
    public var count: Int { imageIndex.count }
}

/// CondInst's dynamic mask head (AdelaiDet `dynamic_mask_head.py`): each instance's controller
/// output is cut into the weights and biases of `layers` 1×1 convolutions (all weights first,
/// then all biases; each weight row-major [out][in]), applied to [rel_x, rel_y, F] of its image
/// — rel = (instance location − pixel position) / sizes_of_interest[level], pixel position
/// (8j + 4, 8i + 4) at stride 8 — with ReLU between layers, giving one mask logit map per
/// instance at the mask features' stride. No parameters; buffers `sizes_of_interest` and `_iter`
/// as AdelaiDet stores them.
///
/// Computed per instance with small dense products, threads over instances; backward recomputes
/// each instance's activations instead of keeping n × channels × H × W of them.
public final class DynamicMaskHead: Module {
    /// Relative-coordinate scale per level: [64, 128, 256, 512, 1024].
    public let sizesOfInterest: Tensor
    /// Training forwards so far (AdelaiDet's `_iter`), [1].
    public let iteration: Tensor
    /// Mask-feature channels (8), hidden channels (8) and number of 1×1 layers (3).
    public let inChannels: Int, channels: Int, layers: Int
    /// Stride of the mask features in pixels (8).
    public let featureStride: Int

    /// A head over `inChannels` mask features.
    public init(inChannels: Int = 8, channels: Int = 8, layers: Int = 3, sizesOfInterest: [Float] = [64, 128, 256, 512, 1024],
                featureStride: Int = 8) {
        precondition(layers >= 1 && channels >= 1 && inChannels >= 1, "DynamicMaskHead: layers and channels must be positive")
        self.sizesOfInterest = Tensor(shape: [sizesOfInterest.count], values: sizesOfInterest)
        iteration = Tensor.zeros([1])
        self.inChannels = inChannels; self.channels = channels; self.layers = layers; self.featureStride = featureStride
        super.init()
        registerBuffer("sizes_of_interest", self.sizesOfInterest)
        registerBuffer("_iter", iteration)
    }

    /// (in, out) channels of each layer: (in + 2) → channels → … → 1.
    public var layerShapes: [(inputs: Int, outputs: Int)] {
        (0..<layers).map { l in (l == 0 ? inChannels + 2 : channels, l == layers - 1 ? 1 : channels) }
    }

    /// Length of one instance's parameter vector (169 for 8 → 8 → 8 → 1 on 8 + 2 inputs).
    public var parameterCount: Int { layerShapes.reduce(0) { $0 + $1.inputs * $1.outputs + $1.outputs } }

    /// Offsets of each layer's weight and bias in the parameter vector.
    var offsets: (weights: [Int], biases: [Int]) {
        var w: [Int] = [], b: [Int] = [], at = 0
        for s in layerShapes { w.append(at); at += s.inputs * s.outputs }
        for s in layerShapes { b.append(at); at += s.outputs }
        return (w, b)
    }

    /// Mask logits at the features' stride. maskFeatures: [N, inChannels, h, w], parameters:
    /// [n, parameterCount] → [n, 1, h, w]. Differentiable in both inputs.
    public func callAsFunction(maskFeatures f: Tensor, parameters: Tensor, instances: MaskInstances) -> Tensor {
        let (nImages, h, w) = (f.shape[0], f.shape[2], f.shape[3]), p = h * w, n = instances.count
        precondition(f.rank == 4 && f.shape[1] == inChannels, "dynamic mask head: mask features \(f.shape) need \(inChannels) channels")
        precondition(parameters.shape == [n, parameterCount], "dynamic mask head: parameters \(parameters.shape), expected [\(n), \(parameterCount)]")
        precondition(instances.imageIndex.allSatisfy { $0 >= 0 && $0 < nImages }, "dynamic mask head: image index out of range")
        let plan = Plan(head: self, h: h, w: w, instances: instances)
        let out = Tensor(uninitialized: [n, 1, h, w])
        let fData = f.data, pData = parameters.data, oData = out.data
        let chunks = Swift.min(ThreadBudget.threads, Swift.max(n, 1))
        parallelFor(chunks) { c in
            var scratch = plan.scratch()
            for i in plan.range(chunk: c, of: chunks, n: n) {
                plan.forward(instance: i, features: fData, parameters: pData + i * parameterCount, scratch: &scratch)
                (oData + i * p).update(from: scratch.activations[layers], count: p)
            }
            scratch.release()
        }
        let paramCount = parameterCount, inC = inChannels
        Tape.record(out, inputs: [f, parameters]) { g in
            let df = f.requiresGrad ? Tensor.zeros(f.shape) : nil
            let dp = parameters.requiresGrad ? Tensor(uninitialized: parameters.shape) : nil
            let partial = (0..<chunks).map { _ in df == nil ? nil : Tensor.zeros(f.shape) }
            parallelFor(chunks) { c in
                var scratch = plan.scratch()
                for i in plan.range(chunk: c, of: chunks, n: n) {
                    plan.forward(instance: i, features: fData, parameters: pData + i * paramCount, scratch: &scratch)
                    let featureGrad = partial[c].map { $0.data + instances.imageIndex[i] * inC * p }
                    plan.backward(instance: i, outputGrad: g.data + i * p, parameters: pData + i * paramCount,
                                  parameterGrad: dp.map { $0.data + i * paramCount }, featureGrad: featureGrad, scratch: &scratch)
                }
                scratch.release()
            }
            if let df { for t in partial { Kernels.addInPlace(df.data, t!.data, count: df.count) } }
            return [df, dp]
        }
        if isTraining { iteration.data[0] += 1 }
        return out
    }

    /// The per-instance computation shared by forward and backward.
    struct Plan: @unchecked Sendable {
        let shapes: [(inputs: Int, outputs: Int)]
        let weightOffsets: [Int], biasOffsets: [Int]
        let h: Int, w: Int, inChannels: Int, stride: Int
        let imageIndex: [Int], xs: [Float], ys: [Float], scales: [Float]

        init(head: DynamicMaskHead, h: Int, w: Int, instances: MaskInstances) {
            shapes = head.layerShapes
            (weightOffsets, biasOffsets) = head.offsets
            self.h = h; self.w = w; inChannels = head.inChannels; stride = head.featureStride
            imageIndex = instances.imageIndex
            xs = instances.locations.map(\.x); ys = instances.locations.map(\.y)
            let soi = head.sizesOfInterest.values
            scales = instances.levels.map { soi[Swift.min(Swift.max($0, 0), soi.count - 1)] }
        }

        /// Instances of chunk `c` out of `chunks` (contiguous ranges).
        func range(chunk c: Int, of chunks: Int, n: Int) -> Range<Int> {
            let size = (n + chunks - 1) / Swift.max(chunks, 1)
            return Swift.min(n, c * size)..<Swift.min(n, (c + 1) * size)
        }

        /// Buffers for one thread: the input and every layer's (post-ReLU) output, and one
        /// gradient buffer per layer width.
        struct Scratch {
            var activations: [UnsafeMutablePointer<Float>]
            var gradA: UnsafeMutablePointer<Float>, gradB: UnsafeMutablePointer<Float>
            func release() { activations.forEach { $0.deallocate() }; gradA.deallocate(); gradB.deallocate() }
        }

        func scratch() -> Scratch {
            let p = h * w
            let widest = shapes.map { Swift.max($0.inputs, $0.outputs) }.max()!
            var acts = [UnsafeMutablePointer<Float>.allocate(capacity: shapes[0].inputs * p)]
            for s in shapes { acts.append(.allocate(capacity: s.outputs * p)) }
            return Scratch(activations: acts, gradA: .allocate(capacity: widest * p), gradB: .allocate(capacity: widest * p))
        }

        /// Fills activations[0] = [rel_x, rel_y, F] and activations[l + 1] = layer l's output.
        func forward(instance i: Int, features: UnsafePointer<Float>, parameters: UnsafePointer<Float>, scratch: inout Scratch) {
            let p = h * w
            let input = scratch.activations[0]
            let half = Float(stride / 2), s = Float(stride), scale = scales[i], x = xs[i], y = ys[i]
            for r in 0..<h {
                for c in 0..<w {
                    input[r * w + c] = (x - (Float(c) * s + half)) / scale
                    input[p + r * w + c] = (y - (Float(r) * s + half)) / scale
                }
            }
            (input + 2 * p).update(from: features + imageIndex[i] * inChannels * p, count: inChannels * p)
            for (l, shape) in shapes.enumerated() {
                let src = scratch.activations[l], dst = scratch.activations[l + 1]
                let weight = parameters + weightOffsets[l], bias = parameters + biasOffsets[l]
                for o in 0..<shape.outputs {
                    let row = dst + o * p
                    row.update(repeating: bias[o], count: p)
                    for k in 0..<shape.inputs {
                        let wv = weight[o * shape.inputs + k], a = src + k * p
                        for j in 0..<p { row[j] += wv * a[j] }
                    }
                    if l < shapes.count - 1 { for j in 0..<p { row[j] = Swift.max(row[j], 0) } }
                }
            }
        }

        /// Gradients of one instance after `forward` filled its activations: the parameter
        /// gradient (overwritten) and the features' gradient (added).
        func backward(instance i: Int, outputGrad: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                      parameterGrad: UnsafeMutablePointer<Float>?, featureGrad: UnsafeMutablePointer<Float>?, scratch: inout Scratch) {
            let p = h * w
            var grad = scratch.gradA, spare = scratch.gradB
            grad.update(from: outputGrad, count: p)
            for l in (0..<shapes.count).reversed() {
                let shape = shapes[l], input = scratch.activations[l]
                let weight = parameters + weightOffsets[l]
                if let pg = parameterGrad {
                    for o in 0..<shape.outputs {
                        let go = grad + o * p
                        var sb: Float = 0
                        for j in 0..<p { sb += go[j] }
                        pg[biasOffsets[l] + o] = sb
                        for k in 0..<shape.inputs {
                            let a = input + k * p
                            var sw: Float = 0
                            for j in 0..<p { sw += go[j] * a[j] }
                            pg[weightOffsets[l] + o * shape.inputs + k] = sw
                        }
                    }
                }
                if l > 0 {
                    // Through the previous layer's ReLU: its output is this layer's input.
                    for k in 0..<shape.inputs {
                        let dst = spare + k * p, a = input + k * p
                        dst.update(repeating: 0, count: p)
                        for o in 0..<shape.outputs {
                            let wv = weight[o * shape.inputs + k], go = grad + o * p
                            for j in 0..<p { dst[j] += wv * go[j] }
                        }
                        for j in 0..<p where a[j] <= 0 { dst[j] = 0 }
                    }
                    swap(&grad, &spare)
                } else if let fg = featureGrad {
                    // The first two inputs are the coordinates, which need no gradient.
                    for k in 2..<shape.inputs {
                        let dst = fg + (k - 2) * p
                        for o in 0..<shape.outputs {
                            let wv = weight[o * shape.inputs + k], go = grad + o * p
                            for j in 0..<p { dst[j] += wv * go[j] }
                        }
                    }
                }
            }
        }
    }
}
