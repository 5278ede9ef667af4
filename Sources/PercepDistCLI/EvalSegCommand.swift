import ArgumentParser
import Foundation
import Checkpoint
import Distributed
import SegmentationData
import SegmentationTraining
import Trainer
import Training

/// `percep-dist eval-seg`: mmsegmentation's IoUMetric over a data set, either of prediction
/// PNGs already on disk (`--pred-dir/--gt-dir`) or of a model (`--config/--checkpoint`, which runs
/// inference itself, sharded across ranks under mpirun).
struct EvalSeg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-seg",
        abstract: "Semantic-segmentation mIoU / aAcc exactly as mmsegmentation's IoUMetric.")

    @OptionGroup(title: "Prediction folder") var folders: PredictionFolderOptions
    @OptionGroup(title: "Model") var modelOptions: ModelEvaluationOptions
    @Option(name: .customLong("num-classes"), help: "Number of classes C (predictions are 0…C−1, 255 is ignored); prediction-folder mode.")
    var numClasses: Int?
    @Flag(name: .customLong("reduce-zero-label"), help: "Map annotations 0 → 255 (ignored) and v → v−1 first (ADE20K); prediction-folder mode.")
    var reduceZeroLabel = false
    @Flag(help: "Print {\"mIoU\", \"mAcc\", \"aAcc\", \"IoU\": [...], \"Acc\": [...]} as fractions, NaN as null.") var json = false

    func validate() throws {
        switch (folders.predDir != nil || folders.gtDir != nil, modelOptions.config != nil || modelOptions.checkpoint != nil) {
        case (true, true): throw ValidationError("give either --pred-dir/--gt-dir or --config/--checkpoint, not both")
        case (false, false): throw ValidationError("give --pred-dir and --gt-dir (prediction PNGs), or --config and --checkpoint (a model)")
        case (true, false):
            try folders.check()
            guard let numClasses, (1...255).contains(numClasses) else {
                throw ValidationError("--num-classes must be given, 1…255")
            }
        case (false, true):
            try modelOptions.check()
        }
    }

    func run() throws {
        if modelOptions.config != nil { return try modelOptions.evaluate(json: json) }
        let acc = try SegmentationPredictionFolder.evaluate(predDir: folders.predDir!, gtDir: folders.gtDir!,
                                                           numClasses: numClasses!, reduceZeroLabel: reduceZeroLabel)
        print(json ? Self.json(acc.result) : acc.table())
    }

    /// JSON with numbers in Swift's shortest round-trip form and NaN as null.
    static func json(_ r: IoUResult) -> String {
        func num(_ x: Double) -> String { x.isNaN ? "null" : "\(x)" }
        func list(_ x: [Double]) -> String { "[" + x.map(num).joined(separator: ", ") + "]" }
        return "{\"mIoU\": \(num(r.mIoU)), \"mAcc\": \(num(r.mAcc)), \"aAcc\": \(num(r.aAcc)), \"IoU\": \(list(r.iou)), \"Acc\": \(list(r.acc))}"
    }
}

/// `--config C --checkpoint K [--save-pred DIR] [KEY VALUE …]`: the config's model with the
/// checkpoint's weights (strict) on the config's test split, through the trainer's sharded
/// evaluation (so `mpirun -np N` splits the images).
struct ModelEvaluationOptions: ParsableArguments {
    @Option(help: "Training config describing the dataset, model and test pipeline.") var config: String?
    @Option(help: "Checkpoint (model_best.h5, model_0000100.h5 or a weights-only HDF5 state_dict).") var checkpoint: String?
    @Option(name: .customLong("save-pred"), help: "Write each prediction as a class-index PNG named after its annotation.") var savePred: String?
    @Option(parsing: .remaining, help: "Config overrides as KEY VALUE pairs; everything after --set is one (so values may be negative).") var set: [String] = []

    /// Checked by `EvalSeg.validate` only when this mode is chosen (ArgumentParser would call a
    /// group's `validate` even when the other mode is used).
    func check() throws {
        guard config != nil, checkpoint != nil else { throw ValidationError("give both --config and --checkpoint") }
        guard set.count % 2 == 0 else { throw ValidationError("--set takes KEY VALUE pairs") }
    }

    func evaluate(json: Bool) throws {
        let cfg = try TrainingConfig.load(file: config!, overrides: set)
        try Communicator.run(timeout: cfg.double("DIST.TIMEOUT_SECONDS")) { world in
            let task = try SegmentationTask(cfg)
            try CheckpointLoader.loadWeights(from: checkpoint!, into: task.student, remap: .segmentation, strict: true)
            if let savePred {
                try FileManager.default.createDirectory(atPath: savePred, withIntermediateDirectories: true)
                task.predictionDirectory = savePred
            }
            let fingerprint = task.perceptual?.fingerprint ?? 0
            _ = try Trainer(config: cfg, world: world, task: task, lossNetworkFingerprint: fingerprint).evaluate()
            if json && world.rank == 0, let sums = task.lastEvaluation { print(EvalSeg.json(sums.result)) }
        }
    }
}

/// `--pred-dir P --gt-dir G`: score prediction PNGs (class indices) against annotation PNGs
/// matched by file stem.
struct PredictionFolderOptions: ParsableArguments {
    @Option(name: .customLong("pred-dir"), help: "Folder of prediction PNGs (class indices 0…C−1).") var predDir: String?
    @Option(name: .customLong("gt-dir"), help: "Folder of annotation PNGs with the same file stems.") var gtDir: String?

    /// Checked by `EvalSeg.validate` only when this mode is chosen.
    func check() throws {
        guard predDir != nil, gtDir != nil else {
            throw ValidationError("give --pred-dir and --gt-dir (folders of prediction and annotation PNGs)")
        }
    }
}
