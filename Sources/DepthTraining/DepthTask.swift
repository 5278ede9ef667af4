import Depth
import DepthData
import Foundation
import ImageCodecs
import PercepCore
import PercepNN
import PercepHDF5
import Perceptual
import Trainer
import Training

/// A config or data problem of the depth job, naming the key or file.
public struct DepthConfigError: Error, CustomStringConvertible {
    /// What is wrong, prefixed with the key or file.
    public let description: String
    init(_ key: String, _ problem: String) { description = "\(key): \(problem)" }
}

/// Monocular depth for the shared `Trainer` (../shared/specs/depth.md): VNL's network, WCE over
/// the log-depth bins + `LOSS.VNL.WEIGHT` · virtual-normal loss (+ λ·perceptual between the
/// predicted and the ground-truth depth when `LOSS.PERCEPTUAL.ENABLED`), and VNL's pooled metrics
/// on the test split through the NYU test pipeline.
///
/// Data: `DATASETS.ROOT/DATASETS.NYU.MAT` (the v7.3 labeled file) and `DATASETS.NYU.SPLITS`. Each
/// rank reads only the frames of its own batches and evaluation shard, one at a time when the step
/// needs them, on the training thread: holding NYU's 1449 frames would cost 3 GB per rank, and
/// libhdf5's serial build is not thread-safe, so a loader thread reading while rank 0 writes a
/// checkpoint would need a process-wide HDF5 lock. A 640×480 frame reads in milliseconds, against
/// steps of seconds. Start-up checks the files' datasets, shapes and splits; a frame with NaN or
/// negative depths is reported (file, dataset, index, pixel) by the step that reads it, ending the
/// job on every rank with the checkpoints so far kept.
public final class DepthTask: TrainingTask {
    /// The config.
    public let config: TrainingConfig
    /// The network.
    public let network: VNLDepthModel
    /// The perceptual loss on depth (1 input channel), if enabled.
    public let perceptual: PerceptualLoss?
    let bins: DepthBins
    let weights: [Float]
    /// The labeled file, read frame by frame.
    let frames: NYULabeledFile
    /// The labeled file's 0-based index of each training frame.
    let trainIndices: [Int]
    /// The labeled file's 0-based index of each test frame (names saved predictions).
    let testIndices: [Int]
    /// When set, `evaluate` writes `pred/<index>.png` and `gt/<index>.png` under it: 16-bit PNGs of
    /// round(metres · 1000) at the frame's size, the prediction clamped to [1, 65535], the index
    /// that of the labeled file (0-based, 4 digits), for `eval-depth --pred-dir/--gt-dir`; and
    /// `vis/<index>.png`, the frame, ground truth and prediction side by side in colour.
    public var predictionDirectory: String?
    /// The summed metrics of the last evaluation (every rank), for `eval-depth --json`.
    public private(set) var lastEvaluation: DepthMetricSums?
    let trainTransform: DepthTrainTransform
    let testTransform: DepthTestTransform
    let vnl: DepthLoss.VirtualNormalSettings
    let evalCrop: DepthCrop?
    private var collectives: TaskCollectives = SingleRank()
    private var plan: [Int: (epoch: Int, indices: [Int])] = [:]
    private var batchAt: (@Sendable (Int) -> (epoch: Int, indices: [Int]))?
    private var dataWait = 0.0

    /// Builds data, network and losses from `cfg`; every config or data problem surfaces here.
    public init(_ cfg: TrainingConfig) throws {
        config = cfg
        var spec = VNLModelSpec()
        spec.baseWidth = cfg.int("MODEL.DEPTH.BASE_WIDTH"); spec.blocks = cfg.ints("MODEL.DEPTH.BLOCKS")
        spec.lateralOut = cfg.ints("MODEL.DEPTH.LATERAL_OUT"); spec.fcnIn = cfg.ints("MODEL.DEPTH.FCN_DIM_IN")
        spec.fcnOut = cfg.ints("MODEL.DEPTH.FCN_DIM_OUT"); spec.asppChannels = cfg.int("MODEL.DEPTH.ASPP_CHANNELS")
        spec.asppDilations = cfg.ints("MODEL.DEPTH.ASPP_DILATIONS"); spec.bins = cfg.int("MODEL.DEPTH.BINS")
        if let problem = spec.problem { throw DepthConfigError("MODEL.DEPTH", problem) }
        let (lo, hi) = (cfg.double("MODEL.DEPTH.MIN"), cfg.double("MODEL.DEPTH.MAX"))
        guard lo < hi else { throw DepthConfigError("MODEL.DEPTH.MIN", "\(lo) must be below MODEL.DEPTH.MAX \(hi)") }
        bins = DepthBins(count: spec.bins, minDepth: lo, maxDepth: hi)
        weights = bins.crossEntropyWeights(coefficient: Float(cfg.double("LOSS.WCE.COEF")))

        var geometry = DepthGeometry()
        let raw = cfg.ints("INPUT.RAW_SIZE"), crop = cfg.ints("INPUT.CROP_SIZE")
        guard raw.count == 2, crop.count == 2, crop[0] == crop[1] else {
            throw DepthConfigError("INPUT.CROP_SIZE", "depth needs a square crop and INPUT.RAW_SIZE [H, W]")
        }
        geometry.rawHeight = raw[0]; geometry.rawWidth = raw[1]; geometry.crop = crop[0]
        geometry.trainSides = cfg.ints("INPUT.TRAIN_SQUARE_SIZES"); geometry.testSide = cfg.int("INPUT.TEST_SQUARE_SIZE")
        geometry.depthScale = Float(cfg.double("MODEL.DEPTH.SCALE"))
        if let problem = geometry.problem { throw DepthConfigError("INPUT", problem) }
        var transform = DepthTrainTransform(geometry: geometry, seed: UInt64(bitPattern: Int64(cfg.int("SEED"))))
        transform.flip = cfg.bool("INPUT.HFLIP_TRAIN")
        trainTransform = transform
        testTransform = DepthTestTransform(geometry: geometry)
        let c = cfg.ints("TEST.EVAL_CROP")
        if c.isEmpty { evalCrop = nil } else {
            guard c.count == 4, c[0] < c[1], c[2] < c[3] else { throw DepthConfigError("TEST.EVAL_CROP", "must be [r0, r1, c0, c1] with r0 < r1, c0 < c1, or []") }
            evalCrop = DepthCrop(rowStart: c[0], rowEnd: c[1], colStart: c[2], colEnd: c[3])
        }
        var v = DepthLoss.VirtualNormalSettings()
        let focal = cfg.doubles("DATASETS.NYU.FOCAL")
        guard focal.count == 2 else { throw DepthConfigError("DATASETS.NYU.FOCAL", "needs [fx, fy]") }
        v.focalX = Float(focal[0]); v.focalY = Float(focal[1])
        v.sampleRatio = Float(cfg.double("LOSS.VNL.SAMPLE_RATIO")); v.cosThreshold = Float(cfg.double("LOSS.VNL.COS_THRESH"))
        v.nearThreshold = Float(cfg.double("LOSS.VNL.NEAR_THRESH")); v.minZ = Float(cfg.double("LOSS.VNL.MIN_Z"))
        v.trim = Float(cfg.double("LOSS.VNL.TRIM"))
        vnl = v

        let root = cfg.string("DATASETS.ROOT")
        let matPath = (root as NSString).appendingPathComponent(cfg.string("DATASETS.NYU.MAT"))
        let file = try NYULabeledFile(path: matPath, depthSource: cfg.string("DATASETS.NYU.DEPTH_SOURCE"))
        guard file.height == geometry.rawHeight, file.width == geometry.rawWidth else {
            throw DepthConfigError(matPath, "frames are \(file.height)×\(file.width), INPUT.RAW_SIZE says \(raw)")
        }
        let splits = try NYUSplits(path: (root as NSString).appendingPathComponent(cfg.string("DATASETS.NYU.SPLITS")), imageCount: file.count)
        guard !splits.train.isEmpty else { throw DepthConfigError(matPath, "the training split is empty") }
        frames = file
        trainIndices = splits.train
        testIndices = splits.test

        var rng = SeededRNG(seed: UInt64(bitPattern: Int64(cfg.int("SEED"))), stream: "depth model")
        network = VNLDepthModel(spec, rng: &rng)
        perceptual = try makePerceptualLoss(cfg, inChannels: 1)
        if let perceptual {
            // Fail now, not at the first step, when the crop is too small for the loss network.
            let probe = Tensor.zeros([1, 1, geometry.crop, geometry.crop])
            try perceptual.check(prediction: probe, target: probe)
        }
    }

    /// The network.
    public var model: Module { network }
    /// Training frames.
    public var trainingSetSize: Int { trainIndices.count }
    /// Test frames.
    public var evaluationSetSize: Int { testIndices.count }
    /// Seconds the last step spent preparing its batch (reading and augmentation run inline).
    public var lastDataTime: Double { dataWait }
    /// Keeps the job's collectives for the cross-rank WCE normaliser.
    public func attach(_ collectives: TaskCollectives) { self.collectives = collectives }

    /// Remembers which samples each step takes.
    public func prepare(steps: Range<Int>, batchAt: @escaping @Sendable (Int) -> (epoch: Int, indices: [Int])) throws {
        self.batchAt = batchAt
    }

    /// WCE, the virtual-normal loss and the perceptual term of step `step` on this rank's batch.
    public func lossTerms(step: Int, rng: inout SeededRNG) throws -> [LossTerm] {
        guard let batchAt else { throw DepthConfigError("trainer", "no batch plan before step \(step)") }
        let t0 = Date()
        let batch = batchAt(step)
        let crop = trainTransform.geometry.crop, plane = crop * crop
        let samples = try batch.indices.map { trainTransform.apply(try frames.sample(trainIndices[$0]), epoch: batch.epoch, index: $0) }
        let images = Tensor(shape: [samples.count, 3, crop, crop], values: samples.flatMap(\.image))
        let (bin, clamped) = bins.binned(samples.flatMap(\.depth))
        dataWait = Date().timeIntervalSince(t0)

        let logits = network(images)
        // Σ over this rank's valid pixels ÷ the ranks' mean valid count: after the gradient
        // average this is the mean over the global batch at any world size.
        let localValid = Double(clamped.reduce(0) { $0 + ($1 > 0 ? 1 : 0) })
        var counts = [localValid]
        collectives.allreduceSum(&counts)
        let meanValid = max(1, counts[0] / Double(collectives.worldSize))
        // weightedCrossEntropy divides by this rank's own valid count; rescale to the mean.
        let normaliser = Float(max(1, localValid) / meanValid)
        var terms = [LossTerm("loss_wce", DepthLoss.weightedCrossEntropy(logits, bins: bin, clampedDepth: clamped, weights: weights)
                                            * (normaliser * Float(config.double("LOSS.WCE.WEIGHT"))))]
        let depth = logits.binsToDepth(bins)
        let vnlWeight = Float(config.double("LOSS.VNL.WEIGHT"))
        if vnlWeight != 0 {
            let triplets = DepthLoss.sampleTriplets(count: Int(vnl.sampleRatio * Float(plane)), pixels: plane, rng: &rng)
            terms.append(LossTerm("loss_vnl", DepthLoss.virtualNormal(depth, groundTruth: clamped, triplets: triplets, settings: vnl,
                                                                      pool: poolAcrossRanks).loss * vnlWeight))
        }
        if let perceptual {
            terms.append(LossTerm("loss_perceptual", perceptualTerm(perceptual, depth: depth, clamped: clamped)))
        }
        return terms
    }

    /// Every rank's `values` concatenated in rank order, this rank's offset in them and the world
    /// size: VNL trims over the whole batch. Two sums of small vectors (the counts, then the
    /// values in each rank's own slot; adding zeros is exact).
    func poolAcrossRanks(_ values: [Double]) -> (allRanks: [Double], offset: Int, worldSize: Int) {
        let ranks = collectives.worldSize
        guard ranks > 1 else { return (values, 0, 1) }
        var counts = [Double](repeating: 0, count: ranks)
        counts[collectives.rank] = Double(values.count)
        collectives.allreduceSum(&counts)
        let sizes = counts.map { Int($0) }
        let offset = sizes.prefix(collectives.rank).reduce(0, +)
        var pooled = [Double](repeating: 0, count: sizes.reduce(0, +))
        for (i, v) in values.enumerated() { pooled[offset + i] = v }
        collectives.allreduceSum(&pooled)
        return (pooled, offset, ranks)
    }

    /// λ·perceptual between the predicted depth [N, 1, H, W] and the clamped ground truth (padding
    /// −1), with the invalid pixels zeroed on both sides when `LOSS.PERCEPTUAL.INVALID` is `mask`.
    func perceptualTerm(_ perceptual: PerceptualLoss, depth: Tensor, clamped: [Float]) -> Tensor {
        let target = Tensor(shape: depth.shape, values: clamped)
        guard config.string("LOSS.PERCEPTUAL.INVALID") == "mask" else { return perceptual.weighted(depth, target) }
        let mask = Tensor(shape: depth.shape, values: clamped.map { $0 > 0 ? 1 : 0 })
        return perceptual.weighted(depth * mask, target * mask)
    }

    /// One training step written out for the parity check against `tools/pytorch/depth_twin.py
    /// check`: the first `SOLVER.IMS_PER_BATCH` training frames at epoch 0, `logits`
    /// [N, bins, H, W], `gt` [N, 1, H, W] (clamped training units, padding −1), `triplets` [n, 3]
    /// (int32 flat indices row·W + col, shared by the batch), `vnl_keep` [N, n] (uint8: the
    /// filter), `vnl_used` [N, n] (uint8: kept and not trimmed), `pred_depth` [N, 1, H, W] and
    /// `grad_depth_vnl` (d VNL / d depth, unweighted),
    /// `grad_logits` = d(WCE_weight·WCE + VNL_weight·VNL)/d logits, and attributes
    /// `focal_length`, `loss_wce`, `loss_vnl`, `loss_percep` (when on), `depth_min`, `depth_max`,
    /// `vnl_weight`, `wce_coef`. Returns the losses.
    public func dumpStep(to path: String) throws -> [(String, Double)] {
        let count = min(config.int("SOLVER.IMS_PER_BATCH"), trainIndices.count)
        let crop = trainTransform.geometry.crop, plane = crop * crop
        let samples = try (0..<count).map { trainTransform.apply(try frames.sample(trainIndices[$0]), epoch: 0, index: $0) }
        let images = Tensor(shape: [count, 3, crop, crop], values: samples.flatMap(\.image))
        let (bin, clamped) = bins.binned(samples.flatMap(\.depth))
        let logits = Tape.withoutGrad { network(images) }.detached()
        logits.requiresGrad = true
        let wceWeight = Float(config.double("LOSS.WCE.WEIGHT")), vnlWeight = Float(config.double("LOSS.VNL.WEIGHT"))
        let wce = DepthLoss.weightedCrossEntropy(logits, bins: bin, clampedDepth: clamped, weights: weights)
        var rng = SeededRNG(seed: UInt64(bitPattern: Int64(config.int("SEED"))), stream: "depth dump triplets")
        let triplets = DepthLoss.sampleTriplets(count: Int(vnl.sampleRatio * Float(plane)), pixels: plane, rng: &rng)
        let depth = logits.binsToDepth(bins)
        // The depth as a leaf of its own too, so the dump can hold d VNL / d depth.
        let depthLeaf = depth.detached()
        depthLeaf.requiresGrad = true
        let (vnlLoss, kept, used) = DepthLoss.virtualNormal(depth, groundTruth: clamped, triplets: triplets, settings: vnl)
        let vnlOnLeaf = Tape.isolated { () -> Tensor? in
            let l = DepthLoss.virtualNormal(depthLeaf, groundTruth: clamped, triplets: triplets, settings: vnl).loss
            l.backward()
            return depthLeaf.grad
        }
        var losses: [(String, Double)] = [("loss_wce", Double(wce.values[0])), ("loss_vnl", Double(vnlLoss.values[0]))]
        if let perceptual {
            let value = Tape.withoutGrad { perceptualTerm(perceptual, depth: depth.detached(), clamped: clamped).values[0] }
            losses.append(("loss_percep", Double(value)))
        }
        (wce * wceWeight + vnlLoss * vnlWeight).backward()
        let file = try HDF5File(creating: path)
        try file.write(logits.detached(), at: "/logits")
        try file.write(Tensor(shape: [count, 1, crop, crop], values: clamped), at: "/gt")
        try file.write(int32: triplets.flatMap { [$0.0, $0.1, $0.2] }, shape: [triplets.count, 3], at: "/triplets")
        try file.write(uint8: kept.flatMap { $0.map { $0 ? 1 : 0 } }, shape: [count, triplets.count], at: "/vnl_keep")
        try file.write(uint8: used.flatMap { $0.map { $0 ? 1 : 0 } }, shape: [count, triplets.count], at: "/vnl_used")
        guard let grad = logits.grad else { throw DepthConfigError("dump", "no gradient reached the logits") }
        try file.write(grad, at: "/grad_logits")
        if let g = vnlOnLeaf {
            try file.write(depthLeaf.detached(), at: "/pred_depth")
            try file.write(g, at: "/grad_depth_vnl")
        }
        for (name, value) in losses + [("focal_length", Double(vnl.focalX)), ("depth_min", Double(bins.minDepth)), ("depth_max", Double(bins.maxDepth)),
                                       ("vnl_weight", Double(vnlWeight)), ("wce_weight", Double(wceWeight)), ("wce_coef", config.double("LOSS.WCE.COEF"))] {
            try file.setAttribute(name, .double(value))
        }
        try file.setAttribute("bins", .int(Int64(bins.count)))
        try file.close()
        return losses
    }

    /// The test pipeline on `indices`: VNL's pooled metric sums in metres (additive across ranks).
    public func evaluate(indices: [Int], progress: (Int) -> Void) throws -> [Double] {
        var sums = DepthMetricSums()
        let g = testTransform.geometry
        for (k, i) in indices.enumerated() {
            let frame = try frames.sample(testIndices[i])
            let x = Tensor(shape: [1, 3, g.crop, g.crop], values: testTransform.input(frame))
            let metres = testTransform.metres(network(x).binsToDepth(bins).values)
            sums.add(prediction: metres, truth: frame.depth, height: g.rawHeight, width: g.rawWidth, crop: evalCrop)
            if let predictionDirectory {
                let name = String(format: "%04d.png", testIndices[i])
                func millimetres(_ v: [Float], floor: Float) -> [UInt16] { v.map { UInt16(max(floor, min(65535, ($0 * 1000).rounded()))) } }
                try DepthPredictionFolder.writeDepthPNG(millimetres(metres, floor: 1), height: g.rawHeight, width: g.rawWidth,
                                                        to: predictionDirectory + "/pred/" + name)
                try DepthPredictionFolder.writeDepthPNG(millimetres(frame.depth, floor: 0), height: g.rawHeight, width: g.rawWidth,
                                                        to: predictionDirectory + "/gt/" + name)
                let picture = DepthVisual.sideBySide(rgb: frame.rgb, truth: frame.depth, prediction: metres, height: g.rawHeight, width: g.rawWidth)
                try FileManager.default.createDirectory(atPath: predictionDirectory + "/vis", withIntermediateDirectories: true)
                try Data(try PNG.encode(picture)).write(to: URL(fileURLWithPath: predictionDirectory + "/vis/" + name))
            }
            progress(k + 1)
        }
        return sums.flat
    }

    /// abs_rel (the primary metric, lower is better), the other VNL metrics.
    public func summarize(_ sums: [Double]) -> EvaluationResult {
        let total = DepthMetricSums(flat: sums)
        lastEvaluation = total
        let values = total.values
        return EvaluationResult(metrics: Array(zip(DepthMetricSums.names, values)), primary: "abs_rel", higherIsBetter: false)
    }
}
