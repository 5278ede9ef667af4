import Foundation
import PercepCore
import PercepNN

// detectron2's ResNet (`detectron2/modeling/backbone/resnet.py`) with its state-dict names: each
// convolution owns its normalisation as a child `norm` (`res3.0.conv1.weight`,
// `res3.0.conv1.norm.running_mean`), stages are `stem`, `res2` … `res5`, the projection shortcut
// is `shortcut`. Normalisation is FrozenBatchNorm everywhere, as in AdelaiDet's R-50 recipes.

/// The normalisation of a detectron2 ResNet (MODEL.RESNETS.NORM).
public enum ResNetNorm: String, Sendable, CaseIterable {
    /// Fixed statistics and affine parameters (pretrained weights; AdelaiDet's recipes).
    case frozenBN = "FrozenBN"
    /// Trainable BatchNorm with batch statistics (training from scratch).
    case bn = "BN"
}

/// detectron2's `Conv2d` with its normalisation as the child `norm`: y = norm(conv(x)).
/// weight [O, I, KH, KW] (no bias), norm: [O]. input: [N, I, H, W] → [N, O, OH, OW].
public final class NormedConv2d: Module, Layer {
    /// Convolution kernel, OIHW.
    public let weight: Tensor
    /// The normalisation after the convolution (FrozenBatchNorm2d or BatchNorm2d).
    public let norm: any Layer
    /// Stride and padding as (vertical, horizontal).
    public let stride: (Int, Int), padding: (Int, Int)

    /// A square `kernel` convolution drawn with detectron2's `c2_msra_fill` (Kaiming-normal,
    /// fan_out, ReLU gain) and identity statistics.
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, norm kind: ResNetNorm = .frozenBN,
                rng: inout SeededRNG) {
        weight = Tensor(uninitialized: [outChannels, inChannels, kernel, kernel])
        Initializer.kaimingNormal(fanOut: true).fill(weight, rng: &rng)
        norm = kind == .bn ? BatchNorm2d(outChannels) : FrozenBatchNorm2d(outChannels)
        self.stride = (stride, stride); self.padding = (padding, padding)
        super.init()
        registerParameter("weight", weight)
        registerModule("norm", norm as Module)
    }

    /// norm(conv(x)).
    public func callAsFunction(_ x: Tensor) -> Tensor { callAsFunction(x, relu: false) }

    /// norm(conv(x)), then max(·, 0) when `relu`. A frozen BatchNorm is a constant affine map, so
    /// it is folded into the convolution (weight × scale per output channel, shift as the bias)
    /// and the ReLU runs inside it: one pass and one stored activation instead of three, with the
    /// weight's gradient flowing through the product (d/dW = scale · d/dW').
    public func callAsFunction(_ x: Tensor, relu: Bool) -> Tensor {
        guard let frozen = norm as? FrozenBatchNorm2d else {
            let y = norm(x.conv2d(weight: weight, stride: stride, padding: padding))
            return relu ? y.relu() : y
        }
        let (scale, shift) = frozen.scaleAndShift()
        let folded = weight * scale.reshaped([weight.shape[0], 1, 1, 1])
        return x.conv2d(weight: folded, bias: shift, stride: stride, padding: padding, fusedReLU: relu)
    }
}

/// detectron2's `BasicStem`: 7×7/2 convolution (pad 3) + frozen BN + ReLU, then 3×3/2 max-pool
/// (pad 1). input: [N, 3, H, W] → [N, C, ⌈H/4⌉, ⌈W/4⌉].
public final class BasicStem: Module, Layer {
    /// The stem convolution, `stem.conv1`.
    public let conv1: NormedConv2d

    /// A stem with `outChannels` channels (MODEL.RESNETS.STEM_OUT_CHANNELS).
    public init(inChannels: Int = 3, outChannels: Int, norm: ResNetNorm = .frozenBN, rng: inout SeededRNG) {
        conv1 = NormedConv2d(inChannels, outChannels, kernel: 7, stride: 2, padding: 3, norm: norm, rng: &rng)
        super.init()
        registerModule("conv1", conv1)
    }

    /// maxpool(relu(conv1(x))).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv1(x, relu: true).maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
    }
}

/// detectron2's `BottleneckBlock`: 1×1 reduce, 3×3, 1×1 expand, each with frozen BN, ReLU after
/// the first two and after the residual sum. With `strideIn1x1` (MSRA weights, AdelaiDet's R-50)
/// the stride sits on the first 1×1 convolution, otherwise on the 3×3.
/// input: [N, I, H, W] → [N, O, H/stride, W/stride].
public final class BottleneckBlock: Module, Layer {
    /// 1×1 projection + BN when the channels or the stride change, else nil (identity).
    public let shortcut: NormedConv2d?
    /// The residual branch.
    public let conv1: NormedConv2d, conv2: NormedConv2d, conv3: NormedConv2d

    /// A block `inChannels` → `outChannels` through `bottleneckChannels`.
    public init(_ inChannels: Int, _ outChannels: Int, bottleneckChannels: Int, stride: Int, strideIn1x1: Bool, norm: ResNetNorm = .frozenBN,
                rng: inout SeededRNG) {
        shortcut = inChannels != outChannels ? NormedConv2d(inChannels, outChannels, kernel: 1, stride: stride, norm: norm, rng: &rng) : nil
        let (s1, s3) = strideIn1x1 ? (stride, 1) : (1, stride)
        conv1 = NormedConv2d(inChannels, bottleneckChannels, kernel: 1, stride: s1, norm: norm, rng: &rng)
        conv2 = NormedConv2d(bottleneckChannels, bottleneckChannels, kernel: 3, stride: s3, padding: 1, norm: norm, rng: &rng)
        conv3 = NormedConv2d(bottleneckChannels, outChannels, kernel: 1, norm: norm, rng: &rng)
        super.init()
        if let shortcut { registerModule("shortcut", shortcut) }
        registerModule("conv1", conv1); registerModule("conv2", conv2); registerModule("conv3", conv3)
    }

    /// relu(conv3(relu(conv2(relu(conv1(x))))) + shortcut(x)).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = conv3(conv2(conv1(x, relu: true), relu: true))
        return Tensor.addRelu(y, shortcut?(x) ?? x)
    }
}

/// detectron2's `BasicBlock` (ResNet-18/34): two 3×3 convolutions with frozen BN, the first
/// carrying the stride. input: [N, I, H, W] → [N, O, H/stride, W/stride].
public final class BasicResidualBlock: Module, Layer {
    /// 1×1 projection + BN when the channels or the stride change, else nil (identity).
    public let shortcut: NormedConv2d?
    /// The residual branch.
    public let conv1: NormedConv2d, conv2: NormedConv2d

    /// A block `inChannels` → `outChannels`.
    public init(_ inChannels: Int, _ outChannels: Int, stride: Int, norm: ResNetNorm = .frozenBN, rng: inout SeededRNG) {
        shortcut = inChannels != outChannels ? NormedConv2d(inChannels, outChannels, kernel: 1, stride: stride, norm: norm, rng: &rng) : nil
        conv1 = NormedConv2d(inChannels, outChannels, kernel: 3, stride: stride, padding: 1, norm: norm, rng: &rng)
        conv2 = NormedConv2d(outChannels, outChannels, kernel: 3, padding: 1, norm: norm, rng: &rng)
        super.init()
        if let shortcut { registerModule("shortcut", shortcut) }
        registerModule("conv1", conv1); registerModule("conv2", conv2)
    }

    /// relu(conv2(relu(conv1(x))) + shortcut(x)).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.addRelu(conv2(conv1(x, relu: true)), shortcut?(x) ?? x)
    }
}

/// The shape of a detectron2 ResNet (MODEL.RESNETS.*).
public struct ResNetSpec: Equatable, Sendable {
    /// 18, 34, 50 or 101.
    public var depth = 50
    /// Channels of the stem (STEM_OUT_CHANNELS, 64).
    public var stemChannels = 64
    /// Output channels of res2 (RES2_OUT_CHANNELS, 256; 64 for depth 18/34); doubled per stage.
    public var res2Channels = 256
    /// Bottleneck width of res2 (NUM_GROUPS × WIDTH_PER_GROUP, 64); doubled per stage.
    public var bottleneckChannels = 64
    /// Stride on the first 1×1 of a bottleneck (STRIDE_IN_1X1, true for MSRA weights).
    public var strideIn1x1 = true
    /// Stages whose parameters stay frozen: 0 none, 1 the stem, 2 stem and res2 (FREEZE_AT).
    public var freezeAt = 2
    /// Normalisation after every convolution (NORM).
    public var norm = ResNetNorm.frozenBN

    /// The full-width R-50 of AdelaiDet's recipes.
    public init() {}

    /// Blocks per stage res2 … res5.
    public var blocks: [Int]? {
        switch depth {
        case 18: return [2, 2, 2, 2]
        case 34, 50: return [3, 4, 6, 3]
        case 101: return [3, 4, 23, 3]
        default: return nil
        }
    }

    /// Output channels of res2 … res5.
    public var stageChannels: [Int] { (0..<4).map { res2Channels << $0 } }

    /// A description of what is wrong with the spec, nil when it builds.
    public var problem: String? {
        guard blocks != nil else { return "MODEL.RESNETS.DEPTH must be 18, 34, 50 or 101 (got \(depth))" }
        if stemChannels < 1 || res2Channels < 1 || bottleneckChannels < 1 { return "ResNet widths must be positive" }
        if depth < 50 && res2Channels != stemChannels {
            return "MODEL.RESNETS.RES2_OUT_CHANNELS must equal STEM_OUT_CHANNELS for depth \(depth) (BasicBlock stages)"
        }
        if !(0...5).contains(freezeAt) { return "MODEL.BACKBONE.FREEZE_AT must be 0 … 5 (got \(freezeAt))" }
        return nil
    }
}

/// detectron2's ResNet with FrozenBN: `stem`, `res2` … `res5`, returning res3, res4 and res5 (the
/// FPN inputs). input: [N, 3, H, W] → [[N, C3, H/8, W/8], [N, C4, H/16, W/16], [N, C5, H/32, W/32]]
/// for H, W multiples of 32.
public final class DetectronResNet: Module {
    /// The spec it was built from.
    public let spec: ResNetSpec
    /// The stem.
    public let stem: BasicStem
    /// res2 … res5.
    public let stages: [Sequential]

    /// Builds the network with detectron2's initialisation and freezes the first `freezeAt` stages.
    public init(_ spec: ResNetSpec, rng: inout SeededRNG) {
        precondition(spec.problem == nil, spec.problem ?? "")
        self.spec = spec
        stem = BasicStem(outChannels: spec.stemChannels, norm: spec.norm, rng: &rng)
        var stages: [Sequential] = [], cin = spec.stemChannels
        for (i, count) in spec.blocks!.enumerated() {
            let cout = spec.stageChannels[i], width = spec.bottleneckChannels << i
            var blocks: [any Layer] = []
            for b in 0..<count {
                let stride = b == 0 && i > 0 ? 2 : 1
                if spec.depth >= 50 {
                    blocks.append(BottleneckBlock(cin, cout, bottleneckChannels: width, stride: stride, strideIn1x1: spec.strideIn1x1,
                                                  norm: spec.norm, rng: &rng))
                } else {
                    blocks.append(BasicResidualBlock(cin, cout, stride: stride, norm: spec.norm, rng: &rng))
                }
                cin = cout
            }
            stages.append(Sequential(blocks))
        }
        self.stages = stages
        super.init()
        registerModule("stem", stem)
        for (i, s) in stages.enumerated() { registerModule("res\(i + 2)", s) }
        if spec.freezeAt >= 1 { stem.freeze() }
        for i in 0..<max(0, spec.freezeAt - 1) where i < stages.count { stages[i].freeze() }
    }

    /// res3, res4, res5.
    public func callAsFunction(_ x: Tensor) -> [Tensor] {
        var h = stem(x)
        var out: [Tensor] = []
        for (i, stage) in stages.enumerated() {
            h = stage(h)
            if i >= 1 { out.append(h) }
        }
        return out
    }
}
