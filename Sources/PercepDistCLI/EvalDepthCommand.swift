import ArgumentParser
import Checkpoint
import DepthData
import DepthTraining
import Distributed
import Foundation
import Trainer
import Training

/// `percep-dist eval-depth`: VNL's NYU depth metrics, pooled over every valid pixel of the set —
/// of 16-bit PNG depth maps already on disk (`--pred-dir/--gt-dir`), or of a model
/// (`--config/--checkpoint`, sharded under mpirun, through VNL's test pipeline).
struct EvalDepth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-depth",
        abstract: "VNL's depth metrics (abs_rel, sq_rel, rms, rms_log, log10, δ1–3, silog) of prediction PNGs or of a model.",
        discussion: "PNG mode: both folders hold 16-bit grey PNGs matched by file stem; value / --depth-scale is metres and a ground truth of 0 is invalid. Model mode: the config's test split through VNL's test pipeline; --save-pred writes pred/ and gt/ PNGs that the PNG mode reads. Metrics are pooled over every valid pixel of the set, as VNL's evaluate_err accumulates them (not averaged per image).")
    @Option(name: .customLong("pred-dir"), help: "Folder of predicted depth PNGs (16-bit, clamped to [1, 65535]).") var predDir: String?
    @Option(name: .customLong("gt-dir"), help: "Folder of ground-truth depth PNGs (16-bit, 0 = invalid).") var gtDir: String?
    @Option(name: .customLong("depth-scale"), help: "PNG value per metre (PNG mode).") var depthScale: Double = 1000
    @Option(help: "Evaluation crop r0,r1,c0,c1 (half-open), or 'none' (PNG mode; the model mode uses TEST.EVAL_CROP). Default: Eigen's NYU crop.")
    var crop: String = "45,471,41,601"
    @Option(help: "Training config describing the data set, model and test pipeline (model mode).") var config: String?
    @Option(help: "Checkpoint or weights (model mode).") var checkpoint: String?
    @Option(name: .customLong("save-pred"), help: "Model mode: write pred/<index>.png and gt/<index>.png (16-bit, millimetres) and vis/<index>.png (frame | ground truth | prediction in colour) here.") var savePred: String?
    @Flag(help: "Print the metrics as JSON (abs_rel, sq_rel, rms, rms_log, log10, delta1, delta2, delta3, silog; NaN as null).") var json = false
    @Option(parsing: .remaining, help: "Model mode: config overrides as KEY VALUE pairs; everything after --set.") var set: [String] = []

    func validate() throws {
        switch (predDir != nil || gtDir != nil, config != nil || checkpoint != nil) {
        case (true, true): throw ValidationError("give either --pred-dir/--gt-dir or --config/--checkpoint, not both")
        case (false, false): throw ValidationError("give --pred-dir and --gt-dir (depth PNGs), or --config and --checkpoint (a model)")
        case (true, false): guard predDir != nil, gtDir != nil else { throw ValidationError("give both --pred-dir and --gt-dir") }
        case (false, true):
            guard config != nil, checkpoint != nil else { throw ValidationError("give both --config and --checkpoint") }
            guard set.count % 2 == 0 else { throw ValidationError("--set takes KEY VALUE pairs") }
        }
    }

    func run() throws {
        if let config { return try evaluateModel(config) }
        guard depthScale.isFinite, depthScale > 0 else { throw ValidationError("--depth-scale must be a positive number, not \(depthScale)") }
        let region: DepthCrop?
        if crop == "none" { region = nil } else {
            guard let c = DepthCrop(parsing: crop) else { throw ValidationError("--crop must be r0,r1,c0,c1 with r0 < r1 and c0 < c1, or none; not '\(crop)'") }
            region = c
        }
        let (sums, images) = try DepthPredictionFolder.evaluate(predDir: predDir!, gtDir: gtDir!, scale: depthScale, crop: region)
        print(json ? Self.json(sums, images: images) : Self.table(sums, images: images, crop: region))
    }

    func evaluateModel(_ path: String) throws {
        let cfg = try TrainingConfig.load(file: path, overrides: set)
        try Communicator.run(timeout: cfg.double("DIST.TIMEOUT_SECONDS")) { world in
            let task = try DepthTask(cfg)
            try CheckpointLoader.loadWeights(from: checkpoint!, into: task.network, strict: true)
            if let savePred {
                try FileManager.default.createDirectory(atPath: savePred, withIntermediateDirectories: true)
                task.predictionDirectory = savePred
            }
            _ = try Trainer(config: cfg, world: world, task: task, lossNetworkFingerprint: task.perceptual?.fingerprint ?? 0).evaluate()
            if json && world.rank == 0, let sums = task.lastEvaluation { print(Self.json(sums, images: task.evaluationSetSize)) }
        }
    }

    static func json(_ sums: DepthMetricSums, images: Int) -> String {
        var object: [String: Any] = ["images": images, "pixels": Int(sums.count)]
        for (name, v) in zip(DepthMetricSums.names, sums.values) { object[name] = v.isFinite ? v : NSNull() }
        return String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    static func table(_ sums: DepthMetricSums, images: Int, crop: DepthCrop?) -> String {
        "\(images) images, \(Int(sums.count)) valid pixels" + (crop.map { " in crop \($0.rowStart),\($0.rowEnd),\($0.colStart),\($0.colEnd)" } ?? "") + "\n"
            + DepthMetricSums.names.map { $0.padding(toLength: 8, withPad: " ", startingAt: 0) }.joined(separator: " ") + "\n"
            + sums.values.map { String(format: "%-8.4f", $0) }.joined(separator: " ")
    }
}
