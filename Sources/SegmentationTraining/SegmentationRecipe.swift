import Checkpoint
import Distributed
import Foundation
import ImageCodecs
import PercepCore
import PercepNN
import SegmentationData
import SegmentationModels
import Training

/// A config problem found while building the segmentation job, before any work starts.
public struct SegmentationConfigError: Error, CustomStringConvertible {
    /// The key (or file) at fault.
    public let key: String
    /// What is wrong.
    public let problem: String

    /// An error about `key`.
    public init(_ key: String, _ problem: String) {
        self.key = key
        self.problem = problem
    }

    /// "key: problem".
    public var description: String { "\(key): \(problem)" }
}

/// The parts of a segmentation job its config describes: datasets, transforms, the student, the
/// teacher. Shared by `train-seg` and `eval-seg --config`, so both read the keys the same way.
public enum SegmentationRecipe {
    /// The dataset of `DATASETS.FORMAT` under `DATASETS.ROOT`, split `DATASETS.TRAIN` or
    /// `DATASETS.TEST` (Cityscapes' annotation files by `DATASETS.CITYSCAPES.LABELS`).
    public static func dataset(_ cfg: TrainingConfig, training: Bool) throws -> SegmentationDataset {
        let key = training ? "DATASETS.TRAIN" : "DATASETS.TEST"
        guard let format = SegmentationDatasetFormat(rawValue: cfg.string("DATASETS.FORMAT")) else {
            throw SegmentationConfigError("DATASETS.FORMAT", "'\(cfg.string("DATASETS.FORMAT"))' is not a segmentation format (ade20k, cityscapes, voc)")
        }
        guard let split = SegmentationSplit(rawValue: cfg.string(key)) else {
            throw SegmentationConfigError(key, "'\(cfg.string(key))' is not a segmentation split (train or val)")
        }
        guard let labels = CityscapesLabels(rawValue: cfg.string("DATASETS.CITYSCAPES.LABELS")) else {
            throw SegmentationConfigError("DATASETS.CITYSCAPES.LABELS", "'\(cfg.string("DATASETS.CITYSCAPES.LABELS"))' is not auto, labelIds or labelTrainIds")
        }
        return try SegmentationDataset(format: format, root: cfg.string("DATASETS.ROOT"), split: split, cityscapesLabels: labels)
    }

    /// The class count: `MODEL.NUM_CLASSES`, which must equal the dataset's when both are given.
    public static func classes(_ cfg: TrainingConfig, dataset: SegmentationDataset) throws -> Int {
        let configured = cfg.int("MODEL.NUM_CLASSES")
        if configured > 0 && configured != dataset.numClasses {
            throw SegmentationConfigError("MODEL.NUM_CLASSES", "\(configured), but \(dataset.root) (\(dataset.format.rawValue)) has \(dataset.numClasses) classes")
        }
        return dataset.numClasses
    }

    /// mmseg's normalisation from `INPUT.PIXEL_MEAN` and `INPUT.PIXEL_STD` (RGB, 0…255 scale).
    public static func normalization(_ cfg: TrainingConfig) throws -> Normalization {
        let mean = cfg.doubles("INPUT.PIXEL_MEAN").map(Float.init), std = cfg.doubles("INPUT.PIXEL_STD").map(Float.init)
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }) else {
            throw SegmentationConfigError("INPUT.PIXEL_MEAN/INPUT.PIXEL_STD", "need three values each (RGB), std positive")
        }
        return Normalization(mean: mean, std: std)
    }

    /// The training augmentation: random rescale of `INPUT.SCALE` by `INPUT.RATIO_RANGE`, crop of
    /// `INPUT.CROP_SIZE` (ignore-padded), flip, normalisation; random draws from (SEED, epoch, index).
    public static func trainTransform(_ cfg: TrainingConfig) throws -> SegmentationTrainTransform {
        let scale = cfg.ints("INPUT.SCALE"), ratio = cfg.doubles("INPUT.RATIO_RANGE"), crop = cfg.ints("INPUT.CROP_SIZE")
        guard scale.count == 2, scale.allSatisfy({ $0 > 0 }) else { throw SegmentationConfigError("INPUT.SCALE", "need [long, short] > 0, got \(scale)") }
        guard ratio.count == 2, ratio[0] > 0, ratio[0] <= ratio[1] else {
            throw SegmentationConfigError("INPUT.RATIO_RANGE", "need [low, high] with 0 < low ≤ high, got \(ratio)")
        }
        guard crop.count == 2, crop.allSatisfy({ $0 > 0 }) else { throw SegmentationConfigError("INPUT.CROP_SIZE", "need [height, width] > 0, got \(crop)") }
        return SegmentationTrainTransform(scaleLong: scale[0], scaleShort: scale[1], ratioRange: ratio[0]...ratio[1],
                                          cropHeight: crop[0], cropWidth: crop[1], catMaxRatio: cfg.double("INPUT.CAT_MAX_RATIO"),
                                          flipProbability: cfg.bool("INPUT.FLIP") ? 0.5 : 0,
                                          normalization: try normalization(cfg), seed: UInt64(bitPattern: Int64(cfg.int("SEED"))))
    }

    /// The evaluation transform: keep-ratio resize to `TEST.SCALE` (none when empty) and normalisation.
    public static func evalTransform(_ cfg: TrainingConfig) throws -> SegmentationEvalTransform {
        let scale = cfg.ints("TEST.SCALE")
        guard scale.isEmpty || (scale.count == 2 && scale.allSatisfy { $0 > 0 }) else {
            throw SegmentationConfigError("TEST.SCALE", "need [long, short] > 0 or [], got \(scale)")
        }
        return SegmentationEvalTransform(scale: scale.isEmpty ? nil : (scale[0], scale[1]), normalization: try normalization(cfg))
    }

    /// The inference mode of `TEST.MODE`, `TEST.CROP_SIZE` and `TEST.STRIDE`.
    public static func inference(_ cfg: TrainingConfig) throws -> SegmentationInference.Mode {
        guard cfg.string("TEST.MODE") == "slide" else { return .whole }
        let crop = cfg.ints("TEST.CROP_SIZE"), stride = cfg.ints("TEST.STRIDE")
        guard crop.count == 2, stride.count == 2, (crop + stride).allSatisfy({ $0 > 0 }) else {
            throw SegmentationConfigError("TEST.CROP_SIZE/TEST.STRIDE", "need [height, width] > 0 each, got \(crop) and \(stride)")
        }
        return .slide(crop: (crop[0], crop[1]), stride: (stride[0], stride[1]))
    }

    /// The student network of `MODEL.*` (channel dropout `MODEL.DROPOUT_RATIO` before each head's
    /// classifier), seeded by `SEED` (stream "model"), with `MODEL.WEIGHTS`
    /// loaded weights-only (non-strict: an ImageNet backbone lacks the heads) when given.
    public static func student(_ cfg: TrainingConfig, classes: Int) throws -> SegmentationModel {
        var rng = SeededRNG(seed: UInt64(bitPattern: Int64(cfg.int("SEED"))), stream: "model")
        let dropout = cfg.double("MODEL.DROPOUT_RATIO")
        guard dropout >= 0 && dropout < 1 else {
            throw SegmentationConfigError("MODEL.DROPOUT_RATIO", "must be in [0, 1), got \(dropout)")
        }
        let model: SegmentationModel
        do {
            model = try makeSegmentationModel(name: cfg.string("MODEL.NAME"), classes: classes, rng: &rng,
                                              outputStride: cfg.int("MODEL.OUTPUT_STRIDE"), auxiliaryHead: cfg.bool("MODEL.AUX_HEAD"),
                                              baseChannels: cfg.int("MODEL.BASE_CHANNELS"), dropoutRatio: Float(dropout))
        } catch { throw SegmentationConfigError("MODEL", "\(error)") }
        let weights = cfg.string("MODEL.WEIGHTS")
        if !weights.isEmpty {
            do { Log.info("\(try CheckpointLoader.loadWeights(from: weights, into: model, remap: .segmentation, strict: false))") } catch {
                throw SegmentationConfigError("MODEL.WEIGHTS", "\(error)")
            }
        }
        return model
    }

    /// The teacher of `MODEL.TEACHER.*` with its weights (strict: every name must match), in
    /// eval mode and frozen; nil when `MODEL.TEACHER.NAME` is empty.
    public static func teacher(_ cfg: TrainingConfig, classes: Int) throws -> SegmentationModel? {
        let name = cfg.string("MODEL.TEACHER.NAME")
        guard !name.isEmpty else { return nil }
        let weights = cfg.string("MODEL.TEACHER.WEIGHTS")
        guard !weights.isEmpty else {
            throw SegmentationConfigError("MODEL.TEACHER.WEIGHTS", "MODEL.TEACHER.NAME is \(name) but no weights are given (a random teacher teaches nothing)")
        }
        var rng = SeededRNG(seed: 0, stream: "teacher")
        let model: SegmentationModel
        do {
            model = try makeSegmentationModel(name: name, classes: classes, rng: &rng, outputStride: cfg.int("MODEL.TEACHER.OUTPUT_STRIDE"),
                                              auxiliaryHead: cfg.bool("MODEL.TEACHER.AUX_HEAD"),
                                              baseChannels: cfg.int("MODEL.TEACHER.BASE_CHANNELS"))
        } catch { throw SegmentationConfigError("MODEL.TEACHER", "\(error)") }
        try CheckpointLoader.loadWeights(from: weights, into: model, remap: .segmentation, strict: true)
        model.train(false)
        model.freeze()
        return model
    }
}
