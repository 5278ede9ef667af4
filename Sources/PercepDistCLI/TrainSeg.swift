import ArgumentParser
import Distributed
import Foundation
import SegmentationTraining
import Trainer
import Training

/// `percep-dist train-seg`: semantic segmentation (PSPNet / DeepLabV3+) with CE + λ·perceptual
/// loss against a teacher's soft labels, on ADE20K, Cityscapes, VOC or a synthetic set in the
/// ADE20K layout; data-parallel under mpirun.
struct TrainSeg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-seg",
        abstract: "Train a semantic segmentation network (configs/{ade20k,cityscapes,voc,synthetic}/…).")

    @Option(help: "YAML config (e.g. configs/synthetic/percep.yaml).") var config: String
    @Flag(help: "Resume from the newest complete checkpoint in OUTPUT_DIR.") var resume = false
    @Option(help: "Stop after this iteration (as if preempted), to test resuming.") var stopAt: Int?
    @Argument(parsing: .allUnrecognized, help: "Config overrides as KEY VALUE pairs (SOLVER.MAX_ITER 200 DATASETS.ROOT /data/ade …; negative values such as -1 work).") var overrides: [String] = []

    func run() throws {
        let cfg = try TrainingConfig.load(file: config, overrides: overrides)
        try Communicator.run(timeout: cfg.double("DIST.TIMEOUT_SECONDS")) { world in
            let task = try SegmentationTask(cfg)
            try Trainer(config: cfg, world: world, task: task, lossNetworkFingerprint: task.perceptual?.fingerprint ?? 0)
                .run(resume: resume, stopAt: stopAt)
        }
    }
}
