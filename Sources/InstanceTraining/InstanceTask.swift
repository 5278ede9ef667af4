import Checkpoint
import Distributed
import COCO
import CondInst
import DataLoading
import Foundation
import InstanceData
import InstanceModels
import PercepCore
import PercepNN
import Trainer
import Training

/// Instance segmentation with CondInst for the shared `Trainer`: AdelaiDet's FCOS and mask losses
/// per group of SOLVER.IMS_PER_GROUP images with global normalisers, the optional perceptual mask
/// term, and COCO box and mask AP of the test split (detections gathered to rank 0).
public final class InstanceTask: TrainingTask {
    /// The config.
    public let config: TrainingConfig
    /// The network.
    public let network: CondInstModel
    /// The losses.
    public let criterion: CondInstCriterion
    /// Test-time settings.
    public let inference: InferenceSettings
    /// Training and test data.
    public let trainSet: InstanceDataset, testSet: InstanceDataset
    /// Training and test transforms.
    public let trainTransform: InstanceTransform, testTransform: InstanceTransform
    /// Images per group and groups per global batch.
    public let imagesPerGroup: Int, groupsInBatch: Int
    /// Rank 0: every detection of the last evaluation (eval-inst --results-dir writes them).
    public private(set) var lastDetections: [COCODetection] = []
    /// The COCO evaluations of the last `summarize(records:)` (bbox, segm).
    public private(set) var lastEvaluations: [IoUType: COCOEvaluation] = [:]

    private var collectives: TaskCollectives = SingleRank()
    private var loader: PrefetchLoader<InstanceSample>?
    private var stepIndices: [Int: [Int]] = [:]
    private var dataWait = 0.0

    /// Builds data sets, network and losses from `cfg`; config and data problems surface here.
    public init(_ cfg: TrainingConfig, training: Bool = true) throws {
        config = cfg
        let spec = try InstanceRecipe.spec(cfg)
        trainSet = try InstanceRecipe.dataset(cfg, training: true)
        testSet = try InstanceRecipe.dataset(cfg, training: false)
        guard trainSet.classCount == spec.numClasses else {
            throw InstanceConfigError("MODEL.FCOS.NUM_CLASSES", "\(spec.numClasses), but \(trainSet.annotationsPath) has \(trainSet.classCount) categories")
        }
        criterion = CondInstCriterion(spec: spec, settings: try InstanceRecipe.lossSettings(cfg))
        inference = InstanceRecipe.inferenceSettings(cfg)
        trainTransform = try InstanceRecipe.transform(cfg, training: true)
        testTransform = try InstanceRecipe.transform(cfg, training: false)
        guard !cfg.bool("MODEL.SYNC_BN") else {
            throw InstanceConfigError("MODEL.SYNC_BN", "CondInst's BatchNorm statistics are per group of SOLVER.IMS_PER_GROUP images (AdelaiDet's per-GPU BN); synchronized BN does not apply, set it false")
        }
        imagesPerGroup = cfg.int("SOLVER.IMS_PER_GROUP")
        let batch = cfg.int("SOLVER.IMS_PER_BATCH")
        guard imagesPerGroup >= 1, batch % imagesPerGroup == 0 else {
            throw InstanceConfigError("SOLVER.IMS_PER_GROUP", "\(imagesPerGroup) must divide SOLVER.IMS_PER_BATCH \(batch)")
        }
        groupsInBatch = batch / imagesPerGroup
        var rng = SeededRNG(seed: UInt64(bitPattern: Int64(cfg.int("SEED"))), stream: "condinst init")
        network = CondInstModel(spec, rng: &rng)
        // Initial weights (an ImageNet backbone under AdelaiDet's names, a CondInst checkpoint),
        // weights-only and non-strict: a backbone file lacks the heads.
        let weights = cfg.string("MODEL.WEIGHTS")
        if !weights.isEmpty {
            do { Log.info("\(try CheckpointLoader.loadWeights(from: weights, into: network, remap: .condInst, strict: false))") } catch {
                throw InstanceConfigError("MODEL.WEIGHTS", "\(error)")
            }
        }
        if let loss = criterion.settings.perceptual {
            // Fail now, not at the first step, when the stride-4 masks are too small for the loss network.
            let side = InstanceBatching.padded(trainTransform.shortSides.min()!) / criterion.settings.maskOutStride
            let probe = Tensor.zeros([1, 1, side, side])
            try loss.check(prediction: probe, target: probe)
        }
    }

    /// The network.
    public var model: Module { network }
    /// Training images (after the empty-annotation filter).
    public var trainingSetSize: Int { trainSet.count }
    /// Test images.
    public var evaluationSetSize: Int { testSet.count }
    /// Seconds the last step waited for the loader.
    public var lastDataTime: Double { dataWait }
    /// Aspect-ratio buckets when DATALOADER.ASPECT_RATIO_GROUPING.
    public var samplingGroups: [Int]? { config.bool("DATALOADER.ASPECT_RATIO_GROUPING") ? trainSet.aspectGroups : nil }

    /// Keeps the job's collectives for the global normalisers.
    public func attach(_ collectives: TaskCollectives) { self.collectives = collectives }

    /// Starts the loader on this rank's share of `steps`.
    public func prepare(steps: Range<Int>, batchAt: @escaping @Sendable (Int) -> (epoch: Int, indices: [Int])) throws {
        let perRank = config.int("SOLVER.IMS_PER_BATCH") / collectives.worldSize
        guard perRank % imagesPerGroup == 0 else {
            throw InstanceConfigError("SOLVER.IMS_PER_GROUP", "each of the \(collectives.worldSize) ranks holds \(perRank) image(s), "
                                      + "not a multiple of the group of \(imagesPerGroup): use SOLVER.IMS_PER_BATCH \(imagesPerGroup * collectives.worldSize) "
                                      + "or more, fewer ranks, or a smaller SOLVER.IMS_PER_GROUP")
        }
        let plan = (0..<steps.upperBound).map { s -> LoaderStep in
            if s < steps.lowerBound { return LoaderStep(epoch: 0, indices: []) }
            let b = batchAt(s)
            return LoaderStep(epoch: b.epoch, indices: b.indices)
        }
        let (set, transform) = (trainSet, trainTransform)
        loader = PrefetchLoader(name: "inst-loader", steps: plan, startStep: steps.lowerBound, threads: max(1, config.int("DATALOADER.NUM_WORKERS")),
                                prefetch: max(1, config.int("DATALOADER.PREFETCH")), maxBrokenFraction: config.double("DATALOADER.MAX_BROKEN_FRACTION")) { index, epoch in
            try transform.apply(set, index: index, epoch: epoch)
        }
    }

    /// The CondInst losses of step `step` on this rank's groups.
    public func lossTerms(step: Int, rng: inout SeededRNG) throws -> [LossTerm] {
        let stepSeed = rng.next()   // one draw per step on every rank: resume and world size keep it
        let t0 = Date()
        guard let loader, let loaded = try loader.next() else { throw InstanceConfigError("loader", "no batch for step \(step)") }
        dataWait = Date().timeIntervalSince(t0)
        guard loaded.step == step else { throw InstanceConfigError("loader", "delivered step \(loaded.step) for step \(step)") }
        guard !loaded.samples.isEmpty else {
            throw InstanceConfigError(trainSet.root, "every image of this rank's batch at step \(step) is broken (\(loaded.broken.map(\.message)))")
        }
        // Local position j of the step is global position rank + j·W.
        let order = loader.steps[step].indices
        var groups: [Int: [InstanceSample]] = [:], cursor = 0
        for (index, sample) in loaded.samples {
            // Samples keep the step's order (broken ones left out): walking forward gives each
            // copy of an index that appears twice in a step its own position.
            guard let j = order[cursor...].firstIndex(of: index) else {
                throw InstanceConfigError("loader", "sample \(index) is not in step \(step) after position \(cursor)")
            }
            cursor = j + 1
            groups[InstanceBatching.group(ofPosition: collectives.rank + j * collectives.worldSize, groupsInBatch: groupsInBatch), default: []].append(sample)
        }
        let inputs = groups.keys.sorted().map { id -> (id: Int, images: Tensor, truth: [InstanceGroundTruth]) in
            let (images, truth) = InstanceBatching.input(groups[id]!)
            return (id, images, truth)
        }
        let collectives = self.collectives
        let terms = InstanceBatching.terms(model: network, criterion: criterion, groups: inputs, groupsInBatch: groupsInBatch,
                                           worldSize: collectives.worldSize, trackStatistics: { $0 == 0 },
                                           rng: { SeededRNG(seed: stepSeed, stream: "condinst group \($0)") },
                                           reduce: { collectives.allreduceSum(&$0) })
        return terms.map { LossTerm($0.name, $0.value) }
    }

    /// Detections of the test images `indices` (this rank's shard), as records for rank 0.
    public func evaluateShard(indices: [Int], progress: (Int) -> Void) throws -> EvaluationShard {
        var detections: [COCODetection] = []
        for (k, index) in indices.enumerated() {
            detections += try predict(index)
            progress(k + 1)
        }
        return .records(DetectionRecords.encode(detections))
    }

    /// CondInst's detections (boxes and masks on the original image) of test image `index`.
    public func predict(_ index: Int) throws -> [COCODetection] {
        let sample = try testTransform.apply(testSet, index: index, epoch: 0, targets: false)
        let (images, _) = InstanceBatching.input([sample])
        let out = network(images)
        let found = CondInstInference.detect(out, image: 0, strides: criterion.spec.strides, settings: inference)
        guard !found.isEmpty else { return [] }
        let masks = CondInstInference.maskProbabilities(network, out, image: 0, detections: found, maskOutStride: criterion.settings.maskOutStride)
        let post = CondInstInference.postprocess(boxes: found.flatMap(\.box), masks: masks, padded: (images.shape[2], images.shape[3]),
                                                 resized: (sample.height, sample.width), original: (sample.originalHeight, sample.originalWidth),
                                                 threshold: inference.maskThreshold)
        return post.keep.enumerated().map { k, i in
            let b = post.boxes[(4 * k)..<(4 * k + 4)].map(Double.init)
            let box = BoundingBox(x: b[0], y: b[1], width: b[2] - b[0], height: b[3] - b[1])
            let rle = RLE(encodingRowMajor: post.masks[k], height: sample.originalHeight, width: sample.originalWidth)
            return COCODetection(imageID: sample.imageID, categoryIndex: found[i].label, score: Double(found[i].score), bbox: box, mask: rle)
        }
    }

    /// Rank 0: COCO box and mask AP of every rank's detections.
    public func summarize(records: [[UInt8]]) throws -> EvaluationResult {
        let detections = try records.flatMap { try DetectionRecords.decode($0) }
        lastDetections = detections
        var metrics: [(name: String, value: Double)] = [], report: [String] = []
        lastEvaluations = [:]
        for type in [IoUType.bbox, .segm] {
            let evaluation = try Self.evaluate(detections, type: type, groundTruth: testSet.coco)
            lastEvaluations[type] = evaluation
            let names = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
            // In percent, as detectron2 reports them; −1 (no ground truth of that size) is NaN.
            for (name, value) in zip(names, evaluation.stats) { metrics.append(("\(type.rawValue)/\(name)", value < 0 ? .nan : 100 * value)) }
            report.append("Evaluation results for \(type.rawValue):\n" + evaluation.summaryLines.joined(separator: "\n"))
            let perCategory = zip(testSet.coco.categories, evaluation.perCategoryAP).map { String(format: "%@: %.3f", $0.name, 100 * $1) }
            report.append("Per-category \(type.rawValue) AP: " + perCategory.joined(separator: "  "))
        }
        return EvaluationResult(metrics: metrics, primary: "segm/AP", report: report.joined(separator: "\n"))
    }

    /// pycocotools' evaluation of `detections` as box results (without masks) or mask results
    /// (without boxes, so that areas are mask areas, as detectron2's COCOEvaluator does).
    public static func evaluate(_ detections: [COCODetection], type: IoUType, groundTruth: COCODataset) throws -> COCOEvaluation {
        let results = try COCOResults.load(jsonData: try resultsJSON(detections, type: type, dataset: groundTruth), groundTruth: groundTruth)
        return try COCOEvaluator(groundTruth: groundTruth, results: results, iouType: type).evaluate()
    }

    /// The COCO results JSON of `detections` for one IoU type (boxes only, or masks only).
    public static func resultsJSON(_ detections: [COCODetection], type: IoUType, dataset: COCODataset) throws -> Data {
        let stripped = detections.map { d -> COCODetection in
            var e = d
            if type == .bbox { e.mask = nil } else { e.bbox = nil }
            return e
        }
        return try COCOResults.jsonData(stripped, dataset: dataset)
    }

    /// Stops the loader threads.
    public func finish() { loader?.close() }
}
