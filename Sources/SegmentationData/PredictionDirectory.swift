import Foundation
import ImageCodecs

/// Scoring a folder of prediction PNGs against a folder of annotation PNGs.
public enum SegmentationPredictionFolder {
    /// Pairs every `*.png` of `predDir` with the `*.png` of `gtDir` of the same file stem (sorted
    /// by stem) and accumulates mmseg's IoU sums. Predictions hold class indices 0…C−1 (grey or
    /// palette PNG); annotations are read as stored, with `reduceZeroLabel` applied to them only.
    /// - Throws: `SegmentationDataError` naming the files for a stem present on one side only, a
    ///   size mismatch, an unreadable PNG, or empty folders.
    public static func evaluate(predDir: String, gtDir: String, numClasses: Int,
                                reduceZeroLabel: Bool) throws(SegmentationDataError) -> IoUAccumulator {
        let preds = try SegmentationDataset.listing(predDir, suffix: ".png", recursive: false)
        let gts = try SegmentationDataset.listing(gtDir, suffix: ".png", recursive: false)
        if let stem = preds.keys.sorted().first(where: { gts[$0] == nil }) {
            throw SegmentationDataError(path: preds[stem]!, problem: "prediction has no annotation \(gtDir)/\(stem).png")
        }
        if let stem = gts.keys.sorted().first(where: { preds[$0] == nil }) {
            throw SegmentationDataError(path: gts[stem]!, problem: "annotation has no prediction \(predDir)/\(stem).png")
        }
        guard !preds.isEmpty else { throw SegmentationDataError(path: predDir, problem: "no *.png predictions") }
        var acc = IoUAccumulator(numClasses: numClasses)
        for stem in preds.keys.sorted() {
            let p: GreyImage, g: GreyImage
            do { p = try ImageFile.readIndices(preds[stem]!) } catch { throw SegmentationDataError(path: error.path, problem: error.problem) }
            do { g = try ImageFile.readIndices(gts[stem]!) } catch { throw SegmentationDataError(path: error.path, problem: error.problem) }
            guard p.width == g.width, p.height == g.height else {
                throw SegmentationDataError(path: preds[stem]!,
                                            problem: "prediction is \(p.height)×\(p.width) but annotation \(gts[stem]!) is \(g.height)×\(g.width)")
            }
            acc.add(prediction: p.pixels, label: g.pixels, reduceZeroLabel: reduceZeroLabel)
        }
        return acc
    }
}
