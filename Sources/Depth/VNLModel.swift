import Foundation
import PercepCore
import PercepNN

/// The widths of VNL's depth network (../shared/specs/depth.md §1, §8). The defaults are VNL's
/// ResNet-50 model; narrow values make the small twins and synthetic runs.
public struct VNLModelSpec: Equatable, Sendable {
    /// Stem output channels and the bottleneck width of res2 (64 for ResNet-50); stage k has
    /// width base·2^(k−2) and 4× that as output.
    public var baseWidth = 64
    /// Bottleneck blocks per stage res2–res5.
    public var blocks = [3, 4, 6, 3]
    /// Lateral FTB outputs on res5, res4, res3, res2 (`MODEL.DEPTH.LATERAL_OUT`).
    public var lateralOut = [512, 256, 256, 256]
    /// ASPP branch channels (5 branches are concatenated).
    public var asppChannels = 512
    /// ASPP dilations of the 3×3 branches.
    public var asppDilations = [2, 4, 6]
    /// Decoder block input / output channels (`MODEL.DEPTH.FCN_DIM_IN`, `FCN_DIM_OUT`).
    public var fcnIn = [512, 256, 256, 256, 256, 256], fcnOut = [256, 256, 256, 256, 256]
    /// Depth bins (logits channels).
    public var bins = 150

    /// VNL's ResNet-50 network for NYU.
    public init() {}

    /// What is inconsistent, or nil.
    public var problem: String? {
        if baseWidth < 1 || blocks.count != 4 || blocks.contains(where: { $0 < 1 }) { return "baseWidth ≥ 1 and four stages of ≥ 1 block" }
        if lateralOut.count != 4 || fcnIn.count != 6 || fcnOut.count != 5 || asppDilations.count != 3 { return "4 lateral outputs, 6 FCN inputs, 5 FCN outputs, 3 ASPP dilations" }
        if fcnIn[0] != lateralOut[0] || asppChannels < 1 || bins < 2 { return "FCN_DIM_IN[0] must equal LATERAL_OUT[0]" }
        for k in 1..<4 where fcnIn[k] != lateralOut[k] || fcnIn[k] != fcnOut[k - 1] {
            return "block \(k + 1) joins lateral \(lateralOut[k]) with the previous output \(fcnOut[k - 1]); FCN_DIM_IN[\(k)] is \(fcnIn[k])"
        }
        if fcnOut[3] != fcnIn[4] || fcnOut[4] != fcnIn[5] { return "the last FCN blocks must chain" }
        return nil
    }
}

/// VNL's feature transfer block: conv1 (1×1) → r; conv2 (3×3, dilation 2, with bias) → bn1 → ReLU →
/// conv3 (3×3, dilation 2); ReLU(r + that). input: [N, cin, H, W] → [N, cout, H, W].
final class FTB: Module, Layer {
    let conv1: Conv2d, conv2: Conv2d, bn1: BatchNorm2d, conv3: Conv2d

    init(_ cin: Int, _ cout: Int, initializer: Initializer?, rng: inout SeededRNG) {
        conv1 = Conv2d(cin, cout, kernel: (1, 1), bias: false, initializer: initializer, rng: &rng)
        conv2 = Conv2d(cout, cout, kernel: (3, 3), padding: (2, 2), dilation: (2, 2), bias: true, initializer: initializer, rng: &rng)
        bn1 = BatchNorm2d(cout, momentum: 0.5)
        conv3 = Conv2d(cout, cout, kernel: (3, 3), padding: (2, 2), dilation: (2, 2), bias: false, initializer: initializer, rng: &rng)
        super.init()
        registerModule("conv1", conv1); registerModule("conv2", conv2); registerModule("bn1", bn1); registerModule("conv3", conv3)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let r = conv1(x)
        return Tensor.addRelu(r, conv3(bn1(conv2(r)).relu()))
    }
}

/// VNL's attention feature aggregation: w = σ(conv2(ReLU(conv1(mean over H, W of [lateral, top]))));
/// w·lateral + top. lateral, top: [N, c, H, W] → [N, c, H, W].
final class AFA: Module {
    let conv1: Conv2d, conv2: Conv2d

    init(_ c: Int, rng: inout SeededRNG) {
        conv1 = Conv2d(2 * c, max(1, c / 8), kernel: (1, 1), bias: false, initializer: .xavierNormal, rng: &rng)
        conv2 = Conv2d(max(1, c / 8), c, kernel: (1, 1), bias: false, initializer: .xavierNormal, rng: &rng)
        super.init()
        registerModule("conv1", conv1); registerModule("conv2", conv2)
    }

    func callAsFunction(lateral: Tensor, top: Tensor) -> Tensor {
        let pooled = Tensor.concat([lateral, top], axis: 1).adaptiveAvgPool2d((1, 1))
        let w = conv2(conv1(pooled).relu()).sigmoid()
        return lateral * w + top
    }
}

/// One decoder step (`topdown_fcnK`): the top map resized (align-corners bilinear) to the
/// lateral's size when they differ, AFA, then an FTB to `cout`.
final class DecoderBlock: Module {
    let afa: AFA, ftb: FTB

    init(_ cin: Int, _ cout: Int, rng: inout SeededRNG) {
        afa = AFA(cin, rng: &rng)
        ftb = FTB(cin, cout, initializer: .xavierNormal, rng: &rng)
        super.init()
        registerModule("afa_block", afa); registerModule("ftb_block", ftb)
    }

    func callAsFunction(lateral: Tensor, top: Tensor) -> Tensor {
        let size = (lateral.shape[2], lateral.shape[3])
        let resized = top.shape == lateral.shape ? top : top.resizeBilinear(size, alignCorners: true)
        return ftb(afa(lateral: lateral, top: resized))
    }
}

/// VNL's ASPP on res5 (`bottomup_top`): 1×1, three dilated 3×3 and a global-pool branch, each
/// conv + BN (momentum 0.5) without ReLU, concatenated. [N, cin, H, W] → [N, 5·c, H, W].
final class ASPP: Module, Layer {
    let conv1x1: Conv2d, bn1x1: BatchNorm2d, conv3: [Conv2d], bn3: [BatchNorm2d], poolConv: Conv2d, poolBN: BatchNorm2d

    init(_ cin: Int, _ c: Int, dilations: [Int], rng: inout SeededRNG) {
        conv1x1 = Conv2d(cin, c, kernel: (1, 1), bias: false, initializer: .xavierNormal, rng: &rng)
        bn1x1 = BatchNorm2d(c, momentum: 0.5)
        conv3 = dilations.map { Conv2d(cin, c, kernel: (3, 3), padding: ($0, $0), dilation: ($0, $0), bias: false, initializer: .xavierNormal, rng: &rng) }
        bn3 = dilations.map { _ in BatchNorm2d(c, momentum: 0.5) }
        poolConv = Conv2d(cin, c, kernel: (1, 1), bias: false, initializer: .xavierNormal, rng: &rng)
        poolBN = BatchNorm2d(c, momentum: 0.5)
        super.init()
        registerModule("aspp_conv1x1", conv1x1); registerModule("aspp_bn1x1", bn1x1)
        for k in 0..<conv3.count { registerModule("aspp_conv3_\(k + 1)", conv3[k]); registerModule("aspp_bn3_\(k + 1)", bn3[k]) }
        registerModule("globalpool_conv1x1", poolConv); registerModule("globalpool_bn", poolBN)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let size = (x.shape[2], x.shape[3])
        let pooled = poolBN(poolConv(x.adaptiveAvgPool2d((1, 1)))).resizeBilinear(size, alignCorners: true)
        return Tensor.concat([bn1x1(conv1x1(x))] + zip(conv3, bn3).map { $1($0(x)) } + [pooled], axis: 1)
    }
}

/// VNL's ResNet-50 body (`encoder_modules.bottomup`): `res1` (7×7 stem + max-pool), `res2`–`res5`
/// of bottlenecks with the stride on the 3×3, output stride 16 (res5 at stride 1, dilation 2 in
/// every block). input: [N, 3, H, W] → res2…res5.
final class VNLResNet: Module {
    let stem: Module, conv1: Conv2d, bn1: BatchNorm2d, stages: [Sequential]

    init(_ spec: VNLModelSpec, rng: inout SeededRNG) {
        let init0 = Initializer.xavierNormal
        conv1 = Conv2d(3, spec.baseWidth, kernel: (7, 7), stride: (2, 2), padding: (3, 3), bias: false, initializer: init0, rng: &rng)
        bn1 = BatchNorm2d(spec.baseWidth)
        let res1 = Module()
        res1.registerModule("conv1", conv1); res1.registerModule("bn1", bn1)
        stem = res1
        var cin = spec.baseWidth, stages: [Sequential] = []
        for (k, count) in spec.blocks.enumerated() {
            let planes = spec.baseWidth << k, stride = k == 1 || k == 2 ? 2 : 1, dilation = k == 3 ? 2 : 1
            var blocks: [any Layer] = []
            for b in 0..<count {
                blocks.append(Bottleneck(cin, planes, stride: b == 0 ? stride : 1, dilation: dilation, downsample: b == 0,
                                         shortcutNames: .vnl, initializer: init0, rng: &rng))
                cin = planes * Bottleneck.expansion
            }
            stages.append(Sequential(blocks))
        }
        self.stages = stages
        super.init()
        registerModule("res1", res1)
        for (k, s) in stages.enumerated() { registerModule("res\(k + 2)", s) }
    }

    func callAsFunction(_ x: Tensor) -> [Tensor] {
        var y = bn1(conv1(x)).relu().maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        return stages.map { y = $0(y); return y }
    }
}

/// VNL's monocular depth network (`lib/models/metric_depth_model.py`, `lateral_net.py`) with its
/// state-dict names under `depth_model.`: the ResNet body, four lateral FTBs, ASPP, the decoder
/// (top 1×1 + BN with eps 0.5, four AFA + FTB blocks, a fifth FTB at half resolution) and a
/// dilated 3×3 predicting bin logits at the input resolution.
/// input: [N, 3, H, W] (ImageNet-normalised RGB) → logits [N, bins, H, W].
public final class VNLDepthModel: Module {
    /// The widths.
    public let spec: VNLModelSpec
    let body: VNLResNet, laterals: [FTB], aspp: ASPP
    let topConv: Conv2d, topBN: BatchNorm2d, blocks: [DecoderBlock], fcn5: FTB, predict: Conv2d

    /// A network initialised as VNL's shipped configs do (`INIT_TYPE xavier`, no ImageNet weights):
    /// every conv xavier-normal with zero bias, BN 1/0, except the lateral FTBs, which keep
    /// PyTorch's default initialisation (VNL's init loop skips them).
    public init(_ spec: VNLModelSpec = .init(), rng: inout SeededRNG) {
        precondition(spec.problem == nil, "VNLModelSpec: \(spec.problem!)")
        self.spec = spec
        body = VNLResNet(spec, rng: &rng)
        let stageOut = (0..<4).map { spec.baseWidth << $0 * Bottleneck.expansion }
        // Laterals on res5, res4, res3, res2.
        laterals = (0..<4).map { FTB(stageOut[3 - $0], spec.lateralOut[$0], initializer: nil, rng: &rng) }
        aspp = ASPP(stageOut[3], spec.asppChannels, dilations: spec.asppDilations, rng: &rng)
        topConv = Conv2d(5 * spec.asppChannels, spec.fcnIn[0], kernel: (1, 1), bias: false, initializer: .xavierNormal, rng: &rng)
        topBN = BatchNorm2d(spec.fcnIn[0], eps: 0.5)
        blocks = (0..<4).map { DecoderBlock(spec.fcnIn[$0], spec.fcnOut[$0], rng: &rng) }
        fcn5 = FTB(spec.fcnIn[5 - 1], spec.fcnOut[4], initializer: .xavierNormal, rng: &rng)
        predict = Conv2d(spec.fcnOut[4], spec.bins, kernel: (3, 3), padding: (2, 2), dilation: (2, 2), bias: true,
                         initializer: .xavierNormal, rng: &rng)
        super.init()
        let model = Module(), encoder = Module(), decoder = Module()
        encoder.registerModule("bottomup", body)
        let lateralList = Module()
        for (i, l) in laterals.enumerated() {
            let holder = Module()
            holder.registerModule("lateral", l)
            lateralList.registerModule(String(i), holder)
        }
        encoder.registerModule("topdown_lateral_modules", lateralList)
        encoder.registerModule("bottomup_top", aspp)
        let top = Module()
        top.registerModule("0", topConv); top.registerModule("1", topBN)
        decoder.registerModule("top", top)
        for (i, b) in blocks.enumerated() { decoder.registerModule("topdown_fcn\(i + 1)", b) }
        let fcn5Holder = Module()
        fcn5Holder.registerModule("ftb", fcn5)
        decoder.registerModule("topdown_fcn5", fcn5Holder)
        let predictHolder = Module()
        predictHolder.registerModule("conv1", predict)
        decoder.registerModule("topdown_predict", predictHolder)
        model.registerModule("encoder_modules", encoder)
        model.registerModule("decoder_modules", decoder)
        registerModule("depth_model", model)
    }

    /// Bin logits at the input's resolution.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (h, w) = (x.shape[2], x.shape[3])
        let res = body(x)                                          // res2, res3, res4, res5
        let lateral = (0..<4).map { laterals[$0](res[3 - $0]) }    // on res5, res4, res3, res2
        var y = topBN(topConv(aspp(res[3])))
        for k in 0..<4 { y = blocks[k](lateral: lateral[k], top: y) }
        // fcn5 runs at half the input resolution (193 for 385), between two align-corners resizes.
        y = fcn5(y.resizeBilinear(((h + 1) / 2, (w + 1) / 2), alignCorners: true))
        y = y.resizeBilinear((h, w), alignCorners: true)
        return predict(y)
    }
}
