import CondInst
import Foundation
import InstanceData
import InstanceModels
import Perceptual
import PercepCore
import Trainer
import Training

/// A config value that cannot work for the instance task, naming the key.
public struct InstanceConfigError: Error, CustomStringConvertible {
    /// The config key (or file) at fault.
    public let key: String
    /// What is wrong with it.
    public let problem: String
    /// An error about `key`.
    public init(_ key: String, _ problem: String) { self.key = key; self.problem = problem }
    /// "key: problem".
    public var description: String { "\(key): \(problem)" }
}

/// The instance task's reading of a config, shared by `train-inst`, `eval-inst` and the tests:
/// AdelaiDet's keys (MODEL.RESNETS.*, MODEL.FCOS.*, MODEL.CONDINST.*, INPUT.*) into the network's
/// spec, the loss and inference settings, the transforms and the data sets.
public enum InstanceRecipe {
    /// The network's shape.
    public static func spec(_ cfg: TrainingConfig) throws -> CondInstSpec {
        var spec = CondInstSpec()
        spec.resnet.depth = cfg.int("MODEL.RESNETS.DEPTH")
        spec.resnet.stemChannels = cfg.int("MODEL.RESNETS.STEM_OUT_CHANNELS")
        spec.resnet.res2Channels = cfg.int("MODEL.RESNETS.RES2_OUT_CHANNELS")
        spec.resnet.bottleneckChannels = cfg.int("MODEL.RESNETS.NUM_GROUPS") * cfg.int("MODEL.RESNETS.WIDTH_PER_GROUP")
        spec.resnet.strideIn1x1 = cfg.bool("MODEL.RESNETS.STRIDE_IN_1X1")
        spec.resnet.freezeAt = cfg.int("MODEL.BACKBONE.FREEZE_AT")
        spec.resnet.norm = ResNetNorm(rawValue: cfg.string("MODEL.RESNETS.NORM")) ?? .frozenBN
        guard cfg.int("MODEL.RESNETS.NUM_GROUPS") == 1 else {
            throw InstanceConfigError("MODEL.RESNETS.NUM_GROUPS", "only 1 (no ResNeXt) is supported")
        }
        spec.fpnChannels = cfg.int("MODEL.FPN.OUT_CHANNELS")
        spec.numClasses = cfg.int("MODEL.FCOS.NUM_CLASSES")
        spec.fcosClsConvs = cfg.int("MODEL.FCOS.NUM_CLS_CONVS")
        spec.fcosBoxConvs = cfg.int("MODEL.FCOS.NUM_BOX_CONVS")
        spec.gnGroups = cfg.int("MODEL.FCOS.GN_GROUPS")
        spec.priorProbability = Float(cfg.double("MODEL.FCOS.PRIOR_PROB"))
        spec.strides = cfg.ints("MODEL.FCOS.FPN_STRIDES")
        spec.sizesOfInterest = cfg.ints("MODEL.FCOS.SIZES_OF_INTEREST").map(Float.init)
        spec.maskBranchChannels = cfg.int("MODEL.CONDINST.MASK_BRANCH.CHANNELS")
        spec.maskBranchConvs = cfg.int("MODEL.CONDINST.MASK_BRANCH.NUM_CONVS")
        spec.maskBranchOutChannels = cfg.int("MODEL.CONDINST.MASK_BRANCH.OUT_CHANNELS")
        spec.maskHeadChannels = cfg.int("MODEL.CONDINST.MASK_HEAD.CHANNELS")
        spec.maskHeadLayers = cfg.int("MODEL.CONDINST.MASK_HEAD.NUM_LAYERS")
        if let problem = spec.problem { throw InstanceConfigError("MODEL", problem) }
        let outStride = cfg.int("MODEL.CONDINST.MASK_OUT_STRIDE")
        guard outStride >= 1, spec.strides[0] % outStride == 0 else {
            throw InstanceConfigError("MODEL.CONDINST.MASK_OUT_STRIDE", "\(outStride) must divide the mask features' stride \(spec.strides[0])")
        }
        return spec
    }

    /// The loss settings, with the perceptual term (1 input channel: mask probabilities) when
    /// LOSS.PERCEPTUAL.ENABLED.
    public static func lossSettings(_ cfg: TrainingConfig) throws -> CondInstLossSettings {
        var s = CondInstLossSettings()
        s.focalAlpha = Float(cfg.double("MODEL.FCOS.LOSS_ALPHA"))
        s.focalGamma = Float(cfg.double("MODEL.FCOS.LOSS_GAMMA"))
        s.centerSampleRadius = Float(cfg.double("MODEL.FCOS.POS_RADIUS"))
        s.maskOutStride = cfg.int("MODEL.CONDINST.MASK_OUT_STRIDE")
        s.maxProposals = cfg.int("MODEL.CONDINST.MAX_PROPOSALS")
        s.topProposalsPerImage = cfg.int("MODEL.CONDINST.TOPK_PROPOSALS_PER_IM")
        for (key, value) in [("MODEL.CONDINST.MAX_PROPOSALS", s.maxProposals), ("MODEL.CONDINST.TOPK_PROPOSALS_PER_IM", s.topProposalsPerImage)]
        where value != -1 && value < 1 {
            throw InstanceConfigError(key, "\(value): must be -1 (off) or at least 1 (0 would leave no instance for the mask loss)")
        }
        if s.maxProposals != -1 && s.topProposalsPerImage != -1 {
            throw InstanceConfigError("MODEL.CONDINST.MAX_PROPOSALS", "cannot be combined with TOPK_PROPOSALS_PER_IM (set one of them to -1, as AdelaiDet asserts)")
        }
        s.perceptual = try makePerceptualLoss(cfg, inChannels: 1)
        s.perceptualMaxInstances = cfg.int("LOSS.PERCEPTUAL.MAX_INSTANCES")
        s.perceptualChunk = cfg.int("LOSS.PERCEPTUAL.INSTANCES_PER_CHUNK")
        guard s.perceptualChunk >= 1 else { throw InstanceConfigError("LOSS.PERCEPTUAL.INSTANCES_PER_CHUNK", "must be at least 1") }
        return s
    }

    /// The inference settings.
    public static func inferenceSettings(_ cfg: TrainingConfig) -> InferenceSettings {
        var s = InferenceSettings()
        s.scoreThreshold = Float(cfg.double("MODEL.FCOS.INFERENCE_TH_TEST"))
        s.preNMSTopK = cfg.int("MODEL.FCOS.PRE_NMS_TOPK_TEST")
        s.postNMSTopK = cfg.int("MODEL.FCOS.POST_NMS_TOPK_TEST")
        s.nmsThreshold = cfg.double("MODEL.FCOS.NMS_TH")
        return s
    }

    /// The training (multi-scale, flip) or test (one short side, no flip) transform.
    public static func transform(_ cfg: TrainingConfig, training: Bool) throws -> InstanceTransform {
        let shorts = training ? cfg.ints("INPUT.MIN_SIZE_TRAIN") : [cfg.int("INPUT.MIN_SIZE_TEST")]
        let maxSize = cfg.int(training ? "INPUT.MAX_SIZE_TRAIN" : "INPUT.MAX_SIZE_TEST")
        guard !shorts.isEmpty, shorts.allSatisfy({ $0 > 0 }), maxSize > 0 else {
            throw InstanceConfigError(training ? "INPUT.MIN_SIZE_TRAIN" : "INPUT.MIN_SIZE_TEST", "sizes must be positive")
        }
        var t = InstanceTransform(shortSides: shorts, maxSize: maxSize, flip: training && cfg.bool("INPUT.HFLIP_TRAIN"),
                                  seed: UInt64(bitPattern: Int64(cfg.int("SEED"))))
        let mean = cfg.doubles("MODEL.PIXEL_MEAN"), std = cfg.doubles("MODEL.PIXEL_STD")
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }) else {
            throw InstanceConfigError("MODEL.PIXEL_MEAN", "MODEL.PIXEL_MEAN and MODEL.PIXEL_STD need 3 values (BGR), std positive")
        }
        t.pixelMean = mean.map(Float.init); t.pixelStd = std.map(Float.init)
        return t
    }

    /// The COCO data set of DATASETS.TRAIN or DATASETS.TEST under DATASETS.ROOT.
    public static func dataset(_ cfg: TrainingConfig, training: Bool) throws -> InstanceDataset {
        guard cfg.string("DATASETS.FORMAT") == "coco" else {
            throw InstanceConfigError("DATASETS.FORMAT", "'\(cfg.string("DATASETS.FORMAT"))': the instance task reads the COCO layout (coco)")
        }
        return try InstanceDataset(root: cfg.string("DATASETS.ROOT"), split: cfg.string(training ? "DATASETS.TRAIN" : "DATASETS.TEST"),
                                   filterEmpty: training && cfg.bool("DATALOADER.FILTER_EMPTY_ANNOTATIONS"))
    }
}
