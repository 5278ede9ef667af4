import Foundation

/// A line chart: named series of (x, y) points over shared axes, rendered to SVG text or to an
/// RGB raster (for PNG) by the same layout code, so both formats show the same picture.
public struct LineChart {
    /// One curve.
    public struct Series {
        /// Legend text.
        public var name: String
        /// Points in x order; non-finite y values are gaps.
        public var points: [(x: Double, y: Double)]

        /// A series `name` with `points`.
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    /// Title above the plot area.
    public var title: String
    /// Label under the x axis.
    public var xLabel: String
    /// The curves, drawn in palette order.
    public var series: [Series]
    /// Plots log10(y) (losses spanning decades); non-positive values become gaps.
    public var logY: Bool

    /// A chart titled `title` with `series`.
    public init(title: String, xLabel: String = "iteration", series: [Series], logY: Bool = false) {
        self.title = title
        self.xLabel = xLabel
        self.series = series
        self.logY = logY
    }

    /// Colours of the curves (matplotlib's tab10 order), RGB.
    static let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ]

    /// Where everything goes on a `width` × `height` canvas: plot rectangle, data ranges, ticks.
    struct Layout {
        let plot: (x0: Double, y0: Double, x1: Double, y1: Double)
        let xRange: (Double, Double), yRange: (Double, Double)
        let xTicks: [Double], yTicks: [Double]

        func px(_ x: Double) -> Double { plot.x0 + (x - xRange.0) / (xRange.1 - xRange.0) * (plot.x1 - plot.x0) }
        func py(_ y: Double) -> Double { plot.y1 - (y - yRange.0) / (yRange.1 - yRange.0) * (plot.y1 - plot.y0) }
    }

    /// The value plotted for `y` (log10 when `logY`), nil for a gap.
    func plotted(_ y: Double) -> Double? {
        guard y.isFinite else { return nil }
        if logY { return y > 0 ? log10(y) : nil }
        return y
    }

    func layout(width: Int, height: Int) -> Layout {
        let xs = series.flatMap { $0.points.map(\.x) }.filter(\.isFinite)
        let ys = series.flatMap { $0.points.compactMap { plotted($0.y) } }
        var xr = (xs.min() ?? 0, xs.max() ?? 1), yr = (ys.min() ?? 0, ys.max() ?? 1)
        if xr.1 <= xr.0 { xr = (xr.0 - 0.5, xr.0 + 0.5) }
        if yr.1 <= yr.0 { yr = (yr.0 - 0.5, yr.0 + 0.5) }
        let pad = (yr.1 - yr.0) * 0.05
        yr = (yr.0 - pad, yr.1 + pad)
        let plot = (x0: 70.0, y0: 30.0, x1: Double(width) - 150, y1: Double(height) - 45)
        return Layout(plot: plot, xRange: xr, yRange: yr, xTicks: Self.ticks(xr), yTicks: Self.ticks(yr))
    }

    /// About five round tick values (1, 2 or 5 × 10^k apart) inside `range`.
    static func ticks(_ range: (Double, Double)) -> [Double] {
        let span = range.1 - range.0
        let raw = span / 5, magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var out: [Double] = []
        var t = ceil(range.0 / step) * step
        // A step below the values' precision (huge iteration numbers 16 apart) would never
        // advance t; an axis needs a handful of ticks anyway.
        while t <= range.1 + step * 1e-9, t + step > t, out.count < 64 {
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return out
    }

    /// Tick label: compact decimal, or 10^k values when the axis is logarithmic.
    func tickText(_ v: Double, logAxis: Bool) -> String {
        if logAxis { return Self.number(pow(10, v)) }
        return Self.number(v)
    }

    static func number(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.0e", v) }
        if a >= 100 || v == v.rounded() { return String(format: "%.0f", v) }
        var s = String(format: "%.4f", v)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }

    /// The drawable runs of a series: consecutive points without gaps, in pixels.
    func polylines(_ s: Series, _ l: Layout) -> [[(Double, Double)]] {
        var runs: [[(Double, Double)]] = [[]]
        for p in s.points {
            if p.x.isFinite, let y = plotted(p.y) {
                runs[runs.count - 1].append((l.px(p.x), l.py(y)))
            } else if !runs[runs.count - 1].isEmpty {
                runs.append([])
            }
        }
        return runs.filter { !$0.isEmpty }
    }
}
