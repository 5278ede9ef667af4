import ArgumentParser
import Distributed
import Foundation
import PercepCore
import PercepNN
import Perceptual
import Trainer
import Training

/// `percep-dist train-demo`: the shared training loop (`Trainer`) on the built-in synthetic
/// scenes with TinySegNet: a few-second job that exercises configs, MPI, evaluation,
/// checkpoints and resume without any dataset on disk.
struct TrainDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-demo",
        abstract: "Train TinySegNet on built-in synthetic scenes with the full loop (configs, MPI, evaluation, checkpoints, resume).")

    @Option(help: "YAML config (e.g. configs/demo/tiny-synthetic.yaml).") var config: String
    @Flag(help: "Resume from the newest complete checkpoint in OUTPUT_DIR.") var resume = false
    @Option(help: "Stop after this iteration (as if preempted), to test resuming.") var stopAt: Int?
    @Option(help: ArgumentHelp("Make loss_ce NaN at this iteration (failure injection for tests).", visibility: .hidden))
    var injectNanAt: Int?
    @Argument(parsing: .allUnrecognized, help: "Config overrides as KEY VALUE pairs (SOLVER.MAX_ITER 20 …; negative values such as -1 work).") var overrides: [String] = []

    func run() throws {
        let cfg = try TrainingConfig.load(file: config, overrides: overrides)
        try Communicator.run(timeout: cfg.double("DIST.TIMEOUT_SECONDS")) { world in
            let task = try DemoTask(cfg, nanAt: injectNanAt)
            try Trainer(config: cfg, world: world, task: task, lossNetworkFingerprint: task.perceptual?.fingerprint ?? 0)
                .run(resume: resume, stopAt: stopAt)
        }
    }
}

/// TinySegNet on 32×32 synthetic scenes (3 classes): CE, plus λ·perceptual(softmax(logits),
/// one-hot labels) when `LOSS.PERCEPTUAL.ENABLED`; evaluated by pixel accuracy and mean CE on
/// 64 held-out scenes.
final class DemoTask: TrainingTask {
    let net: TinySegNet
    let perceptual: PerceptualLoss?
    static let side = 32, classes = 3, trainScenes = 512, heldOutScenes = 64

    let nanAt: Int?

    init(_ cfg: TrainingConfig, nanAt: Int? = nil) throws {
        self.nanAt = nanAt
        var rng = SeededRNG(seed: UInt64(bitPattern: Int64(cfg.int("SEED"))), stream: "model")
        net = TinySegNet(classes: Self.classes, width: 8, rng: &rng)
        perceptual = try makePerceptualLoss(cfg, inChannels: Self.classes)
        if let perceptual {   // fail before training when the images do not fit the loss network
            let probe = Tensor.zeros([1, Self.classes, Self.side, Self.side])
            try perceptual.check(prediction: probe, target: probe)
        }
    }

    var model: Module { net }
    var trainingSetSize: Int { Self.trainScenes }
    var evaluationSetSize: Int { Self.heldOutScenes }
    private var batchAt: (@Sendable (Int) -> (epoch: Int, indices: [Int]))?

    func prepare(steps: Range<Int>, batchAt: @escaping @Sendable (Int) -> (epoch: Int, indices: [Int])) throws {
        self.batchAt = batchAt
    }

    func lossTerms(step: Int, rng: inout SeededRNG) throws -> [LossTerm] {
        let (x, y) = scenes(batchAt!(step).indices, size: Self.side)
        let logits = net(x)
        let ce = Loss.crossEntropy(logits, target: y)
        var terms = [LossTerm("loss_ce", step == nanAt ? ce * Float.nan : ce)]
        if let perceptual {
            terms.append(LossTerm("loss_perceptual", perceptual.weighted(softmaxOf: logits, oneHot(y, like: logits))))
        }
        return terms
    }

    /// Partial sums: [correct pixels, pixels, CE summed over scenes, scenes].
    func evaluate(indices: [Int], progress: (Int) -> Void) throws -> [Double] {
        var sums = [0.0, 0.0, 0.0, 0.0]
        for (k, i) in indices.enumerated() {
            // Held-out scenes come after the training ones in the scene stream.
            let (x, y) = scenes([Self.trainScenes + i], size: Self.side)
            let logits = net(x)
            let predicted = logits.argmax(axis: 1)
            sums[0] += Double(zip(predicted, y).filter { $0 == $1 }.count)
            sums[1] += Double(y.count)
            sums[2] += Double(Loss.crossEntropy(logits, target: y).item)
            sums[3] += 1
            progress(k + 1)
        }
        return sums
    }

    func summarize(_ sums: [Double]) -> EvaluationResult {
        EvaluationResult(metrics: [("pixel_accuracy", sums[0] / max(sums[1], 1)), ("loss_ce", sums[2] / max(sums[3], 1))],
                         primary: "pixel_accuracy")
    }

    private func oneHot(_ labels: [Int32], like logits: Tensor) -> Tensor {
        let onehot = Tensor.zeros(logits.shape)
        let plane = logits.shape[2] * logits.shape[3], classes = logits.shape[1]
        for (i, label) in labels.enumerated() { onehot.data[((i / plane) * classes + Int(label)) * plane + i % plane] = 1 }
        return onehot
    }
}
