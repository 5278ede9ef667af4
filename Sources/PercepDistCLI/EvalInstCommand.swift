import ArgumentParser
import Checkpoint
import COCO
import Distributed
import Foundation
import InstanceTraining
import Trainer
import Training

/// `percep-dist eval-inst`: COCO box and mask AP of a CondInst checkpoint on the config's test
/// split, sharded across ranks under mpirun (detections gathered to rank 0).
struct EvalInst: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-inst",
        abstract: "COCO bbox and segm AP (pycocotools-identical) of a CondInst checkpoint.")

    @Option(help: "Training config describing the dataset, model and test pipeline.") var config: String
    @Option(help: "Checkpoint (model_best.h5, model_0000100.h5 or a weights-only HDF5 state_dict).") var checkpoint: String
    @Option(name: .customLong("results-dir"), help: "Write bbox.json and segm.json (COCO results format) here.") var resultsDir: String?
    @Flag(help: "Print {\"bbox\": {AP, AP50, …}, \"segm\": {…}} (AP in percent, as detectron2) instead of the tables.") var json = false
    @Option(parsing: .remaining, help: "Config overrides as KEY VALUE pairs; everything after --set is one (so values may be negative).") var set: [String] = []

    func validate() throws {
        guard set.count % 2 == 0 else { throw ValidationError("--set takes KEY VALUE pairs") }
    }

    func run() throws {
        let cfg = try TrainingConfig.load(file: config, overrides: set)
        if let resultsDir { try FileManager.default.createDirectory(atPath: resultsDir, withIntermediateDirectories: true) }
        try Communicator.run(timeout: cfg.double("DIST.TIMEOUT_SECONDS")) { world in
            let task = try InstanceTask(cfg)
            try CheckpointLoader.loadWeights(from: checkpoint, into: task.network, remap: .condInst, strict: true)
            let result = try Trainer(config: cfg, world: world, task: task, lossNetworkFingerprint: task.criterion.settings.perceptual?.fingerprint ?? 0)
                .evaluate()
            guard world.rank == 0 else { return }
            if let resultsDir {
                for type in [IoUType.bbox, .segm] {
                    let data = try InstanceTask.resultsJSON(task.lastDetections, type: type, dataset: task.testSet.coco)
                    try data.write(to: URL(fileURLWithPath: resultsDir).appendingPathComponent("\(type.rawValue).json"))
                }
            }
            if json {
                var parts: [String] = []
                for type in ["bbox", "segm"] {
                    let fields = result.metrics.filter { $0.name.hasPrefix(type + "/") }
                        .map { "\"\($0.name.dropFirst(type.count + 1))\": \($0.value.isFinite ? "\($0.value)" : "null")" }
                    parts.append("\"\(type)\": {" + fields.joined(separator: ", ") + "}")
                }
                print("{" + parts.joined(separator: ", ") + "}")
            }
        }
    }
}
