import Foundation

extension LineChart {
    /// The chart as a standalone SVG document of `width` × `height` pixels.
    public func svg(width: Int = 800, height: Int = 450) -> String {
        let l = layout(width: width, height: height)
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
        font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>

        """
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        for t in l.yTicks {
            out += "<line x1=\"\(f(l.plot.x0))\" x2=\"\(f(l.plot.x1))\" y1=\"\(f(l.py(t)))\" y2=\"\(f(l.py(t)))\" stroke=\"#e0e0e0\"/>\n"
            out += "<text x=\"\(f(l.plot.x0 - 6))\" y=\"\(f(l.py(t) + 4))\" text-anchor=\"end\">\(escape(tickText(t, logAxis: logY)))</text>\n"
        }
        for t in l.xTicks {
            out += "<line x1=\"\(f(l.px(t)))\" x2=\"\(f(l.px(t)))\" y1=\"\(f(l.plot.y0))\" y2=\"\(f(l.plot.y1))\" stroke=\"#e0e0e0\"/>\n"
            out += "<text x=\"\(f(l.px(t)))\" y=\"\(f(l.plot.y1 + 16))\" text-anchor=\"middle\">\(escape(tickText(t, logAxis: false)))</text>\n"
        }
        out += "<rect x=\"\(f(l.plot.x0))\" y=\"\(f(l.plot.y0))\" width=\"\(f(l.plot.x1 - l.plot.x0))\" height=\"\(f(l.plot.y1 - l.plot.y0))\" fill=\"none\" stroke=\"black\"/>\n"
        out += "<text x=\"\(f((l.plot.x0 + l.plot.x1) / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">\(escape(title))</text>\n"
        out += "<text x=\"\(f((l.plot.x0 + l.plot.x1) / 2))\" y=\"\(height - 10)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        for (i, s) in series.enumerated() {
            let (r, g, b) = Self.palette[i % Self.palette.count]
            let colour = String(format: "#%02x%02x%02x", r, g, b)
            for run in polylines(s, l) {
                let points = run.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")
                if run.count == 1 {
                    out += "<circle cx=\"\(f(run[0].0))\" cy=\"\(f(run[0].1))\" r=\"3\" fill=\"\(colour)\"/>\n"
                } else {
                    out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\"/>\n"
                }
            }
            let ly = l.plot.y0 + 10 + Double(i) * 18
            out += "<line x1=\"\(f(l.plot.x1 + 10))\" x2=\"\(f(l.plot.x1 + 30))\" y1=\"\(f(ly))\" y2=\"\(f(ly))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(f(l.plot.x1 + 35))\" y=\"\(f(ly + 4))\">\(escape(s.name))</text>\n"
        }
        return out + "</svg>\n"
    }

    private func escape(_ text: String) -> String { svgEscaped(text) }
}

/// `text` with the characters XML reserves replaced by entities, for SVG text and attributes.
func svgEscaped(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
