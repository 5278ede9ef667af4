import Foundation
import PercepCore
import PercepNN

/// A frozen network that embeds a dense map into a list of level outputs.
///
/// input: [N, C, H, W] with C = the config's `inChannels`; level j's output is
/// [N, C_j, H_j, W_j]. Parameter names follow torchvision's model of the same family.
public protocol LossNetwork: Module {
    /// Outputs of levels 0…`last` (later levels are not computed).
    func levels(_ x: Tensor, upTo last: Int) -> [Tensor]
    /// The smallest input side the network accepts (each downsampling must keep ≥ 1 pixel).
    var minimumInputSize: Int { get }
    /// The network as a plain chain of convolutions, ReLUs and max-pools, when it is one: the
    /// perceptual loss then runs it as one tape op that keeps bits, not activations
    /// (`LayerChainLoss`). nil by default.
    var layerChain: LayerChain? { get }
}

extension LossNetwork {
    public var layerChain: LayerChain? { nil }
}

/// Builds the network a config describes, with weights drawn from the config's seed.
public func makeLossNetwork(_ config: LossNetworkConfig) throws -> any LossNetwork {
    try config.validate()
    var rng = SeededRNG(seed: config.seed, stream: "lossnet")
    let net: any LossNetwork
    switch config.family {
    case .vgg: net = VGGLossNetwork(config, rng: &rng)
    case .resnet18: net = ResNet18LossNetwork(inChannels: config.inChannels, initializer: config.initScheme.initializer, rng: &rng)
    case .alexnet: net = AlexNetLossNetwork(inChannels: config.inChannels, initializer: config.initScheme.initializer, rng: &rng)
    case .mobilenetv2: net = MobileNetV2LossNetwork(inChannels: config.inChannels, initializer: config.initScheme.initializer, rng: &rng)
    case .googlenet: net = GoogLeNetLossNetwork(inChannels: config.inChannels, initializer: config.initScheme.initializer, rng: &rng)
    }
    net.freeze()
    net.eval()
    return net
}

/// Runs `layers` on `x` and returns the outputs of the layers at `ends` (levels 0…`last`),
/// stopping after the last one needed. A convolution followed by a ReLU runs as one fused pass.
func collectLevels(_ layers: [any Layer], _ x: Tensor, ends: [Int], upTo last: Int) -> [Tensor] {
    var out: [Tensor] = [], h = x, i = 0
    while i < layers.count && out.count <= last {
        if let conv = layers[i] as? Conv2d, i + 1 < layers.count, layers[i + 1] is ReLU, !ends.contains(i) {
            h = conv(h, fusedReLU: true)
            i += 1            // the ReLU ran inside the convolution
        } else {
            h = layers[i](h)
        }
        if ends.contains(i) { out.append(h) }
        i += 1
    }
    return out
}

/// A convolution with the loss network's initialiser and zero bias (or no bias).
func lossConv(_ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, padding: Int? = nil, groups: Int = 1, bias: Bool,
              _ initializer: Initializer, _ rng: inout SeededRNG) -> Conv2d {
    let p = padding ?? k / 2
    return Conv2d(cin, cout, kernel: (k, k), stride: (stride, stride), padding: (p, p), groups: groups, bias: bias,
                  initializer: initializer, rng: &rng)
}

// MARK: - VGG

/// The paper's loss network: k blocks of N_b (conv s×s, bias, ReLU) and a 2×2/2 max-pool.
/// Level j is block j's output after its pool. Names as torchvision's VGG: `features.<i>.weight`
/// where i counts conv, ReLU and pool modules in order.
public final class VGGLossNetwork: Module, LossNetwork {
    /// conv, ReLU, …, pool modules in torchvision's order.
    public let features: Sequential
    /// Index into `features.layers` of each block's pool.
    let poolIndices: [Int]

    init(_ config: LossNetworkConfig, rng: inout SeededRNG) {
        var layers: [any Layer] = [], pools: [Int] = []
        var cin = config.inChannels
        for (convs, width) in zip(config.structure, config.widths) {
            for _ in 0..<convs {
                layers.append(lossConv(cin, width, config.kernelSize, bias: true, config.initScheme.initializer, &rng))
                layers.append(ReLU())
                cin = width
            }
            pools.append(layers.count)
            layers.append(MaxPool2d(kernel: (2, 2)))
        }
        features = Sequential(layers)
        poolIndices = pools
        super.init()
        registerModule("features", features)
    }

    public var minimumInputSize: Int { 1 << poolIndices.count }

    public func levels(_ x: Tensor, upTo last: Int) -> [Tensor] {
        collectLevels(features.layers, x, ends: poolIndices, upTo: last)
    }

    public var layerChain: LayerChain? { LayerChain(layers: features.layers, levelEnds: poolIndices) }
}

// MARK: - ResNet-18

/// torchvision's ResNet-18 without avgpool and fc; levels are layer1 … layer4.
public final class ResNet18LossNetwork: Module, LossNetwork {
    let conv1: Conv2d, bn1: BatchNorm2d, stages: [Sequential]

    init(inChannels: Int, initializer: Initializer, rng: inout SeededRNG) {
        conv1 = lossConv(inChannels, 64, 7, stride: 2, padding: 3, bias: false, initializer, &rng)
        bn1 = BatchNorm2d(64)
        var stages: [Sequential] = [], cin = 64
        for (i, width) in [64, 128, 256, 512].enumerated() {
            let stride = i == 0 ? 1 : 2
            // PercepNN's BasicBlock (shared with the segmentation backbones), undilated.
            stages.append(Sequential([BasicBlock(cin, width, stride: stride, initializer: initializer, rng: &rng),
                                      BasicBlock(width, width, stride: 1, initializer: initializer, rng: &rng)]))
            cin = width
        }
        self.stages = stages
        super.init()
        registerModule("conv1", conv1); registerModule("bn1", bn1)
        for (i, s) in stages.enumerated() { registerModule("layer\(i + 1)", s) }
    }

    public var minimumInputSize: Int { 32 }

    public func levels(_ x: Tensor, upTo last: Int) -> [Tensor] {
        var h = bn1(conv1(x)).relu().maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        var out: [Tensor] = []
        for stage in stages.prefix(last + 1) { h = stage(h); out.append(h) }
        return out
    }
}

// MARK: - AlexNet

/// torchvision's AlexNet `features`; levels are the outputs of its three max-pools.
public final class AlexNetLossNetwork: Module, LossNetwork {
    public let features: Sequential
    let poolIndices = [2, 5, 12]

    init(inChannels: Int, initializer: Initializer, rng: inout SeededRNG) {
        func pool() -> MaxPool2d { MaxPool2d(kernel: (3, 3), stride: (2, 2)) }
        features = Sequential([
            lossConv(inChannels, 64, 11, stride: 4, padding: 2, bias: true, initializer, &rng), ReLU(), pool(),
            lossConv(64, 192, 5, padding: 2, bias: true, initializer, &rng), ReLU(), pool(),
            lossConv(192, 384, 3, bias: true, initializer, &rng), ReLU(),
            lossConv(384, 256, 3, bias: true, initializer, &rng), ReLU(),
            lossConv(256, 256, 3, bias: true, initializer, &rng), ReLU(), pool(),
        ])
        super.init()
        registerModule("features", features)
    }

    public var minimumInputSize: Int { 63 }

    public func levels(_ x: Tensor, upTo last: Int) -> [Tensor] {
        collectLevels(features.layers, x, ends: poolIndices, upTo: last)
    }

    public var layerChain: LayerChain? { LayerChain(layers: features.layers, levelEnds: poolIndices) }
}

// MARK: - MobileNetV2

/// conv–BN–ReLU6 as torchvision's `Conv2dNormActivation` (children "0" conv, "1" BN).
final class ConvBNReLU6: Module, Layer {
    let conv: Conv2d, bn: BatchNorm2d
    init(_ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, groups: Int = 1, _ initializer: Initializer, _ rng: inout SeededRNG) {
        conv = lossConv(cin, cout, k, stride: stride, groups: groups, bias: false, initializer, &rng)
        bn = BatchNorm2d(cout)
        super.init()
        registerModule("0", conv); registerModule("1", bn)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { bn(conv(x)).clamp(min: 0, max: 6) }
}

/// torchvision's InvertedResidual: optional 1×1 expansion, 3×3 depthwise, 1×1 linear projection
/// with BN; a residual connection when stride is 1 and channels are kept. Children under `conv`.
final class InvertedResidual: Module, Layer {
    let conv: Sequential, residual: Bool
    init(_ cin: Int, _ cout: Int, stride: Int, expand: Int, _ initializer: Initializer, _ rng: inout SeededRNG) {
        let hidden = cin * expand
        var layers: [any Layer] = []
        if expand != 1 { layers.append(ConvBNReLU6(cin, hidden, 1, initializer, &rng)) }
        layers.append(ConvBNReLU6(hidden, hidden, 3, stride: stride, groups: hidden, initializer, &rng))
        layers.append(lossConv(hidden, cout, 1, bias: false, initializer, &rng))
        layers.append(BatchNorm2d(cout))
        conv = Sequential(layers)
        residual = stride == 1 && cin == cout
        super.init()
        registerModule("conv", conv)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { residual ? x + conv(x) : conv(x) }
}

/// torchvision's MobileNetV2 `features` (width 1.0); levels end at strides 2, 4, 8, 16 and 32
/// (after features.1, .3, .6, .13 and .18).
public final class MobileNetV2LossNetwork: Module, LossNetwork {
    public let features: Sequential
    let levelEnds = [1, 3, 6, 13, 18]

    init(inChannels: Int, initializer: Initializer, rng: inout SeededRNG) {
        var layers: [any Layer] = [ConvBNReLU6(inChannels, 32, 3, stride: 2, initializer, &rng)]
        var cin = 32
        for (t, c, n, s) in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)] {
            for i in 0..<n {
                layers.append(InvertedResidual(cin, c, stride: i == 0 ? s : 1, expand: t, initializer, &rng))
                cin = c
            }
        }
        layers.append(ConvBNReLU6(cin, 1280, 1, initializer, &rng))
        features = Sequential(layers)
        super.init()
        registerModule("features", features)
    }

    public var minimumInputSize: Int { 32 }

    public func levels(_ x: Tensor, upTo last: Int) -> [Tensor] {
        collectLevels(features.layers, x, ends: levelEnds, upTo: last)
    }
}

// MARK: - GoogLeNet

/// conv (no bias)–BN (ε 0.001)–ReLU as torchvision's GoogLeNet `BasicConv2d` (children `conv`, `bn`).
final class GoogLeNetConv: Module, Layer {
    let conv: Conv2d, bn: BatchNorm2d
    init(_ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, _ initializer: Initializer, _ rng: inout SeededRNG) {
        conv = lossConv(cin, cout, k, stride: stride, bias: false, initializer, &rng)
        bn = BatchNorm2d(cout, eps: 0.001)
        super.init()
        registerModule("conv", conv); registerModule("bn", bn)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { bn(conv(x)).relu() }
}

/// torchvision's `Inception` block: four branches concatenated along channels — 1×1; 1×1 → 3×3;
/// 1×1 → 3×3 (torchvision's "5×5" branch uses a 3×3 kernel, kept for its names and shapes);
/// 3×3/1 max-pool (ceil mode) → 1×1.
final class InceptionBlock: Module, Layer {
    let branch1: GoogLeNetConv, branch2: Sequential, branch3: Sequential, branch4: Sequential
    init(_ cin: Int, _ c1: Int, _ c3reduce: Int, _ c3: Int, _ c5reduce: Int, _ c5: Int, _ poolProjection: Int,
         _ initializer: Initializer, _ rng: inout SeededRNG) {
        branch1 = GoogLeNetConv(cin, c1, 1, initializer, &rng)
        branch2 = Sequential([GoogLeNetConv(cin, c3reduce, 1, initializer, &rng), GoogLeNetConv(c3reduce, c3, 3, initializer, &rng)])
        branch3 = Sequential([GoogLeNetConv(cin, c5reduce, 1, initializer, &rng), GoogLeNetConv(c5reduce, c5, 3, initializer, &rng)])
        branch4 = Sequential([MaxPool2d(kernel: (3, 3), stride: (1, 1), padding: (1, 1), ceilMode: true),
                              GoogLeNetConv(cin, poolProjection, 1, initializer, &rng)])
        super.init()
        registerModule("branch1", branch1); registerModule("branch2", branch2)
        registerModule("branch3", branch3); registerModule("branch4", branch4)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { Tensor.concat([branch1(x), branch2(x), branch3(x), branch4(x)], axis: 1) }
}

/// torchvision's GoogLeNet without the auxiliary classifiers, avgpool, dropout and fc (and
/// without `transform_input`, which only re-normalises ImageNet RGB); levels are the outputs of
/// the three inception stages: inception3b (stride 8), inception4e (16) and inception5b (32).
public final class GoogLeNetLossNetwork: Module, LossNetwork {
    let stem: [(String, any Layer)], stages: [[(String, any Layer)]]

    init(inChannels: Int, initializer: Initializer, rng: inout SeededRNG) {
        func pool(_ k: Int) -> MaxPool2d { MaxPool2d(kernel: (k, k), stride: (2, 2), ceilMode: true) }
        func inception(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ e: Int, _ f: Int, _ g: Int) -> InceptionBlock {
            InceptionBlock(a, b, c, d, e, f, g, initializer, &rng)
        }
        stem = [("conv1", GoogLeNetConv(inChannels, 64, 7, stride: 2, initializer, &rng)), ("maxpool1", pool(3)),
                ("conv2", GoogLeNetConv(64, 64, 1, initializer, &rng)), ("conv3", GoogLeNetConv(64, 192, 3, initializer, &rng)),
                ("maxpool2", pool(3))]
        stages = [
            [("inception3a", inception(192, 64, 96, 128, 16, 32, 32)), ("inception3b", inception(256, 128, 128, 192, 32, 96, 64))],
            [("maxpool3", pool(3)), ("inception4a", inception(480, 192, 96, 208, 16, 48, 64)),
             ("inception4b", inception(512, 160, 112, 224, 24, 64, 64)), ("inception4c", inception(512, 128, 128, 256, 24, 64, 64)),
             ("inception4d", inception(512, 112, 144, 288, 32, 64, 64)), ("inception4e", inception(528, 256, 160, 320, 32, 128, 128))],
            [("maxpool4", pool(2)), ("inception5a", inception(832, 256, 160, 320, 32, 128, 128)),
             ("inception5b", inception(832, 384, 192, 384, 48, 128, 128))],
        ]
        super.init()
        for (name, layer) in stem + stages.flatMap({ $0 }) {
            if let module = layer as? Module, !(layer is MaxPool2d) { registerModule(name, module) }
        }
    }

    /// The smallest side for which every max-pool window fits its input (conv1 16, then 8, 4, 2
    /// and 1 after the four pools). PyTorch accepts down to 15: its ceil mode also keeps a window
    /// one pixel larger than its input, which `poolOutputSize` refuses.
    public var minimumInputSize: Int { 31 }

    public func levels(_ x: Tensor, upTo last: Int) -> [Tensor] {
        var h = stem.reduce(x) { $1.1($0) }
        var out: [Tensor] = []
        for stage in stages.prefix(last + 1) {
            h = stage.reduce(h) { $1.1($0) }
            out.append(h)
        }
        return out
    }
}
