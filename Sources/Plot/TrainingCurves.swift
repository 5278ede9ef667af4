import Foundation

/// Errors reading a run's metrics for plotting.
public struct PlotError: Error, CustomStringConvertible {
    /// The file involved.
    public let file: String
    /// What is wrong with it.
    public let problem: String

    /// An error about `file`.
    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    /// "file: problem".
    public var description: String { "\(file): \(problem)" }
}

/// The curves of one training run, read from its `metrics.jsonl` (the trainer's JSON lines):
/// loss terms, learning rate and evaluation metrics against the iteration.
public struct TrainingCurves {
    /// Every numeric key except `iteration`, as (iteration, value) points in file order.
    public private(set) var series: [String: [(x: Double, y: Double)]] = [:]

    /// Parses `path`; a line that is not a JSON object with a numeric `iteration` is an error
    /// naming the line, except a truncated last line (a run killed mid-write), which is skipped.
    public init(metricsFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlotError(file: path, "cannot read the file (no metrics.jsonl: has the run logged anything yet?)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true)
        for (number, line) in lines.enumerated() {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8))
            guard let record = object as? [String: Any], let iteration = (record["iteration"] as? NSNumber)?.doubleValue else {
                if number == lines.count - 1 && !data.isEmpty && data.last != UInt8(ascii: "\n") { break }
                throw PlotError(file: path, "line \(number + 1) is not a JSON object with a numeric \"iteration\"")
            }
            for (key, value) in record where key != "iteration" {
                guard let number = value as? NSNumber else {
                    if value is NSNull { series[key, default: []].append((iteration, .nan)) }
                    continue
                }
                series[key, default: []].append((iteration, number.doubleValue))
            }
        }
        if series.isEmpty { throw PlotError(file: path, "no records") }
    }

    /// The standard charts: losses (`total_loss` and every `loss_*`, log scale), evaluation
    /// metrics (`eval/*`, without the per-class `eval/IoU/<class>` details), the learning rate, and seconds per step (`time`, `data_time` and, on
    /// several ranks, `comm_wait`); empty groups are left out. Keyed by file stem.
    public func charts() -> [(stem: String, chart: LineChart)] {
        func make(_ keys: [String]) -> [LineChart.Series] {
            keys.sorted().map { LineChart.Series(name: $0, points: series[$0]!.sorted { $0.x < $1.x }) }
        }
        let losses = series.keys.filter { $0 == "total_loss" || $0.hasPrefix("loss_") }
        let evals = series.keys.filter { $0.hasPrefix("eval/") && !$0.hasPrefix("eval/IoU/") }
        var out: [(String, LineChart)] = []
        if !losses.isEmpty { out.append(("loss", LineChart(title: "training loss", series: make(losses), logY: true))) }
        if !evals.isEmpty { out.append(("eval", LineChart(title: "evaluation", series: make(evals)))) }
        if series["lr"] != nil { out.append(("lr", LineChart(title: "learning rate", series: make(["lr"])))) }
        let times = ["time", "data_time", "comm_wait"].filter { series[$0] != nil }
        if !times.isEmpty { out.append(("time", LineChart(title: "seconds per step", series: make(times)))) }
        return out
    }
}
