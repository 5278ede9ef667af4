import ArgumentParser
import DepthData
import Foundation

/// `percep-dist eval-depth --pred-dir P --gt-dir G`: VNL's NYU depth metrics over 16-bit PNG
/// depth maps matched by file stem, pooled over every valid pixel of the set.
struct EvalDepth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-depth",
        abstract: "VNL's depth metrics (abs_rel, sq_rel, rms, rms_log, log10, δ1–3, silog) of prediction PNGs against ground-truth PNGs.",
        discussion: "Both folders hold 16-bit grey PNGs matched by file stem; value / --depth-scale is metres and a ground truth of 0 is invalid. Metrics are pooled over every valid pixel of the set, as VNL's evaluate_err accumulates them (not averaged per image).")
    @Option(name: .customLong("pred-dir"), help: "Folder of predicted depth PNGs (16-bit, clamped to [1, 65535]).") var predDir: String
    @Option(name: .customLong("gt-dir"), help: "Folder of ground-truth depth PNGs (16-bit, 0 = invalid).") var gtDir: String
    @Option(name: .customLong("depth-scale"), help: "PNG value per metre.") var depthScale: Double = 1000
    @Option(help: "Evaluation crop r0,r1,c0,c1 (half-open), or 'none'. Default: Eigen's NYU crop.") var crop: String = "45,471,41,601"
    @Flag(help: "Print the metrics as JSON (abs_rel, sq_rel, rms, rms_log, log10, delta1, delta2, delta3, silog; NaN as null).") var json = false

    func run() throws {
        guard depthScale.isFinite, depthScale > 0 else { throw ValidationError("--depth-scale must be a positive number, not \(depthScale)") }
        let region: DepthCrop?
        if crop == "none" { region = nil } else {
            guard let c = DepthCrop(parsing: crop) else { throw ValidationError("--crop must be r0,r1,c0,c1 with r0 < r1 and c0 < c1, or none; not '\(crop)'") }
            region = c
        }
        let (sums, images) = try DepthPredictionFolder.evaluate(predDir: predDir, gtDir: gtDir, scale: depthScale, crop: region)
        let values = sums.values
        if json {
            var object: [String: Any] = ["images": images, "pixels": Int(sums.count)]
            for (name, v) in zip(DepthMetricSums.names, values) { object[name] = v.isFinite ? v : NSNull() }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("\(images) images, \(Int(sums.count)) valid pixels" + (region.map { " in crop \($0.rowStart),\($0.rowEnd),\($0.colStart),\($0.colEnd)" } ?? ""))
        print(DepthMetricSums.names.map { $0.padding(toLength: 8, withPad: " ", startingAt: 0) }.joined(separator: " "))
        print(values.map { String(format: "%-8.4f", $0) }.joined(separator: " "))
    }
}
