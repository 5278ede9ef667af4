import DataLoading
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
        let pairs: [(stem: String, prediction: String, truth: String)]
        do { pairs = try FileListing.pairByStem(predDir: predDir, truthDir: gtDir, suffix: ".png", what: ("prediction", "annotation")) } catch {
            throw SegmentationDataError(path: error.path, problem: error.problem)
        }
        var acc = IoUAccumulator(numClasses: numClasses)
        for (_, predPath, gtPath) in pairs {
            let p: GreyImage, g: GreyImage
            do { p = try ImageFile.readIndices(predPath) } catch { throw SegmentationDataError(path: error.path, problem: error.problem) }
            do { g = try ImageFile.readIndices(gtPath) } catch { throw SegmentationDataError(path: error.path, problem: error.problem) }
            guard p.width == g.width, p.height == g.height else {
                throw SegmentationDataError(path: predPath,
                                            problem: "prediction is \(p.height)×\(p.width) but annotation \(gtPath) is \(g.height)×\(g.width)")
            }
            acc.add(prediction: p.pixels, label: g.pixels, reduceZeroLabel: reduceZeroLabel)
        }
        return acc
    }
}
