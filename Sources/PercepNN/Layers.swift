import Foundation
import PercepCore

// Standard layers with PyTorch's parameter names and layouts. Legend: N batch, C channels,
// H×W spatial size, O output channels, I input channels.

/// 2-D convolution (`nn.Conv2d`): weight [O, I/groups, KH, KW], bias [O].
/// input: [N, I, H, W] → [N, O, OH, OW].
public final class Conv2d: Module, Layer {
    /// Convolution kernel, OIHW.
    public let weight: Tensor
    /// Per-output-channel bias, or nil.
    public let bias: Tensor?
    /// Stride, padding and dilation as (vertical, horizontal).
    public let stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int)
    /// Channel groups.
    public let groups: Int

    /// A convolution initialised as PyTorch does by default (Kaiming-uniform with a = √5,
    /// bias U[−1/√fan_in, 1/√fan_in]) unless `initializer` is given (then bias starts at 0).
    public init(_ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true,
                initializer: Initializer? = nil, rng: inout SeededRNG) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "Conv2d: channels \(inChannels)→\(outChannels) not divisible by groups \(groups)")
        let w = Tensor(uninitialized: [outChannels, inChannels / groups, kernel.0, kernel.1])
        (initializer ?? .kaimingUniform(a: Float(5).squareRoot())).fill(w, rng: &rng)
        var b: Tensor?
        if bias {
            b = Tensor.zeros([outChannels])
            if initializer == nil {
                let bound = 1 / Float(Initializer.fans(w.shape).0).squareRoot()
                Initializer.uniform(bound: bound).fill(b!, rng: &rng)
            }
        }
        self.weight = w; self.bias = b
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
        super.init()
        registerParameter("weight", w)
        if let b { registerParameter("bias", b) }
    }

    /// Applies the convolution.
    public func callAsFunction(_ x: Tensor) -> Tensor { self(x, fusedReLU: false) }

    /// Applies the convolution, followed by ReLU in the same pass when `fusedReLU`.
    public func callAsFunction(_ x: Tensor, fusedReLU: Bool) -> Tensor {
        x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups,
                 fusedReLU: fusedReLU)
    }
}

/// Fully connected layer (`nn.Linear`): weight [O, I], bias [O]; input [..., I] → [..., O].
public final class Linear: Module, Layer {
    /// Weight matrix [O, I].
    public let weight: Tensor
    /// Bias [O] or nil.
    public let bias: Tensor?

    /// A linear layer with PyTorch's default initialisation.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout SeededRNG) {
        let w = Tensor(uninitialized: [outFeatures, inFeatures])
        Initializer.kaimingUniform(a: Float(5).squareRoot()).fill(w, rng: &rng)
        var b: Tensor?
        if bias {
            b = Tensor.zeros([outFeatures])
            Initializer.uniform(bound: 1 / Float(inFeatures).squareRoot()).fill(b!, rng: &rng)
        }
        weight = w; self.bias = b
        super.init()
        registerParameter("weight", w)
        if let b { registerParameter("bias", b) }
    }

    /// Applies y = x·Wᵀ + b.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight: weight, bias: bias) }
}

/// Batch normalisation over channels (`nn.BatchNorm2d`): weight, bias, running_mean,
/// running_var [C] and num_batches_tracked []. input: [N, C, H, W] or [N, C].
public final class BatchNorm2d: Module, Layer {
    /// Scale γ and shift β.
    public let weight: Tensor, bias: Tensor
    /// Running statistics used in eval mode.
    public let runningMean: Tensor, runningVar: Tensor
    /// Number of training batches seen (stored as float32; PyTorch stores int64).
    public let numBatchesTracked: Tensor
    /// Running-statistics momentum and variance epsilon.
    public let momentum: Float, eps: Float
    /// Cross-rank reduction of batch statistics (set by synchronized BN), or nil for local BN.
    public var reduceStats: ((inout [Double], inout [Double], inout Int) -> Void)?
    /// The input shape and the number of values per channel (after synchronized BN's reduction)
    /// of the last training forward, nil until one ran. Statistics over ≤ 1 value are undefined
    /// (PyTorch refuses them); `BatchNorm2d.degenerate(in:)` lets the trainer stop with a clear
    /// error instead of letting the running variance turn non-finite.
    public private(set) var lastTrainingStatistics: (inputShape: [Int], valuesPerChannel: Int)?
    /// Whether training forwards update the running statistics (and num_batches_tracked). A
    /// layer applied to several ghost batches per step (CondInst's per-group BN) keeps one
    /// group's stream, as a replica of PyTorch's would.
    public var tracksRunningStatistics = true

    /// γ = 1, β = 0, running mean 0, running variance 1.
    public init(_ channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) {
        weight = Tensor.ones([channels]); bias = Tensor.zeros([channels])
        runningMean = Tensor.zeros([channels]); runningVar = Tensor.ones([channels])
        numBatchesTracked = Tensor.zeros([])
        self.momentum = momentum; self.eps = eps
        super.init()
        registerParameter("weight", weight); registerParameter("bias", bias)
        registerBuffer("running_mean", runningMean); registerBuffer("running_var", runningVar)
        registerBuffer("num_batches_tracked", numBatchesTracked)
    }

    /// Normalises with batch statistics in training mode, running statistics in eval mode.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining else {
            return x.batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                               training: false, momentum: momentum, eps: eps)
        }
        if tracksRunningStatistics { numBatchesTracked.data[0] += 1 }
        let reduce = reduceStats
        var counted = 0
        let y = x.batchNorm(weight: weight, bias: bias, runningMean: tracksRunningStatistics ? runningMean : nil,
                            runningVar: tracksRunningStatistics ? runningVar : nil,
                            training: true, momentum: momentum, eps: eps) { sums, squares, count in
            reduce?(&sums, &squares, &count)
            counted = count
        }
        lastTrainingStatistics = (x.shape, counted)
        return y
    }

    /// The BatchNorm layers of `module` whose last training forward normalised over ≤ 1 value
    /// per channel, with their dotted names, input shapes and counts.
    public static func degenerate(in module: Module) -> [(name: String, inputShape: [Int], valuesPerChannel: Int)] {
        module.namedModules().compactMap { name, m in
            guard let bn = m as? BatchNorm2d, let s = bn.lastTrainingStatistics, s.valuesPerChannel <= 1 else { return nil }
            return (name, s.inputShape, s.valuesPerChannel)
        }
    }
}

/// Batch norm with fixed statistics and affine parameters (detectron2's `FrozenBatchNorm2d`):
/// y = x·scale + shift with scale = γ/√(var+ε), shift = β − mean·scale. Same names as BatchNorm2d
/// (without num_batches_tracked); no parameter gets a gradient.
public final class FrozenBatchNorm2d: Module, Layer {
    /// γ, β, running mean and running variance [C], all buffers.
    public let weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor
    /// Variance epsilon.
    public let eps: Float

    /// Identity statistics: γ = 1, β = 0, mean 0, variance 1.
    public init(_ channels: Int, eps: Float = 1e-5) {
        weight = Tensor.ones([channels]); bias = Tensor.zeros([channels])
        runningMean = Tensor.zeros([channels]); runningVar = Tensor.ones([channels])
        self.eps = eps
        super.init()
        registerBuffer("weight", weight); registerBuffer("bias", bias)
        registerBuffer("running_mean", runningMean); registerBuffer("running_var", runningVar)
    }

    /// Applies the fixed affine map per channel.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar, training: false, eps: eps)
    }

    /// The affine map as y = x · scale + shift, scale = γ / √(var + ε), shift = β − mean · scale
    /// (detectron2's FrozenBatchNorm2d.forward), both [C] and constants of the tape: what a
    /// convolution before this layer folds into its weights and bias.
    public func scaleAndShift() -> (scale: Tensor, shift: Tensor) {
        let c = weight.count
        let scale = Tensor(uninitialized: [c]), shift = Tensor(uninitialized: [c])
        for i in 0..<c {
            let s = weight.data[i] / (runningVar.data[i] + eps).squareRoot()
            scale.data[i] = s
            shift.data[i] = bias.data[i] - runningMean.data[i] * s
        }
        return (scale, shift)
    }
}

/// Group normalisation (`nn.GroupNorm`): weight, bias [C]; input [N, C, H, W].
public final class GroupNorm: Module, Layer {
    /// Scale γ and shift β.
    public let weight: Tensor, bias: Tensor
    /// Number of channel groups.
    public let groups: Int
    /// Variance epsilon.
    public let eps: Float

    /// γ = 1, β = 0.
    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        precondition(channels % groups == 0, "GroupNorm: \(channels) channels not divisible by \(groups) groups")
        weight = Tensor.ones([channels]); bias = Tensor.zeros([channels])
        self.groups = groups; self.eps = eps
        super.init()
        registerParameter("weight", weight); registerParameter("bias", bias)
    }

    /// Normalises each group of channels.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.groupNorm(groups: groups, weight: weight, bias: bias, eps: eps) }
}

/// ReLU as a layer (no parameters).
public final class ReLU: Module, Layer {
    /// A ReLU.
    public override init() { super.init() }
    /// max(x, 0).
    public func callAsFunction(_ x: Tensor) -> Tensor { x.relu() }
}

/// Max pooling as a layer (`nn.MaxPool2d`).
public final class MaxPool2d: Module, Layer {
    /// Window, stride and padding as (vertical, horizontal).
    public let kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)
    /// PyTorch's ceil_mode.
    public let ceilMode: Bool

    /// A pooling layer; stride defaults to the kernel.
    public init(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0), ceilMode: Bool = false) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding; self.ceilMode = ceilMode
        super.init()
    }

    /// Pools each window to its maximum.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.maxPool2d(kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
    }

    /// The window this layer pools over (for code that runs the pool's passes itself).
    public var window: MaxPoolWindow { MaxPoolWindow(kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode) }
}

/// Adaptive average pooling as a layer (`nn.AdaptiveAvgPool2d`, no parameters).
/// input: [N, C, H, W] → [N, C, OH, OW].
public final class AdaptiveAvgPool2d: Module, Layer {
    /// Output size (OH, OW).
    public let size: (Int, Int)

    /// Pools to `size`.
    public init(_ size: (Int, Int)) {
        self.size = size
        super.init()
    }

    /// Averages each adaptive window.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.adaptiveAvgPool2d(size) }
}

extension Module {
    /// Dotted names of the parameters that belong to normalisation layers (BatchNorm2d,
    /// GroupNorm): the group detectron2 and mmseg give their own weight decay.
    public func normalizationParameterNames() -> Set<String> {
        var names: Set<String> = []
        for (path, module) in namedModules() where module is BatchNorm2d || module is GroupNorm {
            for (name, _) in module.parameters { names.insert(path.isEmpty ? name : path + "." + name) }
        }
        return names
    }
}
