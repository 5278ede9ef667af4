/// One key of the schema: its full dotted path, type, default and (for enumerations) the values
/// it may take.
public struct ConfigKey: Sendable, Equatable {
    /// Full dotted path, e.g. `SOLVER.BASE_LR`.
    public let path: String
    /// The default, which also fixes the key's type.
    public let defaultValue: ConfigValue
    /// The allowed values of a string key; nil when any string goes.
    public let allowed: [String]?
    /// The range every number of a numeric key (or list) must lie in; nil when any finite value
    /// goes. Bounds keep values the code turns into sizes, counts and loop bounds from trapping
    /// or running away (`SOLVER.MAX_ITER -1`, `DIST.BUCKET_MB 1e14`).
    public let range: ClosedRange<Double>?

    /// A key with its default, optional allowed values and optional numeric range.
    public init(_ path: String, _ defaultValue: ConfigValue, allowed: [String]? = nil, range: ClosedRange<Double>? = nil) {
        self.path = path
        self.defaultValue = defaultValue
        self.allowed = allowed
        self.range = range
    }

    /// The key's type.
    public var type: ConfigType { defaultValue.type }
}

/// The set of valid keys. Loading checks every key of every file and override against it, so a
/// typo cannot silently fall back to a default.
public struct ConfigSchema: Sendable {
    /// The keys by full path.
    public let keys: [String: ConfigKey]
    /// Every prefix of a key path (`SOLVER`, `SOLVER.CLIP_GRADIENTS`): the groups a YAML mapping may open.
    public let groups: Set<String>

    /// A schema of `keys`; a path may appear once.
    public init(_ keys: [ConfigKey]) {
        var byPath: [String: ConfigKey] = [:]
        var groups: Set<String> = []
        for k in keys {
            precondition(byPath[k.path] == nil, "duplicate schema key \(k.path)")
            byPath[k.path] = k
            let parts = k.path.split(separator: ".")
            for n in 1..<max(parts.count, 1) { groups.insert(parts[0..<n].joined(separator: ".")) }
        }
        for g in groups { precondition(byPath[g] == nil, "schema key \(g) is also a group") }
        self.keys = byPath
        self.groups = groups
    }

    /// The valid key closest to `path` by edit distance (ties: alphabetical), for "did you mean".
    /// Groups count too, so `SOLVR.BASE_LR` suggests `SOLVER.BASE_LR` and `SOLVR` suggests `SOLVER`.
    public func closestKey(to path: String) -> String? {
        let candidates = (Array(keys.keys) + Array(groups)).sorted()
        var best: (String, Int)? = nil
        for c in candidates {
            let d = editDistance(path, c)
            if best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    /// The trainer's keys. Names and defaults follow detectron2 where it has the key; the
    /// `LOSS.PERCEPTUAL` block mirrors `Perceptual.LossNetworkConfig` (an empty LEVEL_WEIGHTS means
    /// its default, the last level only).
    public static let trainer = ConfigSchema([
        ConfigKey("SOLVER.IMS_PER_BATCH", .int(16)),
        ConfigKey("SOLVER.MAX_ITER", .int(40000), range: 0...1e9),
        ConfigKey("SOLVER.BASE_LR", .double(0.001)),
        ConfigKey("SOLVER.MOMENTUM", .double(0.9)),
        ConfigKey("SOLVER.WEIGHT_DECAY", .double(0.0001)),
        ConfigKey("SOLVER.WEIGHT_DECAY_NORM", .double(0.0)),
        ConfigKey("SOLVER.LR_SCHEDULER_NAME", .string("WarmupMultiStepLR"), allowed: LRSchedulerName.allCases.map(\.rawValue)),
        ConfigKey("SOLVER.POLY_POWER", .double(0.9)),
        // VNL's loop steps its scheduler before each iteration: iteration k uses the rate of k + 1.
        ConfigKey("SOLVER.STEP_BEFORE_ITER", .bool(false)),
        ConfigKey("SOLVER.STEPS", .intList([30000])),
        ConfigKey("SOLVER.GAMMA", .double(0.1)),
        ConfigKey("SOLVER.WARMUP_ITERS", .int(1000)),
        ConfigKey("SOLVER.WARMUP_FACTOR", .double(0.001)),
        ConfigKey("SOLVER.WARMUP_METHOD", .string("linear"), allowed: WarmupMethod.allCases.map(\.rawValue)),
        ConfigKey("SOLVER.CLIP_GRADIENTS.ENABLED", .bool(false)),
        ConfigKey("SOLVER.CLIP_GRADIENTS.CLIP_TYPE", .string("value"), allowed: ["value", "norm"]),
        ConfigKey("SOLVER.CLIP_GRADIENTS.CLIP_VALUE", .double(1.0)),
        // What a non-finite loss does: stop the run (the last good checkpoint stays), or skip
        // the step on every rank.
        ConfigKey("SOLVER.NONFINITE_LOSS", .string("stop"), allowed: ["stop", "skip"]),
        ConfigKey("SOLVER.CHECKPOINT_PERIOD", .int(5000)),
        ConfigKey("SOLVER.MAX_TO_KEEP", .int(5)),
        ConfigKey("TEST.EVAL_PERIOD", .int(0)),
        ConfigKey("OUTPUT_DIR", .string("./output")),
        // Iterations between log lines and metrics.jsonl records (detectron2 writes every 20).
        ConfigKey("LOG_PERIOD", .int(20)),
        ConfigKey("SEED", .int(0)),
        ConfigKey("DIST.BUCKET_MB", .double(25), range: 0.001...4096),
        ConfigKey("DIST.OVERLAP", .bool(true)),
        ConfigKey("DIST.TIMEOUT_SECONDS", .double(600), range: 0.1...1e7),
        ConfigKey("MODEL.SYNC_BN", .bool(false)),
        // Segmentation (`train-seg`, `eval-seg`): mmseg's recipes, detectron2-style keys.
        ConfigKey("MODEL.NAME", .string("pspnet_r18")),   // pspnet_r*, deeplabv3plus_r*, fcn_hr18s, fcn_hr18, fcn_hr48
        ConfigKey("MODEL.NUM_CLASSES", .int(0)),          // 0: the dataset's class count
        ConfigKey("MODEL.OUTPUT_STRIDE", .int(8)),        // ResNet models only (HRNet's logits are at stride 4)
        ConfigKey("MODEL.BASE_CHANNELS", .int(64)),       // stem width (ResNet, HRNet); heads and HRNet branches scale with it
        ConfigKey("MODEL.AUX_HEAD", .bool(true)),         // the recipe's auxiliary FCN head (ResNet models; HRNet's recipes have none)
        ConfigKey("MODEL.AUX_WEIGHT", .double(0.4)),
        ConfigKey("MODEL.DROPOUT_RATIO", .double(0.1)),   // channel dropout before each head's conv_seg (mmseg's dropout_ratio)
        ConfigKey("MODEL.WEIGHTS", .string("")),          // initial weights (weights-only, e.g. an ImageNet backbone)
        ConfigKey("MODEL.TEACHER.NAME", .string("")),     // empty: no teacher
        ConfigKey("MODEL.TEACHER.OUTPUT_STRIDE", .int(8)),
        ConfigKey("MODEL.TEACHER.BASE_CHANNELS", .int(64)),
        ConfigKey("MODEL.TEACHER.AUX_HEAD", .bool(true)),
        ConfigKey("MODEL.TEACHER.WEIGHTS", .string("")),
        ConfigKey("DATASETS.ROOT", .string("datasets/ADEChallengeData2016")),
        ConfigKey("DATASETS.FORMAT", .string("ade20k"), allowed: ["ade20k", "cityscapes", "voc", "coco", "nyu"]),
        // Splits: train/val for the segmentation formats, the COCO split names (train2017, val2017).
        // Cityscapes' annotation files: gtFine labelIds (mapped) or labelTrainIds (mmseg's
        // seg_map_suffix default); auto takes labelIds where a split has them.
        ConfigKey("DATASETS.CITYSCAPES.LABELS", .string("auto"), allowed: ["auto", "labelIds", "labelTrainIds"]),
        ConfigKey("DATASETS.TRAIN", .string("train")),
        ConfigKey("DATASETS.TEST", .string("val")),
        ConfigKey("INPUT.SCALE", .intList([2048, 512]), range: 1...16384),  // mmseg's RandomResize scale (long, short side)
        ConfigKey("INPUT.RATIO_RANGE", .doubleList([0.5, 2.0]), range: 0.01...64),
        ConfigKey("INPUT.CROP_SIZE", .intList([512, 512]), range: 1...16384),
        ConfigKey("INPUT.CAT_MAX_RATIO", .double(0.75)),
        ConfigKey("INPUT.FLIP", .bool(true)),
        ConfigKey("INPUT.PIXEL_MEAN", .doubleList([123.675, 116.28, 103.53])),
        ConfigKey("INPUT.PIXEL_STD", .doubleList([58.395, 57.12, 57.375])),
        ConfigKey("TEST.SCALE", .intList([2048, 512])),   // eval resize (keep ratio); empty: original size
        ConfigKey("TEST.MODE", .string("whole"), allowed: ["whole", "slide"]),
        ConfigKey("TEST.CROP_SIZE", .intList([512, 512])),
        ConfigKey("TEST.STRIDE", .intList([341, 341])),
        ConfigKey("DATALOADER.NUM_WORKERS", .int(2)),
        ConfigKey("DATALOADER.PREFETCH", .int(4)),
        ConfigKey("DATALOADER.MAX_BROKEN_FRACTION", .double(0.01)),
        ConfigKey("LOSS.PERCEPTUAL.ENABLED", .bool(false)),
        ConfigKey("LOSS.PERCEPTUAL.FAMILY", .string("vgg"), allowed: ["vgg", "resnet18", "alexnet", "mobilenetv2", "googlenet"]),
        ConfigKey("LOSS.PERCEPTUAL.STRUCTURE", .intList([2, 2, 3, 3, 3])),
        ConfigKey("LOSS.PERCEPTUAL.WIDTHS", .intList([64, 128, 256, 512, 512])),
        ConfigKey("LOSS.PERCEPTUAL.KERNEL_SIZE", .int(3)),
        ConfigKey("LOSS.PERCEPTUAL.INIT", .string("he")),
        ConfigKey("LOSS.PERCEPTUAL.SEED", .int(0)),
        ConfigKey("LOSS.PERCEPTUAL.LEVEL_WEIGHTS", .doubleList([])),
        ConfigKey("LOSS.PERCEPTUAL.LAMBDA", .double(0.1)),
        // The pretrained ('T') variant of Table 1: ImageNet weights of FAMILY (torchvision's .pth,
        // or HDF5 under torchvision's names) behind a seeded 1×1 C → 3 convolution; empty: random.
        ConfigKey("LOSS.PERCEPTUAL.WEIGHTS", .string("")),
        // What the student's softmax is compared with: the teacher's softmax, or the one-hot
        // ground truth (the paper's ablation).
        ConfigKey("LOSS.PERCEPTUAL.TARGET", .string("teacher"), allowed: ["teacher", "ground_truth"]),
        // CondInst's perceptual mask term: instances per group through the loss network (−1: all)
        // and per pass (bounds memory).
        ConfigKey("LOSS.PERCEPTUAL.MAX_INSTANCES", .int(-1)),
        ConfigKey("LOSS.PERCEPTUAL.INSTANCES_PER_CHUNK", .int(16)),
        // Instance segmentation (`train-inst`, `eval-inst`): AdelaiDet's CondInst keys and defaults.
        ConfigKey("MODEL.PIXEL_MEAN", .doubleList([103.530, 116.280, 123.675])),   // BGR, as R-50.pkl expects
        ConfigKey("MODEL.PIXEL_STD", .doubleList([1.0, 1.0, 1.0])),
        ConfigKey("MODEL.RESNETS.DEPTH", .int(50)),
        ConfigKey("MODEL.RESNETS.STEM_OUT_CHANNELS", .int(64)),
        ConfigKey("MODEL.RESNETS.RES2_OUT_CHANNELS", .int(256)),
        ConfigKey("MODEL.RESNETS.NUM_GROUPS", .int(1), range: 1...64),
        ConfigKey("MODEL.RESNETS.WIDTH_PER_GROUP", .int(64), range: 1...4096),
        ConfigKey("MODEL.RESNETS.STRIDE_IN_1X1", .bool(true)),
        ConfigKey("MODEL.RESNETS.NORM", .string("FrozenBN"), allowed: ["FrozenBN", "BN"]),
        ConfigKey("MODEL.BACKBONE.FREEZE_AT", .int(2)),
        ConfigKey("MODEL.FPN.OUT_CHANNELS", .int(256)),
        ConfigKey("MODEL.FCOS.NUM_CLASSES", .int(80)),
        ConfigKey("MODEL.FCOS.NUM_CLS_CONVS", .int(4)),
        ConfigKey("MODEL.FCOS.NUM_BOX_CONVS", .int(4)),
        ConfigKey("MODEL.FCOS.GN_GROUPS", .int(32)),          // GroupNorm groups of the towers (AdelaiDet: 32)
        ConfigKey("MODEL.FCOS.PRIOR_PROB", .double(0.01)),
        ConfigKey("MODEL.FCOS.FPN_STRIDES", .intList([8, 16, 32, 64, 128])),
        ConfigKey("MODEL.FCOS.SIZES_OF_INTEREST", .intList([64, 128, 256, 512])),
        ConfigKey("MODEL.FCOS.POS_RADIUS", .double(1.5)),
        ConfigKey("MODEL.FCOS.LOSS_ALPHA", .double(0.25)),
        ConfigKey("MODEL.FCOS.LOSS_GAMMA", .double(2.0)),
        ConfigKey("MODEL.FCOS.INFERENCE_TH_TEST", .double(0.05)),
        ConfigKey("MODEL.FCOS.PRE_NMS_TOPK_TEST", .int(1000)),
        ConfigKey("MODEL.FCOS.POST_NMS_TOPK_TEST", .int(100)),
        ConfigKey("MODEL.FCOS.NMS_TH", .double(0.6)),
        ConfigKey("MODEL.CONDINST.MASK_OUT_STRIDE", .int(4)),
        ConfigKey("MODEL.CONDINST.MAX_PROPOSALS", .int(500)),
        ConfigKey("MODEL.CONDINST.TOPK_PROPOSALS_PER_IM", .int(-1)),
        ConfigKey("MODEL.CONDINST.MASK_HEAD.CHANNELS", .int(8)),
        ConfigKey("MODEL.CONDINST.MASK_HEAD.NUM_LAYERS", .int(3)),
        ConfigKey("MODEL.CONDINST.MASK_BRANCH.CHANNELS", .int(128)),
        ConfigKey("MODEL.CONDINST.MASK_BRANCH.NUM_CONVS", .int(4)),
        ConfigKey("MODEL.CONDINST.MASK_BRANCH.OUT_CHANNELS", .int(8)),
        ConfigKey("INPUT.MIN_SIZE_TRAIN", .intList([640, 672, 704, 736, 768, 800]), range: 1...16384),
        ConfigKey("INPUT.MAX_SIZE_TRAIN", .int(1333), range: 1...16384),
        ConfigKey("INPUT.MIN_SIZE_TEST", .int(800), range: 1...16384),
        ConfigKey("INPUT.MAX_SIZE_TEST", .int(1333), range: 1...16384),
        ConfigKey("INPUT.HFLIP_TRAIN", .bool(true)),
        // AdelaiDet's per-GPU semantics (mask-branch BN statistics, the proposal cap, the dice
        // mean) apply per group of this many images, however the groups are spread over ranks.
        ConfigKey("SOLVER.IMS_PER_GROUP", .int(2)),
        ConfigKey("DATALOADER.ASPECT_RATIO_GROUPING", .bool(true)),
        ConfigKey("DATALOADER.FILTER_EMPTY_ANNOTATIONS", .bool(true)),
        // Depth (`train-depth`): VNL's network, bins, losses and NYU's geometry
        // (../shared/specs/depth.md §8). INPUT.CROP_SIZE[0] is the square crop (385).
        ConfigKey("MODEL.DEPTH.BASE_WIDTH", .int(64), range: 1...1024),
        ConfigKey("MODEL.DEPTH.BLOCKS", .intList([3, 4, 6, 3]), range: 1...64),
        ConfigKey("MODEL.DEPTH.LATERAL_OUT", .intList([512, 256, 256, 256]), range: 1...8192),
        ConfigKey("MODEL.DEPTH.FCN_DIM_IN", .intList([512, 256, 256, 256, 256, 256]), range: 1...8192),
        ConfigKey("MODEL.DEPTH.FCN_DIM_OUT", .intList([256, 256, 256, 256, 256]), range: 1...8192),
        ConfigKey("MODEL.DEPTH.ASPP_CHANNELS", .int(512), range: 1...8192),
        ConfigKey("MODEL.DEPTH.ASPP_DILATIONS", .intList([2, 4, 6]), range: 1...64),
        ConfigKey("MODEL.DEPTH.BINS", .int(150), range: 2...4096),
        ConfigKey("MODEL.DEPTH.MIN", .double(0.01), range: 1e-6...1e6),
        ConfigKey("MODEL.DEPTH.MAX", .double(1.7), range: 1e-6...1e6),
        ConfigKey("MODEL.DEPTH.SCALE", .double(10.0), range: 1e-6...1e6),
        ConfigKey("INPUT.RAW_SIZE", .intList([480, 640]), range: 1...16384),
        ConfigKey("INPUT.TRAIN_SQUARE_SIZES", .intList([385, 416, 448, 480, 512, 544, 576, 608, 640]), range: 1...16384),
        ConfigKey("INPUT.TEST_SQUARE_SIZE", .int(640), range: 1...16384),
        ConfigKey("DATASETS.NYU.MAT", .string("nyu_depth_v2_labeled.mat")),
        ConfigKey("DATASETS.NYU.SPLITS", .string("splits.mat")),
        ConfigKey("DATASETS.NYU.FOCAL", .doubleList([519.0, 519.0]), range: 1e-3...1e6),
        ConfigKey("DATASETS.NYU.DEPTH_SOURCE", .string("depths"), allowed: ["depths", "rawDepths"]),
        ConfigKey("LOSS.WCE.WEIGHT", .double(1.0)),
        ConfigKey("LOSS.WCE.COEF", .double(0.2), range: 0...100),
        ConfigKey("LOSS.VNL.WEIGHT", .double(6.0)),
        ConfigKey("LOSS.VNL.SAMPLE_RATIO", .double(0.15), range: 0...10),
        ConfigKey("LOSS.VNL.COS_THRESH", .double(0.867), range: 0...1),
        ConfigKey("LOSS.VNL.NEAR_THRESH", .double(0.005), range: 0...1e6),
        ConfigKey("LOSS.VNL.MIN_Z", .double(1e-4), range: 0...1e6),
        ConfigKey("LOSS.VNL.TRIM", .double(0.25), range: 0...0.99),
        // Pixels without ground truth (padding) in the perceptual term of depth: masked out of both
        // maps (`mask`) or fed as they are (`raw`, the target's −1 band).
        ConfigKey("LOSS.PERCEPTUAL.INVALID", .string("mask"), allowed: ["mask", "raw"]),
        ConfigKey("TEST.EVAL_CROP", .intList([45, 471, 41, 601]), range: 0...16384),
    ])
}

/// Levenshtein distance over Unicode scalars (key paths are ASCII; two rows suffice).
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
    if a.isEmpty { return b.count }
    var prev = Array(0...b.count), cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
