import PercepCore
import PercepNN

/// One named term of the training loss (`loss_ce`, `loss_aux`, `loss_perceptual`): a scalar
/// tensor on the tape. The trainer sums the terms, logs each one and checks each for NaN/Inf.
public struct LossTerm {
    /// Name as logged and written to metrics.jsonl.
    public let name: String
    /// The (already weighted) scalar value, shape [] or [1].
    public let value: Tensor

    /// A term `name` with value `value`.
    public init(_ name: String, _ value: Tensor) {
        self.name = name
        self.value = value
    }
}

/// A task's evaluation result after the ranks' sums were added up.
public struct EvaluationResult {
    /// Metrics in report order (`mIoU`, `aAcc`, …); written to metrics.jsonl as `eval/<name>`.
    public var metrics: [(name: String, value: Double)]
    /// The metric that picks the best checkpoint (must be one of `metrics`).
    public var primary: String
    /// Whether a larger `primary` is better (mIoU) or worse (an error).
    public var higherIsBetter: Bool
    /// A human-readable table (per-class IoU, …), logged by rank 0.
    public var report: String
    /// Finer numbers (per-class IoU as `IoU/<class>`, …): written to metrics.jsonl as
    /// `eval/<name>` beside `metrics`, but left out of the logged summary line (`report` shows them).
    public var details: [(name: String, value: Double)]

    /// A result; `report` and `details` may be empty.
    public init(metrics: [(name: String, value: Double)], primary: String, higherIsBetter: Bool = true, report: String = "",
                details: [(name: String, value: Double)] = []) {
        self.metrics = metrics
        self.primary = primary
        self.higherIsBetter = higherIsBetter
        self.report = report
        self.details = details
    }

    /// The primary metric's value (NaN when missing).
    public var primaryValue: Double { metrics.first { $0.name == primary }?.value ?? .nan }
}

/// The collective operations a task may run inside its loss or its evaluation: the trainer hands
/// its MPI world to the task (`attach`), one rank on its own is `SingleRank`.
public protocol TaskCollectives: AnyObject {
    /// This rank (0 ..< worldSize).
    var rank: Int { get }
    /// Number of ranks.
    var worldSize: Int { get }
    /// In-place sum of small vectors over the ranks (same length on every rank).
    func allreduceSum(_ values: inout [Double])
    /// Every rank's bytes on rank 0, in rank order (empty elsewhere).
    func gatherToRoot(_ bytes: [UInt8]) throws -> [[UInt8]]
}

/// The collectives of a job with one rank: sums are the values, gathers the rank's own bytes.
public final class SingleRank: TaskCollectives {
    /// One rank.
    public init() {}
    /// 0.
    public var rank: Int { 0 }
    /// 1.
    public var worldSize: Int { 1 }
    /// Nothing to add.
    public func allreduceSum(_ values: inout [Double]) {}
    /// The rank's own bytes.
    public func gatherToRoot(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
}

/// One rank's part of an evaluation: partial sums that add across ranks (mIoU's areas), or
/// records that rank 0 combines (COCO detections, whose AP is not a sum).
public enum EvaluationShard {
    /// Sums, the same length on every rank.
    case sums([Double])
    /// Serialised results of this rank's samples.
    case records([UInt8])
}

/// What a task (semantic segmentation, instance segmentation, depth, the demo) gives the shared
/// loop in `Trainer`: the model, the loss of one step on this rank's shard, and an evaluation
/// whose partial sums add up across ranks.
///
/// The trainer owns everything else: replicas, gradient sync, SGD groups, the LR schedule,
/// logging, evaluation scheduling, checkpoints and resume.
public protocol TrainingTask: AnyObject {
    /// The network being trained; every rank builds it from the same seed.
    var model: Module { get }
    /// Number of training samples: the sampler's dataset size.
    var trainingSetSize: Int { get }
    /// Called once before the first step of this run (fresh or resumed): the steps to come and
    /// the batch (epoch, global sample indices of this rank) of each, so a loader can prefetch.
    func prepare(steps: Range<Int>, batchAt: @escaping @Sendable (Int) -> (epoch: Int, indices: [Int])) throws
    /// The loss terms of step `step` on this rank's batch, in training mode with tape. `rng` is
    /// the trainer's generator (saved in checkpoints) for stochastic layers.
    func lossTerms(step: Int, rng: inout SeededRNG) throws -> [LossTerm]
    /// Seconds the last `lossTerms` call waited for its data (0 when data is computed inline).
    var lastDataTime: Double { get }
    /// Number of evaluation samples; 0 when the task has no evaluation.
    var evaluationSetSize: Int { get }
    /// Evaluates the samples `indices` (this rank's shard; the model is in eval mode, no tape)
    /// and returns partial sums that add across ranks (same length on every rank). `progress`
    /// takes the number of samples done so far.
    func evaluate(indices: [Int], progress: (Int) -> Void) throws -> [Double]
    /// Turns the summed partial sums into metrics.
    func summarize(_ sums: [Double]) -> EvaluationResult
    /// Stops background work (loader threads); called when training ends or fails.
    func finish()
    /// Receives the job's collectives before anything else runs (for normalisers that span ranks).
    func attach(_ collectives: TaskCollectives)
    /// A group per training sample (aspect-ratio buckets) when every global batch must come from
    /// one group, nil for plain batches.
    var samplingGroups: [Int]? { get }
    /// Facts every rank must agree on beyond the model and the config, checked at start-up
    /// (e.g. a fingerprint of the teacher's weights, which may come from different files on
    /// different nodes).
    var replicaFacts: [(name: String, value: Int64)] { get }
    /// Evaluates this rank's samples (model in eval mode, no tape): sums or records.
    func evaluateShard(indices: [Int], progress: (Int) -> Void) throws -> EvaluationShard
    /// Rank 0 only: turns every rank's records (in rank order) into metrics.
    func summarize(records: [[UInt8]]) throws -> EvaluationResult
}

extension TrainingTask {
    /// Tasks without a loader have nothing to prepare.
    public func prepare(steps: Range<Int>, batchAt: @escaping @Sendable (Int) -> (epoch: Int, indices: [Int])) throws {}
    /// Tasks without a loader never wait for data.
    public var lastDataTime: Double { 0 }
    /// No evaluation by default.
    public var evaluationSetSize: Int { 0 }
    /// No evaluation by default.
    public func evaluate(indices: [Int], progress: (Int) -> Void) throws -> [Double] { [] }
    /// No evaluation by default.
    public func summarize(_ sums: [Double]) -> EvaluationResult { EvaluationResult(metrics: [], primary: "") }
    /// Nothing to stop by default.
    public func finish() {}
    /// Tasks without cross-rank normalisers ignore the collectives.
    public func attach(_ collectives: TaskCollectives) {}
    /// Plain batches by default.
    public var samplingGroups: [Int]? { nil }
    /// Nothing beyond the model and the config by default.
    public var replicaFacts: [(name: String, value: Int64)] { [] }
    /// Additive evaluation by default.
    public func evaluateShard(indices: [Int], progress: (Int) -> Void) throws -> EvaluationShard {
        .sums(try evaluate(indices: indices, progress: progress))
    }
    /// Only tasks that return records summarise them.
    public func summarize(records: [[UInt8]]) throws -> EvaluationResult {
        throw TaskEvaluationError("this task's evaluation returns sums, not records")
    }
}

/// A task's evaluation could not be completed.
public struct TaskEvaluationError: Error, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// An error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
