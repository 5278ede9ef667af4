import ArgumentParser
import Foundation
import PercepCore
import SegmentationData

/// `percep-dist bench loader`: images per second the segmentation loader delivers (decode,
/// rescale, crop, flip, normalise, stack) from a dataset in the ADE20K layout, to compare with
/// what a training step consumes (`bench step`'s batch ÷ seconds per step).
struct BenchLoader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loader",
        abstract: "Time the segmentation loader: images per second through decode and augmentation.")

    @Option(help: "Dataset root in the ADE20K layout (e.g. from `synth seg --size 512,683`).") var root: String
    @Option(help: "Crop side (mmseg's ADE20K recipe: 512).") var crop = 512
    @Option(help: "Images per batch.") var batch = 2
    @Option(help: "Batches to time (after one warm-up batch).") var steps = 20
    @Option(help: "Loader worker threads.") var workers = 2
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard crop > 0, batch > 0, steps > 0, workers > 0 else { throw ValidationError("--crop, --batch, --steps and --workers must be positive") }
    }

    func run() throws {
        let dataset = try SegmentationDataset(format: .ade20k, root: root, split: .train)
        let transform = SegmentationTrainTransform(scaleLong: 2048, scaleShort: 512, ratioRange: 0.5...2.0, cropHeight: crop, cropWidth: crop,
                                                   seed: 0)
        let plan = (0...steps).map { s in
            SegmentationLoaderStep(epoch: 0, indices: (0..<batch).map { (s * batch + $0) % dataset.count })
        }
        let loader = SegmentationLoader(dataset: dataset, transform: transform, steps: plan, threads: workers, prefetch: 2 * workers)
        defer { loader.close() }
        _ = try loader.next()   // warm-up: threads started, first files in the page cache
        let start = Date()
        var images = 0
        while let b = try loader.next() { images += b.indices.count }
        let seconds = Date().timeIntervalSince(start)
        let rate = Double(images) / seconds
        if json {
            let out: [String: Any] = ["images_per_second": rate, "images": images, "seconds": seconds, "crop": crop, "workers": workers,
                                      "batch": batch]
            print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%d images in %.2f s: %.1f images/s (%d workers, crop %d)", images, seconds, rate, workers, crop))
        }
    }
}
