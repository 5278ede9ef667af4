import Foundation

/// A number a study reads from a run's final evaluation (`eval/<key>` in metrics.jsonl).
public struct StudyMetric: Sendable, Equatable {
    /// The evaluation's name for it (`mIoU`, `segm/AP`, `abs_rel`).
    public let key: String
    /// How the report's headers name it.
    public let name: String
    /// Factor to the printed unit: 100 for fractions printed in percent, 1 for numbers already in it.
    public let scale: Double
    /// Whether a larger value is better (false for errors such as abs_rel).
    public let higherIsBetter: Bool

    /// A metric; see the properties.
    public init(key: String, name: String, scale: Double = 100, higherIsBetter: Bool = true) {
        self.key = key; self.name = name; self.scale = scale; self.higherIsBetter = higherIsBetter
    }

    /// mIoU (0…1) of the segmentation evaluator.
    public static let mIoU = StudyMetric(key: "mIoU", name: "mIoU")
    /// Pixel accuracy (0…1) of the segmentation evaluator.
    public static let aAcc = StudyMetric(key: "aAcc", name: "aAcc")
    /// COCO box AP, already in percent (as detectron2 reports it).
    public static let boxAP = StudyMetric(key: "bbox/AP", name: "box AP", scale: 1)
    /// COCO mask AP, already in percent.
    public static let maskAP = StudyMetric(key: "segm/AP", name: "mask AP", scale: 1)
    /// Mean absolute relative depth error (a fraction, printed in percent), the paper's "relative error".
    public static let absRel = StudyMetric(key: "abs_rel", name: "abs_rel", higherIsBetter: false)
    /// Fraction of pixels within a factor 1.25 of the true depth (0…1).
    public static let delta1 = StudyMetric(key: "delta1", name: "δ1")
}

/// The training job a study row runs: its command, its config in the study's config folder, the
/// synthetic data it trains on, how many ranks it uses and what its results are.
public enum StudyTask: String, Codable, Sendable, CaseIterable {
    /// `train-seg` on `synth seg` scenes (configs/study/student.yaml).
    case segmentation
    /// `train-inst` (CondInst) on `synth coco` images (configs/study/condinst.yaml).
    case instance
    /// `train-depth` (VNL's network) on `synth depth --tiny` rooms (configs/study/depth.yaml).
    case depth

    /// The percep-dist command that trains it.
    public var command: String {
        switch self {
        case .segmentation: return "train-seg"
        case .instance: return "train-inst"
        case .depth: return "train-depth"
        }
    }

    /// Its config file, in the study's config folder.
    public var config: String {
        switch self {
        case .segmentation: return "student.yaml"
        case .instance: return "condinst.yaml"
        case .depth: return "depth.yaml"
        }
    }

    /// Ranks of one run, launched through launch/mpirun-local.sh when more than one. CondInst's
    /// small convolutions keep two single-threaded ranks busier than one rank of two threads
    /// (0.35 against 0.49 s per iteration of the perceptual recipe on two cores).
    public var ranks: Int { self == .instance ? 2 : 1 }

    /// Iterations of a run with `--quick`: a quarter of its config's schedule.
    public var quickIterations: Int {
        switch self {
        case .segmentation: return 1200
        case .instance: return 750
        case .depth: return 500
        }
    }

    /// The overrides of `--quick`: a quarter of the schedule. Segmentation and depth decay their
    /// rate towards SOLVER.MAX_ITER (poly); CondInst's steps at 2000 and 2600 of 3000 move with it.
    public var quickSchedule: [String] {
        ["SOLVER.MAX_ITER", "\(quickIterations)"] + (self == .instance ? ["SOLVER.STEPS", "[500, 650]"] : [])
    }

    /// The metrics the report lists per run; the first (the trainer's primary metric) is the one
    /// whose evaluation record marks the final evaluation, and the chart's.
    public var metrics: [StudyMetric] {
        switch self {
        case .segmentation: return [.mIoU, .aAcc]
        case .instance: return [.maskAP, .boxAP]
        case .depth: return [.absRel, .delta1]
        }
    }

    /// What the report calls its runs.
    public var title: String {
        switch self {
        case .segmentation: return "semantic segmentation"
        case .instance: return "instance segmentation (CondInst)"
        case .depth: return "depth (VNL)"
        }
    }
}
