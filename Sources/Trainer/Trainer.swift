import BuildInfo
import Checkpoint
import Distributed
import Foundation
import PercepCore
import PercepNN
import Training

/// The training loop every task shares (`train-seg`, `train-demo`, …).
///
/// Config → replicas that agree → sharded batches → the task's loss terms → bucketed gradient
/// all-reduce → SGD with rank 0's learning rate → rank-0 logs and metrics.jsonl → sharded
/// evaluation every `TEST.EVAL_PERIOD` iterations and at the end (best checkpoint kept) → atomic
/// checkpoints every `SOLVER.CHECKPOINT_PERIOD`, with bit-exact resume at the same world size.
public final class Trainer {
    /// The resolved config.
    public let config: TrainingConfig
    /// The MPI world (one rank without a launcher).
    public let world: Communicator
    /// The task being trained.
    public let task: TrainingTask
    /// Fingerprint of the task's loss network (0 without one): checked across ranks and stored
    /// in checkpoints.
    public let lossNetworkFingerprint: UInt64
    /// The task's replica facts, stored in checkpoints and compared on resume (computed once:
    /// fingerprints hash whole weight files).
    lazy var taskFacts: [String: Int64] = Dictionary(task.replicaFacts.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })

    /// Best primary metric so far (NaN before the first evaluation).
    public private(set) var bestMetric = Double.nan
    /// Steps skipped for a non-finite loss (`SOLVER.NONFINITE_LOSS: skip`).
    public private(set) var skippedSteps = 0

    private let outputDirectory: String
    private let globalBatch: Int
    private var rng: SeededRNG

    /// A trainer of `task` under `config` on `world`.
    public init(config: TrainingConfig, world: Communicator, task: TrainingTask, lossNetworkFingerprint: UInt64) {
        self.config = config
        self.world = world
        self.task = task
        self.lossNetworkFingerprint = lossNetworkFingerprint
        self.outputDirectory = config.string("OUTPUT_DIR")
        self.globalBatch = config.int("SOLVER.IMS_PER_BATCH")
        self.rng = SeededRNG(seed: UInt64(bitPattern: Int64(config.int("SEED"))), stream: "trainer")
    }

    /// Trains to `SOLVER.MAX_ITER` (or `stopAt`, as if preempted), resuming from the newest
    /// complete checkpoint in `OUTPUT_DIR` when `resume` is set.
    public func run(resume: Bool = false, stopAt: Int? = nil) throws {
        defer { task.finish() }
        let cfg = config, model = task.model
        let maxIter = cfg.int("SOLVER.MAX_ITER")
        if world.rank == 0 {
            // A fresh run must not append to another run's metrics or prune its checkpoints.
            if !resume, let marker = Self.existingRun(in: outputDirectory) {
                throw DistributedError(rank: 0, message: "OUTPUT_DIR \(outputDirectory) already holds a run (\(marker)): pass --resume to continue it, or choose another OUTPUT_DIR")
            }
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            Log.info("resolved config (hash \(String(cfg.hash, radix: 16))):\n\(cfg.resolvedYAML)")
        }
        task.attach(world)
        let named = model.namedParameters().filter { $0.1.requiresGrad }
        try world.verifyReplicas([
            ("parameter count", Int64(named.count)), ("shapes", shapesHash(model)),
            ("resolved config", Int64(bitPattern: cfg.hash)),
            ("loss-network fingerprint", Int64(bitPattern: lossNetworkFingerprint)), ("build", BuildInfo.identityHash),
        ] + task.replicaFacts)
        world.broadcastState(of: model)
        if cfg.bool("MODEL.SYNC_BN") { world.synchronizeBatchNorm(in: model) }
        // Normalisation weights and biases get SOLVER.WEIGHT_DECAY_NORM, the rest SOLVER.WEIGHT_DECAY.
        let normNames = model.normalizationParameterNames()
        let isNorm = { (name: String) in normNames.contains(name) }
        let sgd = SGD(groups: [(named.filter { !isNorm($0.0) }.map(\.1), Float(cfg.double("SOLVER.WEIGHT_DECAY"))),
                               (named.filter { isNorm($0.0) }.map(\.1), Float(cfg.double("SOLVER.WEIGHT_DECAY_NORM")))],
                      learningRate: Float(cfg.double("SOLVER.BASE_LR")), momentum: Float(cfg.double("SOLVER.MOMENTUM")))
        let params = named.map(\.1)
        let sync = GradientSynchronizer(parameters: params, communicator: world,
                                        bucketBytes: Int(cfg.double("DIST.BUCKET_MB") * 1_048_576), overlap: cfg.bool("DIST.OVERLAP"))
        let schedule = LRSchedule(config: cfg)
        let sampler = try DistributedSampler(datasetSize: task.trainingSetSize, globalBatch: globalBatch,
                                             seed: UInt64(bitPattern: Int64(cfg.int("SEED"))), worldSize: world.size, rank: world.rank,
                                             groups: task.samplingGroups)
        // A checkpoint past SOLVER.MAX_ITER (a shortened schedule) has nothing left to train.
        let start = min(resume ? try restore(model: model, optimizer: sgd, parameters: params) : 0, maxIter)
        let writer = CheckpointWriter(directory: outputDirectory, keepLast: cfg.int("SOLVER.MAX_TO_KEEP"))
        let metrics = world.rank == 0 ? try MetricsLog(directory: outputDirectory) : nil
        defer { metrics?.close() }
        let batch = globalBatch
        try task.prepare(steps: start..<maxIter) { sampler.batch(atCursor: $0 * batch) }

        let checkpointPeriod = max(1, cfg.int("SOLVER.CHECKPOINT_PERIOD"))
        let evalPeriod = cfg.int("TEST.EVAL_PERIOD"), logPeriod = max(1, cfg.int("LOG_PERIOD"))
        let skipNonFinite = cfg.string("SOLVER.NONFINITE_LOSS") == "skip"
        let began = Date()
        for it in start..<maxIter {
            // Rank 0 owns the schedule; every rank uses its value.
            var lr = [Float(schedule.lr(at: it))]
            lr.withUnsafeMutableBytes { world.broadcast($0.baseAddress!, bytes: 4, name: "learning rate") }
            sgd.learningRate = lr[0]
            let t0 = Date()
            let epoch = sampler.batch(atCursor: it * batch).epoch
            let terms = try task.lossTerms(step: it, rng: &rng)
            try checkBatchNormStatistics(model)
            let total = terms.dropFirst().reduce(terms[0].value) { $0 + $1.value }
            // Seconds this rank waited for gradients after its backward walk: communication that
            // overlap did not hide, plus any wait for a slower rank (0 on one rank).
            var commWait = 0.0
            let (skip, averages) = try reduceTerms(terms, iteration: it, skip: skipNonFinite)
            if skip {
                skippedSteps += 1
                Tape.current.reset()   // the skipped step's graph must not reach the next backward
            } else {
                sync.zeroGrads()
                sync.backward(total)
                if let p = sync.lastProfile { commWait = p.totalSeconds - p.walkSeconds }
                if cfg.bool("SOLVER.CLIP_GRADIENTS.ENABLED") {
                    let limit = Float(cfg.double("SOLVER.CLIP_GRADIENTS.CLIP_VALUE"))
                    if cfg.string("SOLVER.CLIP_GRADIENTS.CLIP_TYPE") == "norm" {
                        _ = GradientClipping.clipNorm(params, limit)
                    } else {
                        GradientClipping.clipValue(params, limit)
                    }
                }
                sgd.step()
            }
            let dt = Date().timeIntervalSince(t0)
            if world.rank == 0 && (it % logPeriod == 0 || it == maxIter - 1) {
                let eta = Date().timeIntervalSince(began) / Double(it - start + 1) * Double(maxIter - it - 1)
                // The terms averaged over ranks: the global batch's loss, as detectron2 logs it.
                let termText = zip(terms, averages).map { String(format: "%@: %.4f", $0.name, $1) }.joined(separator: "  ")
                let totalAverage = averages.reduce(0, +)
                let commText = world.size > 1 ? String(format: "  comm_wait: %.4f", commWait) : ""
                Log.info(String(format: "eta: %@  iter: %d  total_loss: %.4f  %@  time: %.4f  data_time: %.4f%@  lr: %.5g  max_mem: %.0fM",
                                clockText(eta), it, totalAverage, termText, dt, task.lastDataTime, commText, lr[0], peakRSSMegabytes()))
                var record: [String: Any] = ["iteration": it, "total_loss": totalAverage, "lr": Double(lr[0]), "time": dt,
                                             "data_time": task.lastDataTime, "epoch": epoch, "eta_seconds": eta]
                if world.size > 1 { record["comm_wait"] = commWait }
                for (term, value) in zip(terms, averages) { record[term.name] = value }
                try metrics?.append(record)
            }
            let done = it + 1
            var state: CheckpointState {
                CheckpointState(iteration: done, epoch: sampler.batch(atCursor: done * batch).epoch, sampleCursor: Int64(done * batch),
                                rngState: rng.state, learningRate: Double(lr[0]), scheduleIteration: done, worldSize: world.size,
                                configText: cfg.resolvedYAML, configHash: cfg.hash, lossNetworkFingerprint: lossNetworkFingerprint,
                                bestMetric: bestMetric, taskFacts: taskFacts)
            }
            if task.evaluationSetSize > 0 && ((evalPeriod > 0 && done % evalPeriod == 0) || done == maxIter) {
                let result = try evaluate()
                if world.rank == 0 {
                    var record: [String: Any] = ["iteration": it]
                    for (name, value) in result.metrics + result.details { record["eval/" + name] = value }
                    try metrics?.append(record)
                    let value = result.primaryValue
                    if value.isFinite && (bestMetric.isNaN || (result.higherIsBetter ? value > bestMetric : value < bestMetric)) {
                        bestMetric = value
                        let path = try writer.writeBest(model: model, state: state)
                        Log.info(String(format: "new best %@ %.4f at iteration %d: %@", result.primary, value, done, path))
                    }
                }
            }
            if done % checkpointPeriod == 0 || done == maxIter {
                if world.rank == 0 {
                    // A finite loss can still be followed by an update that overflows; such weights
                    // must not replace the last good checkpoint.
                    if let (name, _) = model.stateDict().first(where: { !$0.1.values.allSatisfy(\.isFinite) }) {
                        throw DistributedError(rank: 0, message: "non-finite values in \(name) after iteration \(done); the last good checkpoint is kept")
                    }
                    _ = try writer.write(model: model, optimizer: sgd, state: state)
                }
                world.barrier()
            }
            if let stopAt, done >= stopAt { Log.info("stopping at iteration \(done) (--stop-at)"); break }
        }
        if skippedSteps > 0 { Log.warning("skipped \(skippedSteps) step(s) with a non-finite loss") }
    }

    /// Evaluates the task on every rank's shard (sample i goes to rank i mod W), then either adds
    /// the partial sums on all ranks (`.sums`, every rank gets the result) or gathers the records
    /// to rank 0 (`.records`, only rank 0's result holds metrics), and logs the result on rank 0;
    /// the model returns to training mode.
    public func evaluate() throws -> EvaluationResult {
        let model = task.model
        let n = task.evaluationSetSize
        let shard = Array(stride(from: world.rank, to: n, by: world.size))
        let bar = ProgressBar(total: n, label: "eval", enabled: world.rank == 0)
        // Without sync BN each rank's running statistics drift apart (batch statistics of its own
        // shard); every rank evaluates rank 0's model, the one checkpoints hold, as DDP's
        // buffer broadcast would.
        world.broadcastState(of: model)
        model.train(false)
        defer { model.train(true) }
        let began = Date()
        let worldSize = world.size
        // Fault injection for the reliability tests: this rank stops itself (SIGSTOP) as the
        // evaluation begins, and the watchdog must end the job.
        if let stopRank = ProcessInfo.processInfo.environment["PERCEP_FAULT_STOP_RANK_IN_EVALUATION"].flatMap(Int.init), stopRank == world.rank {
            kill(getpid(), SIGSTOP)
        }
        let part = try Tape.withoutGrad {
            try task.evaluateShard(indices: shard) { bar.update(min(n, $0 * worldSize)) }
        }
        bar.update(n)
        let result: EvaluationResult
        switch part {
        case .sums(var sums):
            // A rank returning another length would make the sum meaningless (or hang MPI).
            let lengths = world.allgather([Int64(sums.count)], name: "evaluation sums (lengths)").map { $0[0] }
            guard Set(lengths).count == 1 else {
                throw DistributedError(rank: world.rank, message: "evaluation sums differ in length across ranks: "
                                       + lengths.enumerated().map { "rank \($0.offset): \($0.element)" }.joined(separator: ", "))
            }
            world.allreduceSum(&sums, name: "evaluation sums")
            result = task.summarize(sums)
        case .records(let bytes):
            let all = try world.gather(bytes, name: "evaluation records")
            guard world.rank == 0 else { return EvaluationResult(metrics: [], primary: "") }
            result = try task.summarize(records: all)
        }
        let text = result.metrics.map { String(format: "%@: %.4f", $0.name, $0.value) }.joined(separator: "  ")
        Log.info(String(format: "evaluation on %d samples (%.1f s): %@", n, Date().timeIntervalSince(began), text))
        if !result.report.isEmpty { Log.info(result.report) }
        return result
    }

    /// What shows that `directory` holds a run already (its pointer, metrics or a checkpoint), or nil.
    static func existingRun(in directory: String) -> String? {
        let fm = FileManager.default
        for marker in [CheckpointWriter.pointerName, "metrics.jsonl"] where fm.fileExists(atPath: (directory as NSString).appendingPathComponent(marker)) {
            return marker
        }
        let entries = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        return entries.sorted().first { $0.hasPrefix("model_") && $0.hasSuffix(".h5") }
    }

    /// Loads the newest complete checkpoint on rank 0 and broadcasts the model, the momentum
    /// buffers, the iteration, the trainer RNG and the best metric; returns the iteration.
    private func restore(model: Module, optimizer sgd: SGD, parameters: [Tensor]) throws -> Int {
        // iteration, six RNG words, best-metric bits
        var header = [UInt64](repeating: 0, count: 8)
        if world.rank == 0 {
            let (checkpoint, source) = try CheckpointLoader.latest(in: outputDirectory)
            if case .fallback(let reason) = source { Log.warning(reason) }
            if checkpoint.state.configHash != config.hash {
                // Name what differs. Where things live and how often the run logs, checkpoints
                // and evaluates (a run directory moved to another filesystem, a longer eval
                // period) take this run's values with a warning, and so do keys only this version
                // knows (an upgrade mid-run); anything else changes the maths and stops the resume.
                let diff = config.difference(fromStored: checkpoint.state.configText)
                let (logistics, maths) = diff.changed.reduce(into: ([ConfigDifference.Change](), [ConfigDifference.Change]())) { split, change in
                    if TrainingConfig.isLogistics(change.key) { split.0.append(change) } else { split.1.append(change) }
                }
                var problems = maths.map { "\($0.key): \($0.stored) in the checkpoint, \($0.current) now" }
                problems += diff.removed.map { "\($0): in the checkpoint, unknown to this version" }
                if !logistics.isEmpty && problems.isEmpty {
                    Log.warning("\(checkpoint.path) was written with other paths or periods; the run continues with " + logistics.map { "\($0.key) \($0.current) (was \($0.stored))" }.joined(separator: ", "))
                }
                if !problems.isEmpty || (diff.added.isEmpty && logistics.isEmpty) {
                    if problems.isEmpty { problems = ["the stored config text differs (hash \(String(checkpoint.state.configHash, radix: 16)) vs \(String(config.hash, radix: 16)))"] }
                    throw DistributedError(rank: 0, message: "\(checkpoint.path) was written with another config: " + problems.joined(separator: "; "))
                }
                if !diff.added.isEmpty {
                    Log.warning("\(checkpoint.path) predates config keys \(diff.added.map { "\($0.key) (now \($0.current))" }.joined(separator: ", ")); the run continues with those values")
                }
            }
            guard checkpoint.state.lossNetworkFingerprint == lossNetworkFingerprint else {
                throw DistributedError(rank: 0, message: "\(checkpoint.path) was trained against another loss network (fingerprint \(String(checkpoint.state.lossNetworkFingerprint, radix: 16)))")
            }
            // Files the config names by path (which may move between a run and its resume) must
            // still hold the same contents.
            for (name, value) in taskFacts.sorted(by: { $0.key < $1.key }) {
                if let stored = checkpoint.state.taskFacts[name], stored != value {
                    throw DistributedError(rank: 0, message: "\(checkpoint.path) was trained with other \(name) (fingerprint \(String(UInt64(bitPattern: stored), radix: 16)), now \(String(UInt64(bitPattern: value), radix: 16)))")
                }
            }
            if checkpoint.state.worldSize != world.size {
                Log.warning("\(checkpoint.path) was written by \(checkpoint.state.worldSize) rank(s), this run has \(world.size): training continues at the same global batch but not bit for bit")
            }
            try CheckpointLoader.restore(checkpoint, into: model, optimizer: sgd)
            let words = checkpoint.state.rngState.count == 6 ? checkpoint.state.rngState : rng.state
            header = [UInt64(checkpoint.state.iteration)] + words + [checkpoint.state.bestMetric.bitPattern]
            Log.info("resumed from \(checkpoint.path) at iteration \(checkpoint.state.iteration)")
        }
        header.withUnsafeMutableBytes { world.broadcast($0.baseAddress!, bytes: $0.count, name: "resume header") }
        guard let restored = SeededRNG(state: Array(header[1...6])) else {
            throw DistributedError(rank: world.rank, message: "the checkpoint's RNG state is invalid")
        }
        rng = restored
        bestMetric = Double(bitPattern: header[7])
        world.broadcastState(of: model)
        for p in parameters {   // momentum buffers: rank 0's, everywhere
            let buf = sgd.momentumBuffer(p)?.copy() ?? Tensor.zeros(p.shape)
            world.broadcast(UnsafeMutableRawPointer(buf.data), bytes: buf.count * 4, name: "broadcast of momentum")
            sgd.setMomentumBuffer(buf, for: p)
        }
        return Int(header[0])
    }

    /// Stops the run, as PyTorch does on the first forward, when a BatchNorm layer normalised
    /// over ≤ 1 value per channel (one image per rank through a 1×1 pooled branch): its
    /// statistics are undefined and the running variance would turn non-finite iterations later.
    /// Every rank sees the same shapes, so every rank stops with the same message.
    private func checkBatchNormStatistics(_ model: Module) throws {
        guard let first = BatchNorm2d.degenerate(in: model).first else { return }
        let perRank = globalBatch / max(world.size, 1)
        let sync = config.bool("MODEL.SYNC_BN")
        var message = "BatchNorm layer \(first.name) normalised over \(first.valuesPerChannel) value per channel in training "
            + "(input \(first.inputShape)): SOLVER.IMS_PER_BATCH \(globalBatch) over \(world.size) rank(s) gives \(perRank) image(s) per rank"
        message += sync
            ? ", and even synchronized over all ranks that is too few; use a larger SOLVER.IMS_PER_BATCH"
            : "; set MODEL.SYNC_BN True to compute the statistics over all ranks, or use fewer ranks or a larger SOLVER.IMS_PER_BATCH"
        throw DistributedError(rank: world.rank, message: message)
    }

    /// Averages the terms over the ranks for logging and checks them for NaN/Inf, in one small
    /// all-reduce (when there are several ranks), so every rank agrees. Returns whether the step
    /// must be skipped, and the averages; throws naming the iteration and the term when the run
    /// must stop.
    private func reduceTerms(_ terms: [LossTerm], iteration: Int, skip: Bool) throws -> (skip: Bool, averages: [Double]) {
        let values = terms.map { Double($0.value.item) }
        var packed = values.map { $0.isFinite ? $0 : 0 } + values.map { $0.isFinite ? 0 : 1 }
        if world.size > 1 { world.allreduceSum(&packed, name: "loss terms") }
        let averages = packed[..<terms.count].map { $0 / Double(world.size) }
        guard let bad = (0..<terms.count).first(where: { packed[terms.count + $0] > 0 }) else { return (false, averages) }
        let name = terms[bad].name
        if skip {
            Log.warning("non-finite \(name) at iteration \(iteration): step skipped on every rank")
            return (true, averages)
        }
        throw DistributedError(rank: world.rank, message: "non-finite \(name) (\(terms[bad].value.item) on rank \(world.rank) or another) at iteration \(iteration); the last good checkpoint is kept")
    }
}

/// The MPI world as a task's collectives.
extension Communicator: TaskCollectives {
    /// Number of ranks.
    public var worldSize: Int { size }
    /// In-place sum over the ranks.
    public func allreduceSum(_ values: inout [Double]) { allreduceSum(&values, name: "task all-reduce") }
    /// Every rank's bytes on rank 0.
    public func gatherToRoot(_ bytes: [UInt8]) throws -> [[UInt8]] { try gather(bytes, root: 0, name: "task gather") }
}
