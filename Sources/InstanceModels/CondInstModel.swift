import Foundation
import PercepCore
import PercepNN

/// The shape of a CondInst network (MODEL.* keys of AdelaiDet's configs; the defaults are its
/// R-50-FPN with 80 classes).
public struct CondInstSpec: Equatable, Sendable {
    /// The ResNet (MODEL.RESNETS.*, MODEL.BACKBONE.FREEZE_AT).
    public var resnet = ResNetSpec()
    /// FPN channels (MODEL.FPN.OUT_CHANNELS).
    public var fpnChannels = 256
    /// Classes (MODEL.FCOS.NUM_CLASSES).
    public var numClasses = 80
    /// Convolutions of the FCOS classification and box towers (MODEL.FCOS.NUM_CLS_CONVS, NUM_BOX_CONVS).
    public var fcosClsConvs = 4, fcosBoxConvs = 4
    /// Prior probability of the classification bias (MODEL.FCOS.PRIOR_PROB).
    public var priorProbability: Float = 0.01
    /// GroupNorm groups in the FCOS towers (32 in AdelaiDet; MODEL.FCOS.GN_GROUPS here so that
    /// narrow test networks can use fewer).
    public var gnGroups = 32
    /// Mask branch channels, tower depth and output channels (MODEL.CONDINST.MASK_BRANCH.*).
    public var maskBranchChannels = 128, maskBranchConvs = 4, maskBranchOutChannels = 8
    /// Dynamic mask head channels and layers (MODEL.CONDINST.MASK_HEAD.*).
    public var maskHeadChannels = 8, maskHeadLayers = 3
    /// FPN strides of P3 … P7.
    public var strides = [8, 16, 32, 64, 128]
    /// Size ranges of FCOS (MODEL.FCOS.SIZES_OF_INTEREST); the mask head's scales append 2 × the last.
    public var sizesOfInterest: [Float] = [64, 128, 256, 512]

    /// AdelaiDet's CondInst R-50-FPN.
    public init() {}

    /// What is wrong with the spec, nil when it builds.
    public var problem: String? {
        if let p = resnet.problem { return p }
        if numClasses < 1 { return "MODEL.FCOS.NUM_CLASSES must be positive (got \(numClasses))" }
        if fpnChannels < 1 || fpnChannels % gnGroups != 0 {
            return "MODEL.FPN.OUT_CHANNELS (\(fpnChannels)) must be a positive multiple of MODEL.FCOS.GN_GROUPS (\(gnGroups))"
        }
        if fcosClsConvs < 0 || fcosBoxConvs < 0 || maskBranchConvs < 0 { return "tower depths must not be negative" }
        if !(priorProbability > 0 && priorProbability < 1) { return "MODEL.FCOS.PRIOR_PROB must be in (0, 1)" }
        if strides.count != 5 || strides[0] < 1 || zip(strides, strides.dropFirst()).contains(where: { $1 != 2 * $0 }) {
            return "MODEL.FCOS.FPN_STRIDES must be five strides doubling from P3 (8, 16, 32, 64, 128)"
        }
        if maskBranchChannels < 1 || maskBranchOutChannels < 1 || maskHeadChannels < 1 || maskHeadLayers < 1 {
            return "mask branch and mask head sizes must be positive"
        }
        if sizesOfInterest.count != strides.count - 1 { return "MODEL.FCOS.SIZES_OF_INTEREST needs \(strides.count - 1) values" }
        return nil
    }
}

/// AdelaiDet's CondInst: `backbone` (FPN over a detectron2 ResNet), `proposal_generator.fcos_head`,
/// `mask_head` (buffers only), `mask_branch` and the `controller` — state-dict names and order as
/// AdelaiDet's, so its checkpoints map one to one.
public final class CondInstModel: Module {
    /// The spec it was built from.
    public let spec: CondInstSpec
    /// FPN backbone.
    public let backbone: FPN
    /// FCOS.
    public let proposalGenerator: FCOSModule
    /// Dynamic mask head.
    public let maskHead: DynamicMaskHead
    /// Mask branch.
    public let maskBranch: MaskBranch
    /// 3×3 convolution from the box tower to each location's mask-head parameters.
    public let controller: Conv2d

    /// A network with AdelaiDet's initialisation, drawn from `rng`.
    public init(_ spec: CondInstSpec, rng: inout SeededRNG) {
        precondition(spec.problem == nil, spec.problem ?? "")
        self.spec = spec
        backbone = FPN(bottomUp: DetectronResNet(spec.resnet, rng: &rng), channels: spec.fpnChannels, rng: &rng)
        proposalGenerator = FCOSModule(head: FCOSHead(channels: spec.fpnChannels, numClasses: spec.numClasses, clsConvs: spec.fcosClsConvs,
                                                      boxConvs: spec.fcosBoxConvs, gnGroups: spec.gnGroups, levels: spec.strides.count,
                                                      priorProbability: spec.priorProbability, rng: &rng))
        maskHead = DynamicMaskHead(inChannels: spec.maskBranchOutChannels, channels: spec.maskHeadChannels, layers: spec.maskHeadLayers,
                                   sizesOfInterest: spec.sizesOfInterest + [2 * spec.sizesOfInterest.last!], featureStride: spec.strides[0])
        maskBranch = MaskBranch(inChannels: spec.fpnChannels, channels: spec.maskBranchChannels, numConvs: spec.maskBranchConvs,
                                outChannels: spec.maskBranchOutChannels, rng: &rng)
        controller = Conv2d(spec.fpnChannels, maskHead.parameterCount, kernel: (3, 3), padding: (1, 1), initializer: .normal(std: 0.01), rng: &rng)
        super.init()
        registerModule("backbone", backbone)
        registerModule("proposal_generator", proposalGenerator)
        registerModule("mask_head", maskHead)
        registerModule("mask_branch", maskBranch)
        registerModule("controller", controller)
    }

    /// One forward of the dense parts on a batch of images padded to a multiple of 32.
    /// images: [N, 3, H, W] → per-level FCOS outputs with the controller's parameters, and the
    /// mask features [N, maskBranchOutChannels, H/8, W/8].
    public func callAsFunction(_ images: Tensor) -> CondInstOutput {
        let levels = backbone(images)
        let heads = proposalGenerator.head(levels)
        return CondInstOutput(levels: heads, controllers: heads.map { controller($0.boxTower) },
                              maskFeatures: maskBranch(Array(levels.prefix(3))))
    }
}

/// The dense outputs of one CondInst forward.
public struct CondInstOutput {
    /// FCOS outputs per level P3 … P7.
    public let levels: [FCOSLevelOutput]
    /// Mask-head parameters per level, [N, parameterCount, h_l, w_l].
    public let controllers: [Tensor]
    /// Mask features [N, C, H/8, W/8].
    public let maskFeatures: Tensor
}
