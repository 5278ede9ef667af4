import ArgumentParser
import COCO
import Foundation

/// `percep-dist bench coco-eval`: seconds for a whole COCO evaluation (read the ground truth and the
/// results from disk, evaluate, accumulate, summarize), best of 3, on the golden val2014 excerpt
/// and on a larger set made by replicating it (`COCOReplica`).
///
/// `tools/bench_coco_eval.py` times pycocotools and faster-coco-eval on the same files (the
/// synthetic ones via `--write-synthetic`), so the ratios in docs/benchmarks.md compare like with like.
struct BenchCOCOEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coco-eval",
        abstract: "Time COCO bbox and segm evaluation (load + evaluate + accumulate + summarize) on the golden and a synthetic set.")

    @Option(help: "Golden folder (instances_val2014_100.json and the fake results; default: ../shared/data/coco-val2014-100 from the repository root).")
    var golden: String?
    @Option(help: "Images in the synthetic set: the golden set is copied ⌈N / golden images⌉ times.") var images = 5000
    @Option(name: .customLong("write-synthetic"), help: "Keep the synthetic instances/results JSON in this folder (created if missing).")
    var writeSynthetic: String?
    @Option(help: "Timed repetitions per measurement (the best is reported).") var repeats = 3
    @Flag(help: "Print JSON.") var json = false

    static let gtName = "instances_val2014_100.json"
    static let resultNames: [(IoUType, String)] = [
        (.bbox, "instances_val2014_fakebbox100_results.json"), (.segm, "instances_val2014_fakesegm100_results.json"),
    ]

    func validate() throws {
        guard images > 0, repeats > 0 else { throw ValidationError("--images and --repeats must be positive") }
    }

    func run() throws {
        let goldenDir = URL(fileURLWithPath: golden ?? Self.defaultGoldenFolder())
        let gtPath = goldenDir.appendingPathComponent(Self.gtName).path
        let resultPaths = Self.resultNames.map { goldenDir.appendingPathComponent($0.1).path }
        for path in [gtPath] + resultPaths where !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("golden COCO file missing: \(path) (pass --golden DIR)")
        }

        // The synthetic set goes through files too, so both sets are timed from disk as the
        // Python twins are.
        let gtData = try Self.read(gtPath)
        let goldenImages = try COCODataset(jsonData: gtData, path: gtPath).images.count
        let copies = max(1, (images + goldenImages - 1) / max(goldenImages, 1))
        let replica = try COCOReplica(groundTruth: gtData, results: try resultPaths.map(Self.read), copies: copies,
                                      groundTruthPath: gtPath, resultsPaths: resultPaths)
        let keep = writeSynthetic != nil
        let synthDir = URL(fileURLWithPath: writeSynthetic ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("percep-coco-bench-\(UUID().uuidString)").path)
        do {
            try FileManager.default.createDirectory(at: synthDir, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create \(synthDir.path): \(error.localizedDescription)")
        }
        defer { if !keep { try? FileManager.default.removeItem(at: synthDir) } }
        let synthGT = synthDir.appendingPathComponent("instances.json").path
        let synthResults = Self.resultNames.map { synthDir.appendingPathComponent("results_\($0.0.rawValue).json").path }
        try Self.write(replica.groundTruth, to: synthGT)
        for (data, path) in zip(replica.results, synthResults) { try Self.write(data, to: path) }

        var goldenTimes: [IoUType: Double] = [:], synthTimes: [IoUType: Double] = [:]
        for (i, (type, _)) in Self.resultNames.enumerated() {
            goldenTimes[type] = try Self.time(gt: gtPath, results: resultPaths[i], type: type, repeats: repeats)
            synthTimes[type] = try Self.time(gt: synthGT, results: synthResults[i], type: type, repeats: repeats)
        }
        let g = (goldenTimes[.bbox] ?? 0, goldenTimes[.segm] ?? 0), s = (synthTimes[.bbox] ?? 0, synthTimes[.segm] ?? 0)
        if json {
            print("{\"golden\": {\"bbox_seconds\": \(g.0), \"segm_seconds\": \(g.1), \"images\": \(goldenImages)}, "
                  + "\"synthetic\": {\"bbox_seconds\": \(s.0), \"segm_seconds\": \(s.1), \"images\": \(replica.imageCount), "
                  + "\"annotations\": \(replica.annotationCount)}, \"repeats\": \(repeats), \"threads\": 1}")
        } else {
            print("COCO evaluation (load + evaluate + accumulate + summarize), best of \(repeats), 1 thread")
            print(String(format: "golden    (%5d images): bbox %.4f s, segm %.4f s", goldenImages, g.0, g.1))
            print(String(format: "synthetic (%5d images): bbox %.4f s, segm %.4f s", replica.imageCount, s.0, s.1))
            if keep { print("synthetic files: \(synthDir.path)") }
        }
    }

    /// `<repository>/../shared/data/coco-val2014-100`, the repository being the current directory
    /// (the scripts run from there).
    static func defaultGoldenFolder() -> String {
        URL(fileURLWithPath: FileManager.default.currentDirectoryPath).deletingLastPathComponent()
            .appendingPathComponent("shared/data/coco-val2014-100").path
    }

    /// Best wall-clock seconds of `repeats` full evaluations from the files.
    static func time(gt: String, results: String, type: IoUType, repeats: Int) throws -> Double {
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let dataset = try COCODataset(contentsOf: gt)
            let detections = try COCOResults.load(contentsOf: results, groundTruth: dataset)
            let evaluation = try COCOEvaluator(groundTruth: dataset, results: detections, iouType: type,
                                               resultsPath: results).evaluate()
            // Summarize as the Python twins do (they print the 12 lines; formatting is part of the cost).
            let lines = evaluation.summaryLines
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            guard lines.count == 12 else { throw COCOError.evaluation("summary has \(lines.count) lines, not 12") }
            best = min(best, dt)
        }
        return best
    }

    static func read(_ path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw COCOError.unreadableFile(path: path, reason: error.localizedDescription)
        }
    }

    static func write(_ data: Data, to path: String) throws {
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw COCOError.unreadableFile(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
