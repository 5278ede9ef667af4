import ArgumentParser
import Foundation
import Trainer
import PercepCore
import PercepNN
import Perceptual
import SegmentationModels

/// `percep-dist bench step`: one full segmentation training step, timed after warm-up.
///
/// The step: forward the model in training mode on x [B, 3, S, S]; cross-entropy (ignore 255)
/// on the logits upsampled to S×S, plus 0.4 × the auxiliary head's (if any); plus, with
/// `--perceptual`, λ = 0.1 × the perceptual loss between softmax(upsampled logits) [B, C, S, S]
/// and a teacher-like soft target (softmax of fixed random logits) through the frozen VGG loss
/// network of that structure (widths 64, 128, 256, 512, 512); backward; one SGD step (lr 0.01,
/// momentum 0.9, weight decay 5e-4 as mmseg's recipes). `tools/bench_step.py` is the same step in
/// PyTorch with the same JSON keys.
struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Time one segmentation training step (forward, CE + aux + optional perceptual loss, backward, SGD).")

    @Option(help: "Model: \(segmentationModelNames.joined(separator: ", ")).") var model = "pspnet_r18"
    @Option(help: "Input height and width.") var size = 256
    @Option(help: "Batch size.") var batch = 2
    @Option(help: "Number of classes.") var classes = 150
    @Option(help: "Output stride of the backbone: 8 or 16.") var outputStride = 8
    @Flag(inversion: .prefixedNo, help: "Build the auxiliary FCN head (loss weight 0.4).") var aux = true
    @Option(help: "VGG loss-network structure N_1,…,N_5 (e.g. 1,1,1,1,1 or 2,2,3,3,3); none when omitted.") var perceptual: String?
    @Option(help: "Timed steps (after the warm-up).") var steps = 3
    @Option(help: "Warm-up steps (not timed).") var warmup = 1
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "After the run, list each convolution shape and pass with the rule's algorithm and, under PERCEP_CONV=tune, the measured one (stderr).")
    var reportConv = false

    func validate() throws {
        guard size > 0, batch > 1, classes > 0, steps > 0, warmup >= 0 else {
            throw ValidationError("--size, --classes and --steps must be positive, --batch at least 2 (batch norm), --warmup ≥ 0")
        }
    }

    func run() throws {
        if let threads { ThreadBudget.set(threads) }
        var rng = SeededRNG(seed: 0, stream: "model")
        let net = try makeSegmentationModel(name: model, classes: classes, rng: &rng, outputStride: outputStride, auxiliaryHead: aux)
        net.train()
        var loss: PerceptualLoss?
        if let perceptual {
            var c = LossNetworkConfig(inChannels: classes)
            c.structure = try LossNetOptions.integers(perceptual, option: "perceptual")
            c.widths = Array([64, 128, 256, 512, 512].prefix(c.structure.count))
            c.lambda = 0.1
            loss = try PerceptualLoss(c)
        }
        // mmseg's SGD: weight decay 5e-4 on every parameter.
        let sgd = SGD(net.trainableParameters, learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4)

        var data = SeededRNG(seed: 7, stream: "bench")
        let x = Tensor(uninitialized: [batch, 3, size, size])
        data.fillNormal(x, std: 1)
        let labels: [Int32] = (0..<(batch * size * size)).map { _ in
            data.nextUnit() < 0.05 ? 255 : Int32(data.next() % UInt64(classes))
        }
        let teacherLogits = Tensor(uninitialized: [batch, classes, size, size])
        data.fillNormal(teacherLogits, std: 2)
        let target = teacherLogits.softmax(axis: 1)

        func step() -> (Double, Float) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = net(x)
            let up = upsampleLogits(out.logits, to: (size, size))
            var total = Loss.crossEntropy(up, target: labels, ignoreIndex: 255)
            if let a = out.auxLogits {
                total = total + Loss.crossEntropy(upsampleLogits(a, to: (size, size)), target: labels, ignoreIndex: 255) * 0.4
            }
            if let loss { total = total + loss.weighted(up.softmax(axis: 1), target) }
            total.backward()
            sgd.step()
            sgd.zeroGrad()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            return (dt, total.item)
        }
        for _ in 0..<warmup { _ = step() }
        var times: [Double] = [], last: Float = 0
        for _ in 0..<steps { let (t, l) = step(); times.append(t); last = l }
        precondition(last.isFinite, "bench step: the loss is not finite (\(last))")
        if reportConv {
            for c in ConvDispatch.tunedChoices {
                let rule = ConvDispatch.ruleAlgorithm(for: c.geometry, pass: c.pass)
                FileHandle.standardError.write(Data("conv \(c.geometry) \(c.pass): tuned \(c.algorithm), rule \(rule)\(rule == c.algorithm ? "" : "  <- differs")\n".utf8))
            }
        }
        let mean = times.reduce(0, +) / Double(times.count)
        let report: [String: Any] = [
            "seconds_per_step": mean, "min_seconds": times.min()!, "peak_rss_mb": peakRSSMegabytes(),
            "threads": ThreadBudget.threads, "model": model, "size": size, "batch": batch, "classes": classes,
            "output_stride": outputStride, "aux": aux, "perceptual": perceptual ?? "none", "steps": steps, "loss": Double(last),
            "parameters": net.trainableParameters.reduce(0) { $0 + $1.count },
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "%@ %d×%d batch %d, %d classes, perceptual %@: %.3f s/step (min %.3f), peak RSS %.0f MiB, %d threads",
                         model as NSString, size, size, batch, classes, (perceptual ?? "none") as NSString, mean, times.min()!,
                         peakRSSMegabytes(), ThreadBudget.threads))
        }
    }
}
