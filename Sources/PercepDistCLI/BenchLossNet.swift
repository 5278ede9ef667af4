import ArgumentParser
import Foundation
import PercepCore
import Perceptual
import Trainer

/// `percep-dist bench lossnet`: one perceptual-loss step (embed the prediction with tape, embed
/// the target without, backward to the prediction) timed over `--iters` iterations.
struct BenchLossNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lossnet",
        abstract: "Time one perceptual-loss step: forward on prediction and target, backward to the prediction.")

    @OptionGroup var network: LossNetOptions
    @Option(help: "Input height and width.") var size = 128
    @Option(help: "Batch size.") var batch = 2
    @Option(help: "Timed iterations (after one warm-up).") var iters = 5
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard size > 0, batch > 0, iters > 0 else { throw ValidationError("--size, --batch and --iters must be positive") }
    }

    func run() throws {
        if let threads { ThreadBudget.set(threads) }
        let config = try network.config()
        let loss = try PerceptualLoss(config)
        var rng = SeededRNG(seed: 7, stream: "bench")
        let shape = [batch, config.inChannels, size, size]
        let logits = Tensor(uninitialized: shape), targetLogits = Tensor(uninitialized: shape)
        rng.fillNormal(logits, std: 2)
        rng.fillNormal(targetLogits, std: 2)
        let target = targetLogits.softmax(axis: 1)
        let pred = logits.softmax(axis: 1)
        pred.requiresGrad = true
        try loss.check(prediction: pred, target: target)
        var lastLoss: Float = 0
        func step() -> Double {
            pred.grad = nil
            let t0 = DispatchTime.now().uptimeNanoseconds
            let value = loss(pred, target)
            value.backward()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            precondition(pred.grad != nil && value.item.isFinite)
            lastLoss = value.item
            return dt
        }
        _ = step()
        let countsBefore = MappedPageCounts.now
        let times = (0..<iters).map { _ in step() }
        let mean = times.reduce(0, +) / Double(times.count)
        let report: [String: Any] = [
            "seconds_per_iter": mean, "min_seconds": times.min()!,
            "threads": ThreadBudget.threads, "structure": config.structure, "kernel_size": config.kernelSize,
            "in_channels": config.inChannels, "size": size, "batch": batch, "iters": iters, "family": config.family.rawValue,
            "winograd_gemm_lanes": ConvWinograd.gemmLanes.rawValue, "winograd_transform_lanes": ConvWinograd.transformLanes.rawValue,
            // The loss value, so runs with other kernels (PERCEP_WINOGRAD, PERCEP_CONV) can be compared.
            "loss": Double(lastLoss), "seconds_by_tenth": meansByTenth(times),
        ].merging(benchMemoryReport(before: countsBefore, timedSteps: iters)) { $1 }
        if json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "%@ %@ k%d C%d %d×%d batch %d: %.4f s/iter (min %.4f), peak RSS %.0f MiB, %d threads",
                         config.family.rawValue, config.structure.map(String.init).joined(separator: ",") as NSString,
                         config.kernelSize, config.inChannels, size, size, batch, mean, times.min()!, peakRSSMegabytes(), ThreadBudget.threads))
        }
    }
}

/// Where a benchmark's memory went: peak RSS, the most bytes live tensors held at once, and the
/// size of oneDNN's shared workspace; what is in none of them is library code and allocator slack.
/// `before` (`MappedPageCounts.now` before the timed steps) gives the fresh pages the
/// `timedSteps` faulted in per step and the runs of pages the mapped-block cache moved per step.
func benchMemoryReport(before: MappedPageCounts, timedSteps: Int) -> [String: Any] {
    let steps = Double(max(timedSteps, 1))
    return ["peak_rss_mb": peakRSSMegabytes(), "peak_tensor_mb": Double(StorageStatistics.peakBytes) / 1_048_576,
            "conv_workspace_mb": Double(ConvDispatch.dnnlWorkspaceBytes) / 1_048_576,
            "fresh_pages_mb_per_step": Double(StorageStatistics.freshMappedBytes - before.freshBytes) / 1_048_576 / steps,
            "moved_runs_per_step": Double(StorageStatistics.movedMappedRuns - before.movedRuns) / steps]
}

/// The mean time of each tenth of `times` in order (empty for fewer than 10): a long run shows
/// whether steps slow down as it goes (the mapped-block cache's pieces once did).
func meansByTenth(_ times: [Double]) -> [Double] {
    guard times.count >= 10 else { return [] }
    return (0..<10).map { k in
        let part = times[k * times.count / 10..<(k + 1) * times.count / 10]
        return part.reduce(0, +) / Double(part.count)
    }
}

/// The mapped-block cache's running counts that `benchMemoryReport` turns into per-step figures.
struct MappedPageCounts {
    let freshBytes: Int, movedRuns: Int
    static var now: MappedPageCounts {
        MappedPageCounts(freshBytes: StorageStatistics.freshMappedBytes, movedRuns: StorageStatistics.movedMappedRuns)
    }
}
