import ArgumentParser
import Foundation
import ImageCodecs
import Plot
import Study

/// `percep-dist plot OUTPUT_DIR`: renders the run's loss, evaluation and learning-rate curves
/// from `OUTPUT_DIR/metrics.jsonl` to SVG and PNG files beside it, without Python.
/// `percep-dist plot RESULTS.json` renders a reproduction study's bar chart (mIoU per row, mean
/// ± std over seeds, the baseline as a line) to `mIoU.svg`.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Render loss, evaluation and learning-rate curves of a run (OUTPUT_DIR/metrics.jsonl) to SVG and PNG.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case svg, png }

    @Argument(help: "The run's OUTPUT_DIR (holding metrics.jsonl), or a study's results.json.") var outputDir: String
    @Option(help: "Where to write the images (default: OUTPUT_DIR).") var out: String?
    @Option(parsing: .upToNextOption, help: "Formats to write: svg, png (default: both).") var format: [Format] = [.svg, .png]
    @Option(help: "Image size in pixels, WIDTH,HEIGHT.") var size = "800,450"

    func run() throws {
        let dims = size.split(separator: ",").compactMap { Int($0) }
        guard dims.count == 2, dims.allSatisfy({ (200...8000).contains($0) }) else {
            throw ValidationError("--size must be WIDTH,HEIGHT between 200 and 8000 pixels, got '\(size)'")
        }
        if outputDir.hasSuffix(".json") { return try plotStudy(width: dims[0]) }
        let curves = try TrainingCurves(metricsFile: (outputDir as NSString).appendingPathComponent("metrics.jsonl"))
        let directory = out ?? outputDir
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (stem, chart) in curves.charts() {
            for f in format {
                let path = (directory as NSString).appendingPathComponent("\(stem).\(f.rawValue)")
                let data: Data
                switch f {
                case .svg: data = Data(chart.svg(width: dims[0], height: dims[1]).utf8)
                case .png: data = Data(try PNG.encode(try chart.raster(width: dims[0], height: dims[1])))
                }
                guard FileManager.default.createFile(atPath: path, contents: data) else {
                    throw ValidationError("cannot write \(path)")
                }
                print(path)
            }
        }
    }

    /// The study's bar charts (SVG only; mIoU.svg, and instance.svg and depth.svg when those
    /// tasks have runs) into `--out` or beside results.json.
    func plotStudy(width: Int) throws {
        let results: StudyResults
        do { results = try StudyResults.load(outputDir) } catch { throw ValidationError("\(error)") }
        let directory = out ?? (outputDir as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true)
        let segmentation = ((directory.isEmpty ? "." : directory) as NSString).appendingPathComponent("mIoU.svg")
        let charts = StudyReport(results: results).charts(beside: segmentation)
        guard !charts.isEmpty else { throw ValidationError("\(outputDir): the study holds no run to plot") }
        for (path, chart) in charts {
            guard FileManager.default.createFile(atPath: path, contents: Data(chart.svg(width: width).utf8)) else {
                throw ValidationError("cannot write \(path)")
            }
            print(path)
        }
    }
}
