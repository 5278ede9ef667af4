import Foundation
import ImageCodecs
import PercepCore
import PercepNN
import Perceptual
import SegmentationData
import SegmentationModels
import Trainer
import Training

/// Semantic segmentation for the shared `Trainer`: CE (+ 0.4·auxiliary CE) on logits upsampled
/// to the crop, plus λ·perceptual(softmax(student), softmax(teacher)) — or against the one-hot
/// ground truth (`LOSS.PERCEPTUAL.TARGET: ground_truth`) — and mmseg's mIoU on the test split.
public final class SegmentationTask: TrainingTask {
    /// The config the task was built from.
    public let config: TrainingConfig
    /// The student network.
    public let student: SegmentationModel
    /// The frozen teacher, if any.
    public let teacher: SegmentationModel?
    /// The perceptual loss, if enabled.
    public let perceptual: PerceptualLoss?
    /// Training and test data.
    public let trainSet: SegmentationDataset, testSet: SegmentationDataset
    /// Number of classes K.
    public let classes: Int

    private let transform: SegmentationTrainTransform
    private let evalTransform: SegmentationEvalTransform
    private let inferenceMode: SegmentationInference.Mode
    private var loader: SegmentationLoader?
    /// When set, `evaluate` writes each prediction as a palette PNG named after its annotation
    /// (`<stem>.png`): its pixel values are the class indices (`eval-seg --pred-dir` reads them),
    /// and viewers show them in the VOC colours.
    public var predictionDirectory: String?
    /// The job's collectives (the trainer attaches its world): the cross-entropy is normalised by
    /// the batch's labelled pixels over all ranks, not per rank, so the same global batch gives
    /// the same gradient at any world size.
    private var collectives: TaskCollectives = SingleRank()
    /// The summed IoU areas of the last evaluation (every rank), for per-class reports.
    public private(set) var lastEvaluation: IoUAccumulator?
    private var dataWait = 0.0

    /// Builds datasets, networks and the loss from `cfg`; every config or data problem surfaces
    /// here, before training starts.
    public init(_ cfg: TrainingConfig) throws {
        config = cfg
        trainSet = try SegmentationRecipe.dataset(cfg, training: true)
        testSet = try SegmentationRecipe.dataset(cfg, training: false)
        classes = try SegmentationRecipe.classes(cfg, dataset: trainSet)
        transform = try SegmentationRecipe.trainTransform(cfg)
        evalTransform = try SegmentationRecipe.evalTransform(cfg)
        inferenceMode = try SegmentationRecipe.inference(cfg)
        student = try SegmentationRecipe.student(cfg, classes: classes)
        teacher = try SegmentationRecipe.teacher(cfg, classes: classes)
        perceptual = try makePerceptualLoss(cfg, inChannels: classes)
        if let perceptual {
            if cfg.string("LOSS.PERCEPTUAL.TARGET") == "teacher" && teacher == nil {
                throw SegmentationConfigError("LOSS.PERCEPTUAL.TARGET", "'teacher' needs MODEL.TEACHER.NAME and MODEL.TEACHER.WEIGHTS (or use ground_truth)")
            }
            // Fail now, not at the first step, when the crop is too small for the loss network.
            let probe = Tensor.zeros([1, classes, transform.cropHeight, transform.cropWidth])
            try perceptual.check(prediction: probe, target: probe)
        }
    }

    /// The teacher's weights (FNV-1a of its state): ranks loading different teacher files would
    /// train against different targets.
    public var replicaFacts: [(name: String, value: Int64)] {
        teacher.map { [("teacher weights", Int64(bitPattern: PerceptualLoss.fingerprint(of: $0, adapter: nil)))] } ?? []
    }

    /// Keeps the job's collectives for the cross-rank normaliser.
    public func attach(_ collectives: TaskCollectives) { self.collectives = collectives }

    /// The student.
    public var model: Module { student }
    /// Training images.
    public var trainingSetSize: Int { trainSet.count }
    /// Test images.
    public var evaluationSetSize: Int { testSet.count }
    /// Seconds the last step waited for the loader.
    public var lastDataTime: Double { dataWait }

    /// Starts the loader threads on this rank's batches of `steps`.
    public func prepare(steps: Range<Int>, batchAt: @escaping @Sendable (Int) -> (epoch: Int, indices: [Int])) throws {
        let plan = (0..<steps.upperBound).map { s -> SegmentationLoaderStep in
            // Steps before the start are never loaded; their entries only keep step numbers aligned.
            if s < steps.lowerBound { return SegmentationLoaderStep(epoch: 0, indices: []) }
            let b = batchAt(s)
            return SegmentationLoaderStep(epoch: b.epoch, indices: b.indices)
        }
        loader = SegmentationLoader(dataset: trainSet, transform: transform, steps: plan, startStep: steps.lowerBound,
                                    threads: max(1, config.int("DATALOADER.NUM_WORKERS")), prefetch: max(1, config.int("DATALOADER.PREFETCH")),
                                    maxBrokenFraction: config.double("DATALOADER.MAX_BROKEN_FRACTION"))
    }

    /// CE, auxiliary CE and the perceptual term of step `step`.
    public func lossTerms(step: Int, rng: inout SeededRNG) throws -> [LossTerm] {
        let t0 = Date()
        guard let loader, let batch = try loader.next() else {
            throw SegmentationConfigError("loader", "no batch for step \(step)")
        }
        dataWait = Date().timeIntervalSince(t0)
        guard batch.step == step else { throw SegmentationConfigError("loader", "delivered step \(batch.step) for step \(step)") }
        guard !batch.indices.isEmpty else {
            throw SegmentationConfigError(trainSet.root, "every sample of this rank's batch at step \(step) is broken (\(batch.skipped))")
        }
        let x = batch.images, size = (x.shape[2], x.shape[3])
        // Dropout masks keyed by (seed, step, dataset index): the same whichever rank holds the
        // sample, so the world-size equivalence and exact resume hold with dropout too.
        let seed = UInt64(bitPattern: Int64(config.int("SEED")))
        let keys = batch.indices.map { index -> UInt64 in
            var rng = SeededRNG(seed: seed, stream: "dropout \(step) \(index)")
            return rng.next()
        }
        let out = Dropout2d.withSampleKeys(keys) { student(x) }
        let logits = upsampleLogits(out.logits, to: size)
        let ignore = Int32(SegmentationDataset.ignoreIndex)
        // Σ CE over this rank's labelled pixels ÷ the ranks' mean labelled-pixel count: after the
        // gradient average over ranks this is the mean over the whole global batch (DDP's
        // per-rank mean would weight ranks with fewer labelled pixels more).
        let labelled = Double(batch.labels.reduce(0) { $0 + ($1 == ignore ? 0 : 1) })
        var counts = [labelled]
        collectives.allreduceSum(&counts)
        let perPixel = Float(1 / max(counts[0] / Double(collectives.worldSize), 1))
        func crossEntropy(_ l: Tensor) -> Tensor {
            Loss.crossEntropy(l, target: batch.labels, ignoreIndex: ignore, reduction: .sum) * perPixel
        }
        // The perceptual term is recorded first: its forward's temporaries (the softmax, the loss
        // network's first activations) then come before the CE's saved log-softmax, and its
        // backward (the tape runs last-recorded first) after the CE's, adding into a logits
        // gradient that exists by then. That keeps the step's peak memory near the CE-only step's
        // (docs/benchmarks.md, PSPNet-R18 + VGG16).
        var perceptualTerm: LossTerm?
        if let perceptual {
            let target: Tensor
            if let teacher {
                // Soft labels made in place: no second tensor of the prediction's size.
                target = Tape.withoutGrad { upsampleLogits(teacher(x).logits, to: size) }
                Tensor.softmaxRaw(target.data, target.data, outer: target.shape[0], n: target.shape[1], inner: size.0 * size.1)
            } else {
                target = oneHot(batch.labels, over: Tape.withoutGrad { logits.softmax(axis: 1) })
            }
            perceptualTerm = LossTerm("loss_perceptual", perceptual.weighted(softmaxOf: logits, target))
        }
        var terms = [LossTerm("loss_ce", crossEntropy(logits))]
        if let aux = out.auxLogits {
            terms.append(LossTerm("loss_aux", crossEntropy(upsampleLogits(aux, to: size)) * Float(config.double("MODEL.AUX_WEIGHT"))))
        }
        if let perceptualTerm { terms.append(perceptualTerm) }
        return terms
    }

    /// One-hot ground truth [N, K, H, W], written over `probabilities` (the student's, detached):
    /// ignored pixels keep them, so they pull the prediction nowhere.
    private func oneHot(_ labels: [Int32], over probabilities: Tensor) -> Tensor {
        let k = probabilities.shape[1], plane = probabilities.shape[2] * probabilities.shape[3]
        let p = probabilities.data
        for (i, label) in labels.enumerated() where Int(label) < k && label >= 0 {
            let n = i / plane, pixel = i % plane
            for c in 0..<k { p[(n * k + c) * plane + pixel] = c == Int(label) ? 1 : 0 }
        }
        return probabilities
    }

    /// mmseg's IoU sums (intersection, predicted and label area per class) over `indices` of the
    /// test split, as doubles for the all-reduce (exact: counts stay far below 2^53).
    public func evaluate(indices: [Int], progress: (Int) -> Void) throws -> [Double] {
        var sums = IoUAccumulator(numClasses: classes)
        let inference = SegmentationInference(model: student, mode: inferenceMode)
        for (k, i) in indices.enumerated() {
            let sample = evalTransform.apply(try testSet.load(i))
            let prediction = inference.predict(sample)
            sums.add(prediction: prediction, label: sample.labels)
            if let predictionDirectory { try savePrediction(prediction, sample, of: i, in: predictionDirectory) }
            progress(k + 1)
        }
        return sums.flat.map(Double.init)
    }

    /// mIoU, mAcc, aAcc, mmseg's per-class table, and each class's IoU as a detail
    /// (`IoU/<class name>`; NaN, written as null, for a class absent from prediction and labels).
    public func summarize(_ sums: [Double]) -> EvaluationResult {
        let sums = IoUAccumulator(numClasses: classes, flat: sums.map { Int64($0) })
        lastEvaluation = sums
        let result = sums.result
        let names = trainSet.classNames
        let perClass = result.iou.enumerated().map { c, iou in (name: "IoU/" + (c < names.count ? names[c] : "\(c)"), value: iou) }
        return EvaluationResult(metrics: [("mIoU", result.mIoU), ("mAcc", result.mAcc), ("aAcc", result.aAcc)],
                                primary: "mIoU", report: sums.table(classNames: names), details: perClass)
    }

    private func savePrediction(_ prediction: [Int32], _ sample: TransformedSample, of i: Int, in directory: String) throws {
        let stem = ((testSet.files[i].annotation as NSString).lastPathComponent as NSString).deletingPathExtension
        let path = (directory as NSString).appendingPathComponent(stem + ".png")
        let image = try GreyImage(height: sample.labelHeight, width: sample.labelWidth, pixels: prediction.map { UInt8($0) })
        guard FileManager.default.createFile(atPath: path, contents: Data(try PNG.encode(image, palette: PNG.vocPalette))) else {
            throw SegmentationConfigError(path, "cannot write the prediction")
        }
    }

    /// Stops the loader threads.
    public func finish() { loader?.close() }
}
