import ArgumentParser
import DepthTraining
import Distributed
import Foundation
import Trainer
import Training

/// `percep-dist train-depth`: monocular depth with VNL's network and losses (+ λ·perceptual on
/// the predicted depth), on NYU Depth v2's official files or `synth depth` output;
/// data-parallel under mpirun.
struct TrainDepth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-depth",
        abstract: "Train VNL's depth network (configs/nyu/…, configs/synthetic/depth*.yaml).")

    @Option(help: "YAML config (e.g. configs/synthetic/depth.yaml).") var config: String
    @Flag(help: "Resume from the newest complete checkpoint in OUTPUT_DIR.") var resume = false
    @Option(help: "Stop after this iteration (as if preempted), to test resuming.") var stopAt: Int?
    @Option(name: .customLong("dump-step"), help: "Write one training step (logits, gt, triplets, gradients, losses) to this HDF5 file for tools/pytorch/depth_twin.py check, and stop.")
    var dumpStep: String?
    @Argument(parsing: .allUnrecognized, help: "Config overrides as KEY VALUE pairs.") var overrides: [String] = []

    func run() throws {
        let cfg = try TrainingConfig.load(file: config, overrides: overrides)
        if let dumpStep {
            let losses = try DepthTask(cfg).dumpStep(to: dumpStep)
            print("wrote \(dumpStep): " + losses.map { String(format: "%@ %.6f", $0.0, $0.1) }.joined(separator: "  "))
            return
        }
        try Communicator.run(timeout: cfg.double("DIST.TIMEOUT_SECONDS")) { world in
            let task = try DepthTask(cfg)
            try Trainer(config: cfg, world: world, task: task, lossNetworkFingerprint: task.perceptual?.fingerprint ?? 0)
                .run(resume: resume, stopAt: stopAt)
        }
    }
}
