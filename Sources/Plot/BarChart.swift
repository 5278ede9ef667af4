import Foundation

/// A horizontal bar chart with error bars: one bar per labelled value, a whisker of ± its error,
/// and an optional vertical reference line (the baseline), as SVG.
public struct BarChart {
    /// One bar.
    public struct Bar {
        /// Text left of the bar.
        public var label: String
        /// Bar length; non-finite: no bar (the label says why).
        public var value: Double
        /// Half-length of the whisker (NaN: none).
        public var error: Double

        /// A bar.
        public init(label: String, value: Double, error: Double) {
            self.label = label; self.value = value; self.error = error
        }
    }

    /// Title above the bars.
    public var title: String
    /// Label under the value axis.
    public var valueLabel: String
    /// The bars, top to bottom.
    public var bars: [Bar]
    /// Where to draw the reference line, or nil.
    public var reference: Double?

    /// A chart of `bars`.
    public init(title: String, valueLabel: String, bars: [Bar], reference: Double? = nil) {
        self.title = title; self.valueLabel = valueLabel; self.bars = bars; self.reference = reference
    }

    /// The chart as a standalone SVG document `width` pixels wide (the height follows the bar count).
    public func svg(width: Int = 800) -> String {
        let rowHeight = 22.0, top = 40.0, left = 230.0, right = Double(width) - 30
        let height = Int(top + rowHeight * Double(bars.count) + 50)
        let finite = bars.filter { $0.value.isFinite }
        let lows = finite.map { $0.value - ($0.error.isFinite ? $0.error : 0) } + (reference.map { [$0] } ?? [])
        let highs = finite.map { $0.value + ($0.error.isFinite ? $0.error : 0) } + (reference.map { [$0] } ?? [])
        var range = (lows.min() ?? 0, highs.max() ?? 1)
        if range.1 <= range.0 { range = (range.0 - 0.5, range.0 + 0.5) }
        let pad = (range.1 - range.0) * 0.1
        range = (range.0 - pad, range.1 + pad)
        func x(_ v: Double) -> Double { left + (v - range.0) / (range.1 - range.0) * (right - left) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let bottom = top + rowHeight * Double(bars.count)
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
        font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(Double(width) / 2))" y="20" text-anchor="middle" font-size="14">\(svgEscaped(title))</text>

        """
        for t in LineChart.ticks(range) {
            out += "<line x1=\"\(f(x(t)))\" x2=\"\(f(x(t)))\" y1=\"\(f(top))\" y2=\"\(f(bottom))\" stroke=\"#e0e0e0\"/>\n"
            out += "<text x=\"\(f(x(t)))\" y=\"\(f(bottom + 16))\" text-anchor=\"middle\">\(LineChart.number(t))</text>\n"
        }
        for (i, bar) in bars.enumerated() {
            let y = top + rowHeight * Double(i), mid = y + rowHeight / 2
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(mid + 4))\" text-anchor=\"end\">\(svgEscaped(bar.label))</text>\n"
            guard bar.value.isFinite else { continue }
            let x0 = x(range.0), x1 = x(bar.value)
            out += "<rect x=\"\(f(x0))\" y=\"\(f(y + 4))\" width=\"\(f(max(0, x1 - x0)))\" height=\"\(f(rowHeight - 8))\" fill=\"#1f77b4\"/>\n"
            if bar.error.isFinite && bar.error > 0 {
                let a = x(bar.value - bar.error), b = x(bar.value + bar.error)
                out += "<line x1=\"\(f(a))\" x2=\"\(f(b))\" y1=\"\(f(mid))\" y2=\"\(f(mid))\" stroke=\"black\"/>\n"
                for e in [a, b] { out += "<line x1=\"\(f(e))\" x2=\"\(f(e))\" y1=\"\(f(mid - 5))\" y2=\"\(f(mid + 5))\" stroke=\"black\"/>\n" }
            }
        }
        if let reference {
            out += "<line x1=\"\(f(x(reference)))\" x2=\"\(f(x(reference)))\" y1=\"\(f(top - 4))\" y2=\"\(f(bottom))\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>\n"
        }
        out += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 36))\" text-anchor=\"middle\">\(svgEscaped(valueLabel))</text>\n"
        return out + "</svg>\n"
    }
}
