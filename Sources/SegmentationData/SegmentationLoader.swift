import DataLoading
import Foundation
import PercepCore

/// One training step of this rank (the shared loader's step).
public typealias SegmentationLoaderStep = LoaderStep

/// Why a segmentation loader stopped (the shared loader's error).
public typealias SegmentationLoaderError = LoaderError

/// One batch, in step order.
public struct SegmentationBatch {
    /// The step's position in the loader's step list.
    public let step: Int
    /// [N, 3, H, W] normalised images (N = samples that loaded; broken ones are left out).
    public let images: Tensor
    /// N · H · W labels, row-major per image, 255 ignored.
    public let labels: [Int32]
    /// Data set indices of the N images, in order.
    public let indices: [Int]
    /// Indices of the step's samples that were skipped as broken.
    public let skipped: [Int]
}

/// The segmentation task's loader: the shared `PrefetchLoader` decoding and augmenting samples
/// (`SegmentationDataset.load` + `SegmentationTrainTransform`, a pure function of (seed, epoch,
/// index)) and stacking each step into a crop-sized batch.
public final class SegmentationLoader: @unchecked Sendable {
    /// The data set.
    public let dataset: SegmentationDataset
    /// The training transform.
    public let transform: SegmentationTrainTransform
    private let loader: PrefetchLoader<TransformedSample>

    /// Every step of the run (for this rank); the loader starts at `startStep`.
    public var steps: [SegmentationLoaderStep] { loader.steps }
    /// Largest tolerated share of broken samples among those seen (0 = none).
    public var maxBrokenFraction: Double { loader.maxBrokenFraction }
    /// Samples seen so far (delivered or skipped).
    public var seenCount: Int { loader.seenCount }
    /// Broken samples skipped so far.
    public var brokenCount: Int { loader.brokenCount }

    /// Starts `threads` worker threads preparing `steps[startStep...]` (resume at any step); see
    /// `PrefetchLoader` for `prefetch`, `maxBrokenFraction` and `log`.
    public init(dataset: SegmentationDataset, transform: SegmentationTrainTransform, steps: [SegmentationLoaderStep],
                startStep: Int = 0, threads: Int = 2, prefetch: Int = 4, maxBrokenFraction: Double = 0.01,
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.dataset = dataset; self.transform = transform
        loader = PrefetchLoader(name: "seg-loader", steps: steps, startStep: startStep, threads: threads, prefetch: prefetch,
                                maxBrokenFraction: maxBrokenFraction, log: log) { index, epoch in
            transform.apply(try dataset.load(index), epoch: epoch, index: index)
        }
    }

    /// The next batch in step order, or nil after the last step (or after `close()`).
    /// - Throws: `SegmentationLoaderError` once broken samples exceed `maxBrokenFraction`.
    public func next() throws(SegmentationLoaderError) -> SegmentationBatch? {
        guard let prepared = try loader.next() else { return nil }
        let crop = (transform.cropHeight, transform.cropWidth)
        let n = prepared.samples.count, plane = crop.0 * crop.1
        let images = Tensor(uninitialized: [n, 3, crop.0, crop.1])
        var labels = [Int32](repeating: 0, count: n * plane)
        for (k, entry) in prepared.samples.enumerated() {
            entry.sample.image.withUnsafeBufferPointer { images.data.advanced(by: k * 3 * plane).update(from: $0.baseAddress!, count: 3 * plane) }
            for i in 0..<plane { labels[k * plane + i] = Int32(entry.sample.labels[i]) }
        }
        return SegmentationBatch(step: prepared.step, images: images, labels: labels, indices: prepared.samples.map(\.index),
                                 skipped: prepared.broken.map(\.index))
    }

    /// Stops the workers and waits until every one has returned. Idempotent.
    public func close() { loader.close() }

    /// Number of worker threads still running (0 after `close()`).
    public var runningThreads: Int { loader.runningThreads }
}
