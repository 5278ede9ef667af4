import ArgumentParser
import DataLoading
import Foundation
import InstanceData
import PercepCore
import SegmentationData

/// `percep-dist bench loader`: images per second the training loader delivers from a data set —
/// the segmentation pipeline (ADE20K layout: decode, rescale, crop, flip, normalise, stack) or the
/// instance pipeline (COCO layout: JPEG decode, ResizeShortestEdge with Pillow's resampling,
/// flip, polygons and RLEs rasterised on the resized canvas, BGR normalisation) — to compare with
/// what a training step consumes (batch ÷ seconds per step).
struct BenchLoader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loader",
        abstract: "Time a training loader: images per second through decode and augmentation.")

    @Option(help: "seg (ADE20K layout) or inst (COCO layout).") var task = "seg"
    @Option(help: "Data set root: the ADE20K folder (e.g. from `synth seg --size 512,683`) or the COCO root (from `synth coco`).") var root: String
    @Option(help: "Split of the COCO layout (inst).") var split = "train"
    @Option(help: "Crop side (seg; mmseg's ADE20K recipe: 512).") var crop = 512
    @Option(help: "Short sides to draw from (inst; AdelaiDet: 640,672,704,736,768,800).") var shortSides = "640,672,704,736,768,800"
    @Option(help: "Long-side cap (inst).") var maxSize = 1333
    @Option(help: "Images per batch.") var batch = 2
    @Option(help: "Batches to time (after one warm-up batch).") var steps = 20
    @Option(help: "Loader worker threads.") var workers = 2
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard crop > 0, batch > 0, steps > 0, workers > 0, maxSize > 0 else {
            throw ValidationError("--crop, --max-size, --batch, --steps and --workers must be positive")
        }
        guard ["seg", "inst"].contains(task) else { throw ValidationError("--task must be seg or inst, not '\(task)'") }
    }

    func run() throws {
        let rate: Double, images: Int, seconds: Double
        if task == "seg" {
            let dataset = try SegmentationDataset(format: .ade20k, root: root, split: .train)
            let transform = SegmentationTrainTransform(scaleLong: 2048, scaleShort: 512, ratioRange: 0.5...2.0, cropHeight: crop, cropWidth: crop,
                                                       seed: 0)
            let plan = Self.plan(count: dataset.count, batch: batch, steps: steps)
            let loader = SegmentationLoader(dataset: dataset, transform: transform, steps: plan, threads: workers, prefetch: 2 * workers)
            defer { loader.close() }
            _ = try loader.next()   // warm-up: threads started, first files in the page cache
            let start = Date()
            var n = 0
            while let b = try loader.next() { n += b.indices.count }
            (images, seconds) = (n, Date().timeIntervalSince(start))
        } else {
            let shorts = shortSides.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !shorts.isEmpty, shorts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--short-sides must be positive integers") }
            let dataset = try InstanceDataset(root: root, split: split, filterEmpty: true)
            let transform = InstanceTransform(shortSides: shorts, maxSize: maxSize, flip: true, seed: 0)
            let loader = PrefetchLoader(name: "inst-loader", steps: Self.plan(count: dataset.count, batch: batch, steps: steps), threads: workers,
                                        prefetch: 2 * workers) { index, epoch in try transform.apply(dataset, index: index, epoch: epoch) }
            defer { loader.close() }
            _ = try loader.next()
            let start = Date()
            var n = 0
            while let step = try loader.next() { n += step.samples.count }
            (images, seconds) = (n, Date().timeIntervalSince(start))
        }
        rate = Double(images) / seconds
        if json {
            let out: [String: Any] = ["images_per_second": rate, "images": images, "seconds": seconds, "task": task, "workers": workers,
                                      "batch": batch, "crop": crop, "short_sides": shortSides, "max_size": maxSize]
            print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%d images in %.2f s: %.1f images/s (%@, %d workers)", images, seconds, rate, task, workers))
        }
    }

    /// `steps + 1` steps of `batch` consecutive indices (wrapping), the first one a warm-up.
    static func plan(count: Int, batch: Int, steps: Int) -> [LoaderStep] {
        (0...steps).map { s in LoaderStep(epoch: 0, indices: (0..<batch).map { (s * batch + $0) % count }) }
    }
}
