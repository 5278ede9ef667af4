import Foundation
import Plot

/// Mean, sample standard deviation and count of a set of numbers.
public struct SampleSummary: Equatable, Sendable {
    /// Number of values.
    public let count: Int
    /// Their mean (NaN when empty).
    public let mean: Double
    /// Sample standard deviation (n − 1 denominator; NaN below two values).
    public let std: Double

    /// The summary of `values`.
    public init(_ values: [Double]) {
        count = values.count
        mean = values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
        let m = mean
        std = values.count < 2 ? .nan : (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
    }

    /// Standard error of the mean, std/√n (NaN below two values).
    public var standardError: Double { count < 2 ? .nan : std / Double(count).squareRoot() }
}

/// The paired comparison of a row with its reference row (the baseline) over the seeds both
/// finished: the mean of the per-seed differences of `metric` (row − baseline) and its standard
/// error. Pairing removes what a seed does to both runs alike (data order, augmentation, the
/// network's initialisation).
public func pairedDifference(_ row: [StudyRunResult], baseline: [StudyRunResult], metric: StudyMetric = .mIoU) -> SampleSummary {
    let base = Dictionary(baseline.compactMap { r in r.value(metric).map { (r.seed, $0) } }, uniquingKeysWith: { a, _ in a })
    return SampleSummary(row.compactMap { r in r.value(metric).flatMap { v in base[r.seed].map { v - $0 } } }.sorted())
}

/// Renders a study's results as the Markdown report (docs/reproduction.md).
public struct StudyReport {
    /// The results.
    public let results: StudyResults
    /// Hand-written interpretation to include (docs/reproduction/notes.md), or empty.
    public let notes: String
    /// The segmentation figure's path relative to the report, or nil for none; the other tasks'
    /// figures lie beside it (`figure(for:beside:)`).
    public let figure: String?

    /// A report of `results`.
    public init(results: StudyResults, notes: String = "", figure: String? = nil) {
        self.results = results; self.notes = notes; self.figure = figure
    }

    /// The chart of every task with runs and where it goes when the segmentation chart goes to
    /// `segmentationFigure` (the others beside it).
    public func charts(beside segmentationFigure: String) -> [(path: String, chart: BarChart)] {
        StudyTask.allCases.compactMap { task in chart(task).map { (Self.figure(for: task, beside: segmentationFigure), $0) } }
    }

    /// The runs of `row`, in seed order.
    public func runs(_ row: String) -> [StudyRunResult] { results.runs.filter { $0.row == row }.sorted { $0.seed < $1.seed } }

    /// Where the chart of `task` goes: the segmentation chart at `figure`, the others beside it
    /// (`instance.svg`, `depth.svg`).
    public static func figure(for task: StudyTask, beside figure: String) -> String {
        task == .segmentation ? figure : ((figure as NSString).deletingLastPathComponent as NSString).appendingPathComponent(task.rawValue + ".svg")
    }

    /// A value (a fraction printed in percent by default) with two decimals.
    static func pct(_ x: Double, scale: Double = 100) -> String { x.isFinite ? String(format: "%.2f", scale * x) : "—" }

    /// "mean ± std (n)" of `metric` over a row's finished runs, with the diverged ones counted.
    func cell(_ row: String, _ metric: StudyMetric = .mIoU) -> String {
        let all = runs(row)
        if all.isEmpty { return "not run" }
        let done = SampleSummary(all.compactMap { $0.value(metric) })
        let diverged = all.filter { !$0.finished }.count
        let pct = { Self.pct($0, scale: metric.scale) }
        var text = done.count == 0 ? "—" : done.count == 1 ? "\(pct(done.mean)) (1 seed)" : "\(pct(done.mean)) ± \(pct(done.std)) (\(done.count))"
        if diverged > 0 { text += ", \(diverged) diverged" }
        return text
    }

    /// A difference with its sign (+, or the minus sign −), in the metric's printed unit.
    static func signed(_ x: Double, scale: Double = 100) -> String { (x >= 0 ? "+" : "−") + String(format: "%.2f", abs(scale * x)) }

    /// "Δ ± SE (pairs)" of `metric` against the row's reference row (empty for a reference row).
    func delta(_ row: String, _ metric: StudyMetric = .mIoU) -> String {
        guard let reference = StudyGrid.row(row)?.pairedWith else { return "" }
        let d = pairedDifference(runs(row), baseline: runs(reference), metric: metric)
        if d.count == 0 { return "—" }
        let signed = Self.signed(d.mean, scale: metric.scale)
        return d.count < 2 ? "\(signed) (1 pair)" : "\(signed) ± \(Self.pct(d.standardError, scale: metric.scale)) (\(d.count))"
    }

    /// Mean wall time of a row's runs.
    func wall(_ row: String) -> String {
        let s = SampleSummary(runs(row).map(\.wallSeconds))
        return s.count == 0 ? "—" : String(format: "%.0f s", s.mean)
    }

    /// The Markdown document.
    public func markdown() -> String {
        var out = "# Reproducing the paper's claims at CPU scale\n\n"
        out += "Generated by `percep-dist study report` from `docs/reproduction/results.json` (the runs of `launch/reproduce.sh`);\n"
        out += "do not edit by hand: the interpretation comes from `docs/reproduction/notes.md`.\n\n"
        for (key, value) in results.environment.sorted(by: { $0.key < $1.key }) { out += "- \(key): \(value)\n" }
        out += "\nmIoU in percent on the synthetic validation set at the last iteration; mean ± sample std over seeds "
        out += "(count in brackets); Δ = the paired difference from the CE baseline over the seeds both ran, mean ± its "
        out += "standard error; paper = the paper's Cityscapes PSPNet-R18 number for the same setting (a different "
        out += "data set and network: compare directions and sizes of effects, not levels). Tables 5 and 7 "
        out += "(instance segmentation, depth) read the same way with their own metrics and reference rows.\n\n"
        if !notes.isEmpty { out += notes.trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n" }
        if let figure, chart(.segmentation) != nil { out += "![mIoU per row, mean ± std over seeds](\(figure))\n\n" }
        for table in StudyGrid.tables {
            out += "## \(table.title)\n\nPaper: \(table.paperNote).\(table.pairing.map { " \($0)." } ?? "")\n\n"
            if let figure, table.task != .segmentation, chart(table.task) != nil {
                out += "![\(table.task.metrics[0].name) per row, mean ± std over seeds](\(Self.figure(for: table.task, beside: figure)))\n\n"
            }
            if table.metrics == [.mIoU] {
                out += "| setting | paper | ours mIoU | Δ vs baseline | wall time per run |\n|---|---|---|---|---|\n"
            } else {
                out += "| setting | " + table.metrics.map { "paper \($0.name) | ours \($0.name) | Δ \($0.name)" }.joined(separator: " | ")
                out += " | wall time per run |\n|---|" + String(repeating: "---|---|---|", count: table.metrics.count) + "---|\n"
            }
            for e in table.entries {
                let cells = zip(table.metrics, e.paper).map { metric, paper in "\(paper) | \(cell(e.row, metric)) | \(delta(e.row, metric))" }
                out += "| \(e.label) | " + cells.joined(separator: " | ") + " | \(wall(e.row)) |\n"
            }
            out += "\n"
        }
        out += perClassTable()
        let diverged = results.runs.filter { !$0.finished }
        if !diverged.isEmpty {
            out += "## Runs that diverged\n\n| row | seed | what the trainer said |\n|---|---|---|\n"
            for r in diverged { out += "| \(r.row) | \(r.seed) | \(r.message ?? "") |\n" }
            out += "\n"
        }
        out += "## Every run\n\nCPU time: user + system seconds of the training process, all threads (not recorded for the earlier runs: —); "
        out += "unlike the wall time it does not count time the run was stopped or waiting for the cores.\n"
        let order = Dictionary(uniqueKeysWithValues: StudyGrid.rows.enumerated().map { ($0.element.id, $0.offset) })
        for kind in StudyTask.allCases {
            // A result of a row no longer in the grid is listed with the segmentation runs.
            let these = results.runs.filter { (StudyGrid.row($0.row)?.task ?? .segmentation) == kind }
                .sorted { (order[$0.row] ?? 99, $0.seed) < (order[$1.row] ?? 99, $1.seed) }
            guard !these.isEmpty else { continue }
            out += kind == .segmentation ? "\n" : "\nRuns of \(kind.title):\n\n"
            out += "| row | seed | status | " + kind.metrics.map(\.name).joined(separator: " | ") + " | iterations | wall time | CPU time |\n"
            out += "|---|---|---|" + String(repeating: "---|", count: kind.metrics.count) + "---|---|---|\n"
            for r in these {
                let values = kind.metrics.map { m in r.value(m).map { Self.pct($0, scale: m.scale) } ?? "—" }
                out += "| \(r.row) | \(r.seed) | \(r.status) | " + values.joined(separator: " | ")
                out += " | \(r.iterations) | \(String(format: "%.0f s", r.wallSeconds)) | \(r.cpuSeconds.map { String(format: "%.0f s", $0) } ?? "—") |\n"
            }
        }
        return out
    }

    /// The rows of `task` that have runs, in grid order: the mean of its first metric with a
    /// ± std whisker, and for segmentation the baseline's mean as the reference line; nil when
    /// the task has no runs.
    public func chart(_ task: StudyTask = .segmentation) -> BarChart? {
        let metric = task.metrics[0]
        let bars = StudyGrid.rows.filter { $0.task == task }.compactMap { row -> BarChart.Bar? in
            let all = runs(row.id)
            guard !all.isEmpty else { return nil }
            let s = SampleSummary(all.compactMap { $0.value(metric) })
            let diverged = all.count - s.count
            let label = row.label + (diverged > 0 ? " (\(diverged) of \(all.count) diverged)" : "")
            return BarChart.Bar(label: label, value: metric.scale * s.mean, error: metric.scale * s.std)
        }
        guard !bars.isEmpty else { return nil }
        guard task == .segmentation else {
            return BarChart(title: "Synthetic \(task.title): \(metric.name) per study row (mean ± std over seeds\(metric.higherIsBetter ? "" : "; lower is better"))",
                            valueLabel: metric.name + " (%)", bars: bars, reference: nil)
        }
        let base = SampleSummary(runs(StudyGrid.baseline).compactMap(\.mIoU)).mean
        return BarChart(title: "Synthetic segmentation: mIoU per study row (mean ± std over seeds)", valueLabel: "mIoU (%)",
                        bars: bars, reference: base.isFinite ? 100 * base : nil)
    }

    /// Per-class IoU of the target rows (a structured loss should show first on thin and rare
    /// classes): mean over seeds, and the paired difference from the baseline.
    func perClassTable() -> String {
        let rows = ["baseline", "percep_teacher", "percep_gt"].filter { !runs($0).isEmpty }
        guard rows.first == StudyGrid.baseline, rows.count > 1 else { return "" }
        let classes = Set(rows.flatMap { runs($0).flatMap { $0.perClassIoU.keys } }).sorted()
        guard !classes.isEmpty else { return "" }
        func mean(_ row: String, _ c: String) -> [Int: Double] {
            Dictionary(runs(row).compactMap { r in (r.perClassIoU[c] ?? nil).map { (r.seed, $0) } }, uniquingKeysWith: { a, _ in a })
        }
        var out = "## Per-class IoU\n\nMean over seeds; Δ paired with the baseline (mean ± standard error).\n\n"
        out += "| class | " + rows.map { StudyGrid.row($0)?.label ?? $0 }.joined(separator: " | ")
        out += " | " + rows.dropFirst().map { "Δ \($0)" }.joined(separator: " | ") + " |\n"
        out += "|---|" + String(repeating: "---|", count: 2 * rows.count - 1) + "\n"
        for c in classes {
            let base = mean("baseline", c)
            // Values in seed order, so the sums (and the printed digits) do not depend on dictionary order.
            func ordered(_ values: [Int: Double]) -> [Double] { values.sorted { $0.key < $1.key }.map(\.value) }
            var line = "| \(c) | " + rows.map { Self.pct(SampleSummary(ordered(mean($0, c))).mean) }.joined(separator: " | ")
            for row in rows.dropFirst() {
                let d = SampleSummary(mean(row, c).sorted { $0.key < $1.key }.compactMap { seed, v in base[seed].map { v - $0 } })
                line += " | " + (d.count == 0 ? "—" : Self.signed(d.mean) + (d.count > 1 ? " ± " + Self.pct(d.standardError) : ""))
            }
            out += line + " |\n"
        }
        return out + "\n"
    }
}
