import ArgumentParser
import Foundation
import SegmentationData

/// `percep-dist eval-seg`: mmsegmentation's IoUMetric over a data set.
///
/// Inputs come from exactly one option group; today that is `PredictionFolderOptions` (prediction
/// PNGs scored against annotation PNGs). A model mode (config + checkpoint, running inference
/// itself) is meant to be one more option group beside it, chosen in `run()`.
struct EvalSeg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-seg",
        abstract: "Semantic-segmentation mIoU / aAcc exactly as mmsegmentation's IoUMetric.")

    @OptionGroup(title: "Prediction folder") var folders: PredictionFolderOptions
    @Option(name: .customLong("num-classes"), help: "Number of classes C (predictions are 0…C−1, 255 is ignored).") var numClasses: Int
    @Flag(name: .customLong("reduce-zero-label"), help: "Map annotations 0 → 255 (ignored) and v → v−1 first (ADE20K).")
    var reduceZeroLabel = false
    @Flag(help: "Print {\"mIoU\", \"mAcc\", \"aAcc\", \"IoU\": [...], \"Acc\": [...]} as fractions, NaN as null.") var json = false

    func validate() throws {
        guard (1...255).contains(numClasses) else { throw ValidationError("--num-classes must be 1…255, not \(numClasses)") }
        try folders.validate()
    }

    func run() throws {
        let acc = try SegmentationPredictionFolder.evaluate(predDir: folders.predDir!, gtDir: folders.gtDir!,
                                                           numClasses: numClasses, reduceZeroLabel: reduceZeroLabel)
        let r = acc.result
        if json {
            print(Self.json(r))
        } else {
            print(Self.table(r, acc))
        }
    }

    /// JSON with numbers in Swift's shortest round-trip form and NaN as null.
    static func json(_ r: IoUResult) -> String {
        func num(_ x: Double) -> String { x.isNaN ? "null" : "\(x)" }
        func list(_ x: [Double]) -> String { "[" + x.map(num).joined(separator: ", ") + "]" }
        return "{\"mIoU\": \(num(r.mIoU)), \"mAcc\": \(num(r.mAcc)), \"aAcc\": \(num(r.aAcc)), \"IoU\": \(list(r.iou)), \"Acc\": \(list(r.acc))}"
    }

    /// mmseg's per-class table (percent, 2 decimals) and summary line.
    static func table(_ r: IoUResult, _ acc: IoUAccumulator) -> String {
        func pct(_ x: Double) -> String { x.isNaN ? "nan" : String(format: "%.2f", IoUResult.percent(x)) }
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        var lines = [pad("class", 5) + pad("IoU(%)", 10) + pad("Acc(%)", 10) + pad("label px", 12)]
        for c in 0..<r.iou.count {
            lines.append(pad("\(c)", 5) + pad(pct(r.iou[c]), 10) + pad(pct(r.acc[c]), 10) + pad("\(acc.labelArea[c])", 12))
        }
        lines.append("aAcc \(pct(r.aAcc))  mIoU \(pct(r.mIoU))  mAcc \(pct(r.mAcc))")
        return lines.joined(separator: "\n")
    }
}

/// `--pred-dir P --gt-dir G`: score prediction PNGs (class indices) against annotation PNGs
/// matched by file stem.
struct PredictionFolderOptions: ParsableArguments {
    @Option(name: .customLong("pred-dir"), help: "Folder of prediction PNGs (class indices 0…C−1).") var predDir: String?
    @Option(name: .customLong("gt-dir"), help: "Folder of annotation PNGs with the same file stems.") var gtDir: String?

    func validate() throws {
        guard predDir != nil, gtDir != nil else {
            throw ValidationError("give --pred-dir and --gt-dir (folders of prediction and annotation PNGs)")
        }
    }
}
