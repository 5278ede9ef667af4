import ArgumentParser
import Foundation
import Trainer
import PercepCore
import PercepNN
import Perceptual
import SegmentationModels
import CondInst
import InstanceModels
import InstanceTraining

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

    @Option(help: "Model: \(segmentationModelNames.joined(separator: ", ")), or condinst_r50 (AdelaiDet's CondInst R-50-FPN, 80 classes).")
    var model = "pspnet_r18"
    @Option(help: "Input size S (square) or H,W.") var size = "256"
    @Option(help: "condinst_r50: instances per image (boxes and masks by a fixed formula, the same in tools/bench_condinst_step.py).")
    var instances = 6
    @Option(help: "condinst_r50: cap on mask instances per group (MODEL.CONDINST.MAX_PROPOSALS; the COCO configs' 500), -1 for none (the default, as tools/bench_condinst_step.py).")
    var maxProposals = -1
    @Option(help: "condinst_r50 with --perceptual: cap on the mask instances per group that go through the loss network (LOSS.PERCEPTUAL.MAX_INSTANCES), -1 for none.")
    var perceptualMaxInstances = -1
    @Option(help: "Batch size.") var batch = 2
    @Option(help: "Number of classes (default: 150, ADE20K's, for segmentation; 80, COCO's, for condinst_r50).")
    var classes: Int?
    @Option(help: "Output stride of the ResNet backbone: 8 or 16 (the HRNet models have none).") var outputStride = 8
    @Flag(inversion: .prefixedNo, help: "Build the auxiliary FCN head (loss weight 0.4) of the ResNet models (the HRNet recipes have none).") var aux = true
    @Option(help: "VGG loss-network structure N_1,…,N_5 (e.g. 1,1,1,1,1 or 2,2,3,3,3); none when omitted.") var perceptual: String?
    @Option(help: "Timed steps (after the warm-up).") var steps = 3
    @Option(help: "Warm-up steps (not timed).") var warmup = 1
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "After the run, list each convolution shape and pass with the rule's algorithm and, under PERCEP_CONV=tune, the measured one (stderr).")
    var reportConv = false
    @Flag(help: "Time every op kind of the timed steps, forward and backward, and print the table (stderr): where a step goes on a machine without a profiler.")
    var profileOps = false

    /// (height, width) of `--size`.
    var dimensions: (Int, Int)? {
        let parts = size.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        if parts.count == 1, let s = parts[0], s > 0 { return (s, s) }
        if parts.count == 2, let h = parts[0], let w = parts[1], h > 0, w > 0 { return (h, w) }
        return nil
    }

    func validate() throws {
        guard dimensions != nil, batch > 1, (classes ?? 1) > 0, steps > 0, warmup >= 0, instances >= 0 else {
            throw ValidationError("--size (S or H,W), --classes and --steps must be positive, --batch at least 2 (batch norm), --warmup and --instances ≥ 0")
        }
        guard maxProposals == -1 || maxProposals > 0 else { throw ValidationError("--max-proposals must be -1 (no cap) or positive, got \(maxProposals)") }
        guard perceptualMaxInstances == -1 || perceptualMaxInstances > 0 else {
            throw ValidationError("--perceptual-max-instances must be -1 (no cap) or positive, got \(perceptualMaxInstances)")
        }
        if model == "condinst_r50", let (h, w) = dimensions, h % 32 != 0 || w % 32 != 0 || h < 256 || w < 256 {
            throw ValidationError("condinst_r50 needs --size sides that are multiples of 32 and at least 256")
        }
    }

    func run() throws {
        if let threads { ThreadBudget.set(threads) }
        if model == "condinst_r50" { return try runCondInst(classes: classes ?? 80) }
        let classes = self.classes ?? 150
        let size = dimensions!.0
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
        // The twin's target, softmax of fixed random logits; the logits are not kept (PyTorch
        // frees its temporary too).
        let target = Tensor(uninitialized: [batch, classes, size, size])
        data.fillNormal(target, std: 2)
        Tensor.softmaxRaw(target.data, target.data, outer: batch, n: classes, inner: size * size)

        func step() -> (Double, Float) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            OpProfile.startStep()
            let out = net(x)
            let up = upsampleLogits(out.logits, to: (size, size))
            // The perceptual term first, as SegmentationTask does: its forward's temporaries come
            // before the CE's saved log-softmax, and its backward after the CE's.
            let perceptualTerm = loss?.weighted(softmaxOf: up, target)
            var total = Loss.crossEntropy(up, target: labels, ignoreIndex: 255)
            if let a = out.auxLogits {
                total = total + Loss.crossEntropy(upsampleLogits(a, to: (size, size)), target: labels, ignoreIndex: 255) * 0.4
            }
            if let perceptualTerm { total = total + perceptualTerm }
            total.backward()
            OpProfile.measure("SGD step") { sgd.step(); sgd.zeroGrad() }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            return (dt, total.item)
        }
        for _ in 0..<warmup { _ = step() }
        let countsBefore = MappedPageCounts.now
        var times: [Double] = [], last: Float = 0
        OpProfile.enabled = profileOps
        for _ in 0..<steps { let (t, l) = step(); times.append(t); last = l }
        OpProfile.enabled = false
        precondition(last.isFinite, "bench step: the loss is not finite (\(last))")
        if profileOps { printOpProfile(steps: steps, stepSeconds: times.reduce(0, +)) }
        if reportConv {
            for c in ConvDispatch.tunedChoices {
                let rule = ConvDispatch.ruleAlgorithm(for: c.geometry, pass: c.pass)
                FileHandle.standardError.write(Data("conv \(c.geometry) \(c.pass): tuned \(c.algorithm), rule \(rule)\(rule == c.algorithm ? "" : "  <- differs")\n".utf8))
            }
        }
        let mean = times.reduce(0, +) / Double(times.count)
        let report: [String: Any] = [
            "seconds_per_step": mean, "min_seconds": times.min()!,
            "threads": ThreadBudget.threads, "model": model, "size": size, "batch": batch, "classes": classes,
            "output_stride": outputStride, "aux": net.auxiliaryHead != nil, "perceptual": perceptual ?? "none", "steps": steps, "loss": Double(last),
            "parameters": net.trainableParameters.reduce(0) { $0 + $1.count }, "seconds_by_tenth": meansByTenth(times),
        ].merging(benchMemoryReport(before: countsBefore, timedSteps: steps)) { $1 }
        if json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "%@ %d×%d batch %d, %d classes, perceptual %@: %.3f s/step (min %.3f), peak RSS %.0f MiB, %d threads",
                         model as NSString, size, size, batch, classes, (perceptual ?? "none") as NSString, mean, times.min()!,
                         peakRSSMegabytes(), ThreadBudget.threads))
        }
    }

    /// One CondInst training step: AdelaiDet's R-50-FPN (FrozenBN, FREEZE_AT 2, 80 classes) on
    /// `--batch` images of `--size` in one group, FCOS and dice losses (no proposal cap, so the
    /// PyTorch twin computes the same instances), with `--perceptual` the VGG mask term on every
    /// instance (1 input channel, widths 64…512), backward, SGD (lr 0.01, momentum 0.9, weight
    /// decay 1e-4). Instances: `condinstBenchInstances`, the formula the twin uses too.
    func runCondInst(classes: Int) throws {
        let (h, w) = dimensions!
        var spec = CondInstSpec()
        spec.numClasses = classes
        var rng = SeededRNG(seed: 0, stream: "model")
        let net = CondInstModel(spec, rng: &rng)
        var settings = CondInstLossSettings()
        settings.maxProposals = maxProposals
        settings.perceptualMaxInstances = perceptualMaxInstances
        if let perceptual {
            var c = LossNetworkConfig(inChannels: 1)
            c.structure = try LossNetOptions.integers(perceptual, option: "perceptual")
            c.widths = Array([64, 128, 256, 512, 512].prefix(c.structure.count))
            c.lambda = 0.1
            settings.perceptual = try PerceptualLoss(c)
        }
        let criterion = CondInstCriterion(spec: spec, settings: settings)
        let sgd = SGD(net.trainableParameters, learningRate: 0.01, momentum: 0.9, weightDecay: 1e-4)
        var data = SeededRNG(seed: 7, stream: "bench")
        let images = Tensor(uninitialized: [batch, 3, h, w])
        data.fillNormal(images, std: 50)
        let truth = (0..<batch).map { condinstBenchInstances(image: $0, count: instances, height: h, width: w, classes: classes) }
        var lastTerms: [(String, Double)] = [], maskInstances = 0
        func step() -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            OpProfile.startStep()
            var groupRNG = SeededRNG(seed: 1, stream: "bench group")
            let parts = criterion.groupLosses(model: net, images: images, truth: truth, rng: &groupRNG)
            let terms = CondInstCriterion.terms([parts], totalPositives: Double(parts.positives), totalCenternessTargets: parts.centernessTargetSum,
                                                groupsInBatch: 1, worldSize: 1)
            let total = terms.dropFirst().reduce(terms[0].value) { $0 + $1.value }
            total.backward()
            OpProfile.measure("SGD step") { sgd.step(); sgd.zeroGrad() }
            lastTerms = terms.map { ($0.name, Double($0.value.item)) }
            maskInstances = parts.maskInstances
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        for _ in 0..<warmup { _ = step() }
        let countsBefore = MappedPageCounts.now
        OpProfile.enabled = profileOps
        let times = (0..<steps).map { _ in step() }
        OpProfile.enabled = false
        if profileOps { printOpProfile(steps: steps, stepSeconds: times.reduce(0, +)) }
        precondition(lastTerms.allSatisfy { $0.1.isFinite }, "bench step: a loss is not finite (\(lastTerms))")
        let mean = times.reduce(0, +) / Double(times.count)
        var report: [String: Any] = [
            "seconds_per_step": mean, "min_seconds": times.min()!, "threads": ThreadBudget.threads,
            "model": model, "size": [h, w], "batch": batch, "classes": classes, "instances": instances, "perceptual": perceptual ?? "none",
            "max_proposals": maxProposals, "mask_instances": maskInstances, "perceptual_max_instances": perceptualMaxInstances,
            "steps": steps, "parameters": net.trainableParameters.reduce(0) { $0 + $1.count }, "seconds_by_tenth": meansByTenth(times),
        ].merging(benchMemoryReport(before: countsBefore, timedSteps: steps)) { $1 }
        for (name, value) in lastTerms { report[name] = value }
        if json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "condinst_r50 %d×%d batch %d, %d instances each (%d mask instances), perceptual %@: %.3f s/step (min %.3f), peak RSS %.0f MiB, %d threads",
                         h, w, batch, instances, maskInstances, (perceptual ?? "none") as NSString, mean, times.min()!, peakRSSMegabytes(), ThreadBudget.threads))
        }
    }
}

/// Prints `OpProfile`'s table for `steps` timed steps that took `stepSeconds` in all (stderr, so
/// `--json` output stays one object): per op kind, calls, forward and backward milliseconds per
/// step and the share of the step; the rest is time no op was charged with.
func printOpProfile(steps: Int, stepSeconds: Double) {
    let rows = OpProfile.rows()
    let perStep = { (seconds: Double) in 1000 * seconds / Double(steps) }
    func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
    var text = pad("op", 34) + "    calls     fwd ms     bwd ms   share\n"
    for r in rows {
        text += pad(r.op, 34) + String(format: " %8.1f %10.1f %10.1f %6.1f%%\n", Double(r.forward.calls) / Double(steps),
                                       perStep(r.forward.seconds), perStep(r.backward.seconds), 100 * r.seconds / stepSeconds)
    }
    let rest = stepSeconds - rows.reduce(0) { $0 + $1.seconds }
    text += pad("(not charged to an op)", 34) + String(repeating: " ", count: 9) + String(format: " %10.1f            %6.1f%%\n", perStep(rest), 100 * rest / stepSeconds)
    FileHandle.standardError.write(Data(text.utf8))
}

/// The benchmark's instances of image `image` (the same formula as tools/bench_condinst_step.py):
/// `count` axis-aligned squares with full masks, centres spread by fixed strides, half-sides
/// 24…63 pixels, classes cycling.
func condinstBenchInstances(image b: Int, count: Int, height h: Int, width w: Int, classes: Int) -> InstanceGroundTruth {
    var boxes: [Float] = [], labels: [Int] = [], masks = [UInt8](repeating: 0, count: count * h * w)
    for k in 0..<count {
        let cx = (k * 97 + b * 53) % (w - 160) + 80, cy = (k * 71 + b * 29) % (h - 160) + 80, half = 24 + (k * 13) % 40
        boxes += [Float(cx - half), Float(cy - half), Float(cx + half), Float(cy + half)]
        labels.append((k + b) % classes)
        for y in (cy - half)..<(cy + half) { for x in (cx - half)..<(cx + half) { masks[(k * h + y) * w + x] = 1 } }
    }
    return InstanceGroundTruth(boxes: boxes, classes: labels, masks: masks, height: h, width: w)
}
