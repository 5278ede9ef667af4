import ArgumentParser
import COCO
import Foundation

/// `percep-dist coco-eval`: pycocotools-identical box or mask evaluation of a results file.
struct COCOEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coco-eval",
        abstract: "Evaluate COCO detection results exactly as pycocotools' COCOeval (default parameters).")

    @Option(help: "Ground-truth instances JSON (COCO format).") var gt: String
    @Option(help: "Results JSON: a list of {image_id, category_id, score, bbox | segmentation}.") var results: String
    @Option(name: .customLong("iou-type"), help: "bbox or segm.") var iouType: String
    @Flag(help: "Print {\"stats\": [12 numbers], \"per_category\": {name: AP}}.") var json = false

    func validate() throws {
        guard IoUType(rawValue: iouType) != nil else {
            throw ValidationError("--iou-type must be bbox or segm, not '\(iouType)'")
        }
    }

    func run() throws {
        let type = IoUType(rawValue: iouType) ?? .bbox
        let dataset = try COCODataset(contentsOf: gt)
        let detections = try COCOResults.load(contentsOf: results, groundTruth: dataset)
        let evaluation = try COCOEvaluator(groundTruth: dataset, results: detections, iouType: type,
                                           resultsPath: results).evaluate()
        if json {
            print(Self.json(evaluation))
        } else {
            for line in evaluation.summaryLines { print(line) }
        }
    }

    /// JSON text with numbers in Swift's shortest round-trip form (JSONSerialization on Linux may
    /// print fewer digits), so the stats survive a round trip bit for bit.
    static func json(_ e: COCOEvaluation) -> String {
        let stats = e.stats.map { "\($0)" }.joined(separator: ", ")
        let perCategory = zip(e.categories, e.perCategoryAP).map { category, ap in
            "\(quoted(category.name)): \(ap)"
        }.joined(separator: ", ")
        return "{\"stats\": [\(stats)], \"per_category\": {\(perCategory)}}"
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
