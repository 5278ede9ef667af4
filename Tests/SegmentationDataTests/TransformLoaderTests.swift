import Foundation
import ImageCodecs
import PercepCore
@testable import SegmentationData
import XCTest

/// Augmentation as a pure function of (seed, epoch, index); the prefetching loader's order,
/// skipping, stopping, resuming and shutdown.
final class TransformLoaderTests: XCTestCase {
    func sample(height: Int, width: Int) throws -> SegmentationSample {
        let labels = (0..<(height * width)).map { UInt8(($0 / 7) % 5) }
        return SegmentationSample(image: try testImage(height: height, width: width), labels: LabelMap(height: height, width: width, values: labels))
    }

    func testAugmentationIsAPureFunctionOfSeedEpochIndex() throws {
        let s = try sample(height: 40, width: 60)
        let t = SegmentationTrainTransform(scaleLong: 60, scaleShort: 40, cropHeight: 32, cropWidth: 32, seed: 7)
        let a = t.apply(s, epoch: 3, index: 11), b = t.apply(s, epoch: 3, index: 11)
        XCTAssertEqual(a.image, b.image); XCTAssertEqual(a.labels, b.labels)
        // Another epoch, index or seed draws differently (scale, crop or flip), so some of 8 differ.
        let others = (0..<8).map { t.apply(s, epoch: 4 + $0, index: 11).image }
        XCTAssertTrue(others.contains { $0 != a.image })
        var t2 = t; t2.seed = 8
        XCTAssertTrue((0..<8).contains { t2.apply(s, epoch: $0, index: 11).image != t.apply(s, epoch: $0, index: 11).image })
        XCTAssertEqual(a.image.count, 3 * 32 * 32); XCTAssertEqual(a.labels.count, 32 * 32)
        // Labels stay labels: nearest resampling invents no values.
        XCTAssertTrue(Set(a.labels).isSubset(of: [0, 1, 2, 3, 4, 255]))
    }

    func testSmallImagesArePaddedWithIgnoreAndZero() throws {
        let s = try sample(height: 10, width: 20)
        // Ratio fixed at 1, base scale (20, 10): the image keeps its 10 × 20 size inside a 16 × 24 crop.
        let t = SegmentationTrainTransform(scaleLong: 20, scaleShort: 10, ratioRange: 1...1, cropHeight: 16, cropWidth: 24,
                                           catMaxRatio: 1, flipProbability: 0, seed: 1)
        let out = t.apply(s, epoch: 0, index: 0)
        for y in 0..<16 {
            for x in 0..<24 {
                let inside = y < 10 && x < 20
                XCTAssertEqual(out.labels[y * 24 + x] == 255, !inside || s.labels.values[y * 20 + x] == 255, "(\(y), \(x))")
                if !inside { for c in 0..<3 { XCTAssertEqual(out.image[c * 384 + y * 24 + x], 0) } }
            }
        }
        // Unpadded pixels are the normalised image: (v − mean) / std.
        XCTAssertEqual(out.image[0], (Float(s.image.pixels[0]) - 123.675) / 58.395, accuracy: 1e-5)
        XCTAssertEqual(Array(out.labels[0..<20]), Array(s.labels.values[0..<20]))
    }

    func testFlipMirrorsImageAndLabels() throws {
        let s = try sample(height: 10, width: 20)
        let plain = SegmentationTrainTransform(scaleLong: 20, scaleShort: 10, ratioRange: 1...1, cropHeight: 10, cropWidth: 20,
                                               catMaxRatio: 1, flipProbability: 0, seed: 1)
        var flipped = plain; flipped.flipProbability = 1
        let a = plain.apply(s, epoch: 0, index: 0), b = flipped.apply(s, epoch: 0, index: 0)
        for y in 0..<10 { for x in 0..<20 {
            XCTAssertEqual(a.labels[y * 20 + x], b.labels[y * 20 + 19 - x])
            XCTAssertEqual(a.image[200 + y * 20 + x], b.image[200 + y * 20 + 19 - x])
        } }
    }

    func testRescaleAndResizeFollowOpenCV() throws {
        // mmcv rescale_size: (2048, 512) bound on a 375 × 500 image → factor 512/375.
        let r = SegmentationImageOps.rescaledSize(height: 375, width: 500, long: 2048, short: 512)
        XCTAssertEqual(r.height, 512); XCTAssertEqual(r.width, 683)
        // cv2.resize INTER_LINEAR of [[0, 100]] to width 4: half-pixel centres → 0, 25, 75, 100.
        let img = try RGBImage(height: 1, width: 2, pixels: [0, 0, 0, 100, 100, 100])
        XCTAssertEqual(OpenCVImageOps.resizeBilinear(img, height: 1, width: 4).pixels.enumerated().filter { $0.offset % 3 == 0 }.map(\.element),
                       [0, 25, 75, 100])
        // INTER_NEAREST: floor(dst · src/dst).
        let labels = LabelMap(height: 1, width: 3, values: [1, 2, 3])
        XCTAssertEqual(SegmentationImageOps.resizeNearest(labels, height: 1, width: 6).values, [1, 1, 2, 2, 3, 3])
        XCTAssertEqual(SegmentationImageOps.resizeNearest(labels, height: 1, width: 2).values, [1, 2])
    }

    func testEvalTransformKeepsLabelsAtFullSize() throws {
        let s = try sample(height: 30, width: 40)
        let out = SegmentationEvalTransform(scale: (long: 80, short: 20)).apply(s)
        XCTAssertEqual(out.height, 20); XCTAssertEqual(out.width, 27)
        XCTAssertEqual(out.labelHeight, 30); XCTAssertEqual(out.labels, s.labels.values)
        XCTAssertEqual(SegmentationEvalTransform(scale: nil).apply(s).image, OpenCVImageOps.normalize(s.image, .imagenet))
    }

    // MARK: loader

    func synthDataset(_ dir: TempDir, train: Int) throws -> SegmentationDataset {
        let root = try SegmentationSynth.write(to: dir.path, train: train, val: 1, height: 24, width: 24, seed: 5)
        return try SegmentationDataset(format: .ade20k, root: root, split: .train)
    }

    func drain(_ loader: SegmentationLoader) throws -> [SegmentationBatch] {
        var out = [SegmentationBatch]()
        while let b = try loader.next() { out.append(b) }
        return out
    }

    func values(_ t: Tensor) -> [Float] { Array(UnsafeBufferPointer(start: t.data, count: t.count)) }

    func testLoaderOrderIsIndependentOfThreadsAndRanks() throws {
        let dir = TempDir()
        let ds = try synthDataset(dir, train: 8)
        let t = SegmentationTrainTransform(scaleLong: 32, scaleShort: 24, cropHeight: 16, cropWidth: 16, seed: 3)
        // Global batches of 4 over two epochs.
        let global = [(0, [5, 1, 7, 2]), (0, [0, 3, 6, 4]), (1, [2, 6, 0, 5]), (1, [7, 4, 1, 3])]
        let oneRank = global.map { SegmentationLoaderStep(epoch: $0.0, indices: $0.1) }
        let single = try drain(SegmentationLoader(dataset: ds, transform: t, steps: oneRank, threads: 1, prefetch: 1))
        let many = try drain(SegmentationLoader(dataset: ds, transform: t, steps: oneRank, threads: 3, prefetch: 2))
        XCTAssertEqual(single.map(\.step), [0, 1, 2, 3])
        XCTAssertEqual(single.map(\.indices), global.map(\.1))
        for (a, b) in zip(single, many) {
            XCTAssertEqual(values(a.images), values(b.images)); XCTAssertEqual(a.labels, b.labels)
            XCTAssertEqual(a.images.shape, [4, 3, 16, 16]); XCTAssertEqual(a.labels.count, 4 * 256)
        }
        // Two ranks, each with half of every global batch (rank stride): every sample is identical
        // to its place in the one-rank batch.
        let plane = 3 * 256
        for rank in 0..<2 {
            let positions = Array(stride(from: rank, to: 4, by: 2))
            let steps = global.map { step in SegmentationLoaderStep(epoch: step.0, indices: positions.map { step.1[$0] }) }
            let batches = try drain(SegmentationLoader(dataset: ds, transform: t, steps: steps, threads: 2))
            XCTAssertEqual(batches.count, 4)
            for (s, batch) in batches.enumerated() {
                let mine = values(batch.images), whole = values(single[s].images)
                for (k, position) in positions.enumerated() {
                    let a: [Float] = Array(mine[k * plane..<(k + 1) * plane])
                    let b: [Float] = Array(whole[position * plane..<(position + 1) * plane])
                    XCTAssertEqual(a, b, "rank \(rank) step \(s) sample \(k)")
                    let la: [Int32] = Array(batch.labels[k * 256..<(k + 1) * 256])
                    let lb: [Int32] = Array(single[s].labels[position * 256..<(position + 1) * 256])
                    XCTAssertEqual(la, lb)
                }
            }
        }
        // Resume at step 2: the same batches as steps 2 and 3 of the full run.
        let resumed = try drain(SegmentationLoader(dataset: ds, transform: t, steps: oneRank, startStep: 2, threads: 2))
        XCTAssertEqual(resumed.map(\.step), [2, 3])
        for (a, b) in zip(resumed, single[2...]) { XCTAssertEqual(values(a.images), values(b.images)); XCTAssertEqual(a.labels, b.labels) }
    }

    final class Log: @unchecked Sendable {
        let lock = NSLock(); var lines: [String] = []
        func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    }

    func testBrokenSamplesAreSkippedCountedAndStopTheLoaderPastTheFraction() throws {
        let dir = TempDir()
        let ds = try synthDataset(dir, train: 6)
        // Truncate sample 2's image and put an out-of-range label into sample 4's annotation.
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: ds.files[2].image))
        try jpeg.prefix(jpeg.count / 3).write(to: URL(fileURLWithPath: ds.files[2].image))
        try Data(greyPNG(height: 24, width: 24, .init(repeating: 40, count: 576))).write(to: URL(fileURLWithPath: ds.files[4].annotation))
        let t = SegmentationTrainTransform(scaleLong: 24, scaleShort: 24, cropHeight: 16, cropWidth: 16, seed: 3)
        let steps = [[0, 1, 2], [3, 4, 5]].map { SegmentationLoaderStep(epoch: 0, indices: $0) }

        let log = Log()
        let tolerant = SegmentationLoader(dataset: ds, transform: t, steps: steps, threads: 2, maxBrokenFraction: 0.34, log: log.add)
        let batches = try drain(tolerant)
        XCTAssertEqual(batches.map(\.indices), [[0, 1], [3, 5]])
        XCTAssertEqual(batches.map(\.skipped), [[2], [4]])
        XCTAssertEqual(batches[0].images.shape, [2, 3, 16, 16])
        XCTAssertEqual(tolerant.brokenCount, 2); XCTAssertEqual(tolerant.seenCount, 6)
        XCTAssertEqual(log.lines.count, 2)
        XCTAssertTrue(log.lines[0].contains(ds.files[2].image) && log.lines[0].contains("JPEG"), log.lines[0])
        XCTAssertTrue(log.lines[1].contains(ds.files[4].annotation) && log.lines[1].contains("label value 40"), log.lines[1])

        // 20 %: the first broken sample is tolerated (1 of 3 seen), the second is not (2 of 6).
        let strict = SegmentationLoader(dataset: ds, transform: t, steps: steps, threads: 2, maxBrokenFraction: 0.2, log: { _ in })
        XCTAssertEqual(try strict.next()?.skipped, [2])
        XCTAssertThrowsError(try strict.next()) { error in
            XCTAssertTrue("\(error)".contains("2 of 6 samples broken") && "\(error)".contains(ds.files[4].annotation), "\(error)")
        }
        XCTAssertEqual(strict.runningThreads, 0)
        XCTAssertThrowsError(try strict.next())   // stays stopped
        // 0: none tolerated.
        let none = SegmentationLoader(dataset: ds, transform: t, steps: steps, threads: 2, maxBrokenFraction: 0, log: { _ in })
        XCTAssertThrowsError(try none.next()) { error in
            XCTAssertTrue("\(error)".contains("1 of 3 samples broken") && "\(error)".contains(ds.files[2].image), "\(error)")
        }
    }

    func testCloseMidRunJoinsEveryThread() throws {
        let dir = TempDir()
        let ds = try synthDataset(dir, train: 4)
        let t = SegmentationTrainTransform(scaleLong: 24, scaleShort: 24, cropHeight: 8, cropWidth: 8, seed: 3)
        let steps = (0..<50).map { SegmentationLoaderStep(epoch: $0, indices: [$0 % 4]) }
        let loader = SegmentationLoader(dataset: ds, transform: t, steps: steps, threads: 3, prefetch: 2)
        XCTAssertEqual(try loader.next()?.step, 0)
        loader.close()
        XCTAssertEqual(loader.runningThreads, 0)
        XCTAssertNil(try loader.next())
        // Dropping a loader whose workers wait for queue room must not hang or crash (deinit closes).
        for _ in 0..<3 { _ = SegmentationLoader(dataset: ds, transform: t, steps: steps, threads: 2, prefetch: 1) }
    }
}
