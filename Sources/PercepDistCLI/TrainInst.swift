import ArgumentParser
import Distributed
import Foundation
import InstanceTraining
import PercepCore
import Trainer
import Training

/// `percep-dist train-inst`: CondInst instance segmentation (AdelaiDet's recipe, optionally with
/// the perceptual mask term) on COCO or a `synth coco` set; data-parallel under mpirun.
struct TrainInst: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-inst",
        abstract: "Train CondInst instance segmentation (configs/coco/…, configs/synthetic/condinst*.yaml).")

    @Option(help: "YAML config (e.g. configs/synthetic/condinst.yaml).") var config: String
    @Flag(help: "Resume from the newest complete checkpoint in OUTPUT_DIR.") var resume = false
    @Option(help: "Stop after this iteration (as if preempted), to test resuming.") var stopAt: Int?
    @Option(name: .customLong("dump-step"),
            help: "Run one forward and backward of the first global batch on one rank, write inputs, weights, losses and gradients to this HDF5 file and exit (no update).")
    var dumpStep: String?
    @Argument(parsing: .allUnrecognized, help: "Config overrides as KEY VALUE pairs (SOLVER.MAX_ITER 200 DATASETS.ROOT /data/coco …; negative values such as -1 work).") var overrides: [String] = []

    func run() throws {
        let cfg = try TrainingConfig.load(file: config, overrides: overrides)
        if let dumpStep { return try dump(cfg, to: dumpStep) }
        try Communicator.run(timeout: cfg.double("DIST.TIMEOUT_SECONDS")) { world in
            let task = try InstanceTask(cfg)
            try Trainer(config: cfg, world: world, task: task, lossNetworkFingerprint: task.criterion.settings.perceptual?.fingerprint ?? 0)
                .run(resume: resume, stopAt: stopAt)
        }
    }

    /// The one-step dump for the parity check (`tools/pytorch/condinst_twin.py check FILE`).
    func dump(_ cfg: TrainingConfig, to path: String) throws {
        if let size = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"], size != "1" {
            throw ValidationError("--dump-step runs on one rank; start it without mpirun")
        }
        let task = try InstanceTask(cfg)
        let sampler = try DistributedSampler(datasetSize: task.trainingSetSize, globalBatch: cfg.int("SOLVER.IMS_PER_BATCH"),
                                             seed: UInt64(bitPattern: Int64(cfg.int("SEED"))), worldSize: 1, rank: 0, groups: task.samplingGroups)
        let (epoch, indices) = sampler.globalBatch(step: 0)
        let samples = try indices.map { try task.trainTransform.apply(task.trainSet, index: $0, epoch: epoch) }
        let dump = StepDump(samples: samples, imagesPerGroup: task.imagesPerGroup)
        let values = try dump.write(to: path, model: task.network, criterion: task.criterion)
        print("wrote \(path): " + values.map { String(format: "%@ %.6f", $0.0, $0.1) }.joined(separator: "  "))
    }
}
