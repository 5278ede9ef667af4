import Foundation
import PercepCore

/// One training step of this rank: the epoch (for augmentation) and the data set indices of its
/// share of the global batch, as the trainer's sampler gives them.
public struct SegmentationLoaderStep: Equatable, Sendable {
    /// The epoch the step belongs to.
    public let epoch: Int
    /// Data set indices of this rank's samples.
    public let indices: [Int]
    /// A step.
    public init(epoch: Int, indices: [Int]) { self.epoch = epoch; self.indices = indices }
}

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

/// Why a loader stopped.
public struct SegmentationLoaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The message, naming the last broken file.
    public let message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// Decodes and augments samples on background threads, ahead of the trainer, into a bounded
/// queue, and hands out batches strictly in step order.
///
/// Threads claim whole steps in order but at most `prefetch` steps beyond the one the trainer is
/// waiting for, so memory stays bounded. Augmentation depends only on (seed, epoch, index), so
/// which thread handles a step changes nothing. A sample that fails to load is left out of its
/// batch, reported on stderr (path and problem) and counted, in step order; once the broken
/// samples exceed `maxBrokenFraction` of those seen, `next()` throws. `close()` (also run on
/// deinit) wakes and joins every thread. One consumer thread calls `next()`.
public final class SegmentationLoader: @unchecked Sendable {
    /// The data set.
    public var dataset: SegmentationDataset { core.dataset }
    /// The training transform.
    public var transform: SegmentationTrainTransform { core.transform }
    /// Every step of the run (for this rank); the loader starts at `startStep`.
    public var steps: [SegmentationLoaderStep] { core.steps }
    /// Largest tolerated share of broken samples among those seen (0 = none).
    public let maxBrokenFraction: Double

    // The threads retain the core, not the loader, so dropping the last reference to the loader
    // runs deinit → close() even while workers wait for room in the queue.
    private let core: LoaderCore
    private let log: @Sendable (String) -> Void

    /// Samples seen so far (delivered or skipped).
    public private(set) var seenCount = 0
    /// Broken samples skipped so far.
    public private(set) var brokenCount = 0
    private var failure: SegmentationLoaderError?

    /// Starts `threads` worker threads preparing `steps[startStep...]` (resume at any step).
    /// - Parameters:
    ///   - prefetch: steps prepared ahead of the one being consumed (≥ 1).
    ///   - maxBrokenFraction: the loader stops once broken samples exceed this share of those seen.
    ///   - log: where broken-sample reports go (stderr by default).
    public init(dataset: SegmentationDataset, transform: SegmentationTrainTransform, steps: [SegmentationLoaderStep],
                startStep: Int = 0, threads: Int = 2, prefetch: Int = 4, maxBrokenFraction: Double = 0.01,
                log: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        precondition(threads >= 1 && prefetch >= 1 && (0...steps.count).contains(startStep), "loader: threads, prefetch ≥ 1 and startStep in 0…\(steps.count)")
        self.maxBrokenFraction = maxBrokenFraction; self.log = log
        core = LoaderCore(dataset: dataset, transform: transform, steps: steps, startStep: startStep, prefetch: prefetch, threads: threads)
        for t in 0..<threads {
            let core = self.core
            let thread = Thread { core.work() }
            thread.name = "seg-loader-\(t)"
            thread.start()
        }
    }

    deinit { core.close() }

    /// The next batch in step order, or nil after the last step (or after `close()`).
    /// - Throws: `SegmentationLoaderError` once broken samples exceed `maxBrokenFraction`
    ///   (the loader is closed then, and every later call throws the same error).
    public func next() throws(SegmentationLoaderError) -> SegmentationBatch? {
        if let failure { throw failure }
        guard let (s, prepared) = core.take() else { return nil }
        seenCount += core.steps[s].indices.count
        brokenCount += prepared.broken.count
        for b in prepared.broken { log("seg-loader: skipped sample \(b.index) (step \(s)): \(b.message)") }
        if !prepared.broken.isEmpty && Double(brokenCount) > maxBrokenFraction * Double(seenCount) {
            let error = SegmentationLoaderError(
                "\(brokenCount) of \(seenCount) samples broken, more than the allowed fraction \(maxBrokenFraction); last: \(prepared.broken.last!.message)")
            failure = error
            core.close()
            throw error
        }
        return Self.stack(prepared, step: s, crop: (core.transform.cropHeight, core.transform.cropWidth))
    }

    private static func stack(_ p: LoaderCore.Prepared, step: Int, crop: (Int, Int)) -> SegmentationBatch {
        let n = p.samples.count, plane = crop.0 * crop.1
        let images = Tensor(uninitialized: [n, 3, crop.0, crop.1])
        var labels = [Int32](repeating: 0, count: n * plane)
        for (k, entry) in p.samples.enumerated() {
            entry.sample.image.withUnsafeBufferPointer { images.data.advanced(by: k * 3 * plane).update(from: $0.baseAddress!, count: 3 * plane) }
            for i in 0..<plane { labels[k * plane + i] = Int32(entry.sample.labels[i]) }
        }
        return SegmentationBatch(step: step, images: images, labels: labels, indices: p.samples.map(\.index), skipped: p.broken.map(\.index))
    }

    /// Stops the workers and waits until every one has returned. Idempotent; prepared batches
    /// not yet delivered are dropped.
    public func close() { core.close() }

    /// Number of worker threads still running (0 after `close()`).
    public var runningThreads: Int { core.runningThreads }
}

/// The state the worker threads share with the consumer, behind one condition variable.
private final class LoaderCore: @unchecked Sendable {
    struct Prepared {
        var samples: [(index: Int, sample: TransformedSample)] = []
        var broken: [(index: Int, message: String)] = []
    }

    let dataset: SegmentationDataset
    let transform: SegmentationTrainTransform
    let steps: [SegmentationLoaderStep]
    let prefetch: Int
    private let condition = NSCondition()
    private var results: [Int: Prepared] = [:]
    private var nextToClaim: Int
    private var nextToDeliver: Int
    private var closed = false
    private var running: Int

    init(dataset: SegmentationDataset, transform: SegmentationTrainTransform, steps: [SegmentationLoaderStep],
         startStep: Int, prefetch: Int, threads: Int) {
        self.dataset = dataset; self.transform = transform; self.steps = steps; self.prefetch = prefetch
        nextToClaim = startStep; nextToDeliver = startStep; running = threads
    }

    /// A worker: claims the next step while it is within the prefetch window, prepares it outside
    /// the lock, publishes it; returns when closed or when every step is claimed.
    func work() {
        while true {
            condition.lock()
            while !closed && nextToClaim < steps.count && nextToClaim >= nextToDeliver + prefetch { condition.wait() }
            if closed || nextToClaim >= steps.count {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let s = nextToClaim
            nextToClaim += 1
            condition.unlock()

            var prepared = Prepared()
            let step = steps[s]
            for index in step.indices {
                do {
                    let sample = try dataset.load(index)
                    prepared.samples.append((index, transform.apply(sample, epoch: step.epoch, index: index)))
                } catch {
                    prepared.broken.append((index, error.description))
                }
            }
            condition.lock()
            if !closed { results[s] = prepared }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next step's prepared samples, waiting for them; nil at the end or once closed.
    func take() -> (Int, Prepared)? {
        condition.lock()
        defer { condition.unlock() }
        guard nextToDeliver < steps.count else { return nil }
        let s = nextToDeliver
        while results[s] == nil && !closed { condition.wait() }
        guard let prepared = results.removeValue(forKey: s) else { return nil }
        nextToDeliver += 1
        condition.broadcast()
        return (s, prepared)
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        results.removeAll()
        condition.unlock()
    }

    var runningThreads: Int {
        condition.lock(); defer { condition.unlock() }
        return running
    }
}
