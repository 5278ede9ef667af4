import Foundation
import ImageCodecs

/// A white RGB drawing surface (row-major, 3 bytes per pixel) with antialiased lines and a
/// bitmap font: what `LineChart.raster` draws on before handing the pixels over as an
/// `RGBImage` for the PNG encoder.
struct Canvas {
    let width: Int
    let height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    /// Blends `colour` into pixel (x, y) with opacity `alpha` (0…1); outside pixels are ignored.
    mutating func blend(_ x: Int, _ y: Int, _ colour: (UInt8, UInt8, UInt8), _ alpha: Double = 1) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        let i = (y * width + x) * 3, a = min(alpha, 1)
        for (k, c) in [colour.0, colour.1, colour.2].enumerated() {
            pixels[i + k] = UInt8((Double(pixels[i + k]) * (1 - a) + Double(c) * a).rounded())
        }
    }

    /// An antialiased line of `thickness` pixels: every pixel near the segment is blended by its
    /// distance to it (simple and exact enough for charts a few hundred pixels wide).
    mutating func line(_ a: (Double, Double), _ b: (Double, Double), _ colour: (UInt8, UInt8, UInt8), thickness: Double = 1) {
        guard [a.0, a.1, b.0, b.1].allSatisfy(\.isFinite) else { return }
        let r = thickness / 2 + 0.5
        // Clamped to the canvas in floating point first: the end points come from results files
        // and may lie anywhere (an Int conversion of 1e300 traps).
        func clamp(_ v: Double, _ limit: Int) -> Int { Int(max(-1, min(Double(limit), v))) }
        let (x0, x1) = (max(clamp(floor(min(a.0, b.0) - r), width), 0), min(clamp(ceil(max(a.0, b.0) + r), width), width - 1))
        let (y0, y1) = (max(clamp(floor(min(a.1, b.1) - r), height), 0), min(clamp(ceil(max(a.1, b.1) + r), height), height - 1))
        guard x0 <= x1, y0 <= y1 else { return }  // entirely off the canvas
        let dx = b.0 - a.0, dy = b.1 - a.1, len2 = dx * dx + dy * dy
        for y in y0...y1 {
            for x in x0...x1 {
                let px = Double(x) + 0.5, py = Double(y) + 0.5
                let t = len2 > 0 ? max(0, min(1, ((px - a.0) * dx + (py - a.1) * dy) / len2)) : 0
                let ex = px - (a.0 + t * dx), ey = py - (a.1 + t * dy)
                let d = (ex * ex + ey * ey).squareRoot()
                blend(x, y, colour, thickness / 2 + 0.5 - d)
            }
        }
    }

    /// `text` in the built-in 5×7 font at `scale`, anchored at its left (or centre, or right)
    /// edge and vertically centred on `y`.
    mutating func text(_ text: String, x: Double, y: Double, anchor: TextAnchor = .left, scale: Int = 1,
                       colour: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        let advance = 6 * scale
        let width = Double(text.count * advance - scale)
        guard x.isFinite, y.isFinite else { return }
        // Positions far off the canvas draw nothing; clamping first keeps the Int conversion safe.
        let bound = Double(max(self.width, height) + 8 * scale * (text.count + 1))
        func clamp(_ v: Double) -> Int { Int(max(-bound, min(bound, v.rounded()))) }
        var left = clamp(anchor == .left ? x : anchor == .middle ? x - width / 2 : x - width)
        let top = clamp(y - Double(7 * scale) / 2)
        for ch in text {
            let rows = BitmapFont.glyph(ch)
            for (r, bits) in rows.enumerated() {
                for c in 0..<5 where bits & (0x10 >> c) != 0 {
                    for sy in 0..<scale { for sx in 0..<scale { blend(left + c * scale + sx, top + r * scale + sy, colour) } }
                }
            }
            left += advance
        }
    }
}

/// Horizontal text anchoring.
public enum TextAnchor { case left, middle, right }

extension LineChart {
    /// The chart drawn into a `width` × `height` RGB image (same layout as `svg`).
    public func raster(width: Int = 800, height: Int = 450) throws -> RGBImage {
        let l = layout(width: width, height: height)
        var image = Canvas(width: width, height: height)
        let grid: (UInt8, UInt8, UInt8) = (224, 224, 224), black: (UInt8, UInt8, UInt8) = (0, 0, 0)
        for t in l.yTicks {
            image.line((l.plot.x0, l.py(t)), (l.plot.x1, l.py(t)), grid)
            image.text(tickText(t, logAxis: logY), x: l.plot.x0 - 6, y: l.py(t), anchor: .right)
        }
        for t in l.xTicks {
            image.line((l.px(t), l.plot.y0), (l.px(t), l.plot.y1), grid)
            image.text(tickText(t, logAxis: false), x: l.px(t), y: l.plot.y1 + 12, anchor: .middle)
        }
        let corners = [(l.plot.x0, l.plot.y0), (l.plot.x1, l.plot.y0), (l.plot.x1, l.plot.y1), (l.plot.x0, l.plot.y1)]
        for k in 0..<4 { image.line(corners[k], corners[(k + 1) % 4], black) }
        image.text(title, x: (l.plot.x0 + l.plot.x1) / 2, y: 15, anchor: .middle, scale: 2)
        image.text(xLabel, x: (l.plot.x0 + l.plot.x1) / 2, y: Double(height) - 12, anchor: .middle)
        for (i, s) in series.enumerated() {
            let colour = Self.palette[i % Self.palette.count]
            for run in polylines(s, l) {
                if run.count == 1 { image.line(run[0], run[0], colour, thickness: 5) }
                for k in 1..<max(run.count, 1) { image.line(run[k - 1], run[k], colour, thickness: 1.5) }
            }
            let ly = l.plot.y0 + 10 + Double(i) * 18
            image.line((l.plot.x1 + 10, ly), (l.plot.x1 + 30, ly), colour, thickness: 2)
            image.text(s.name, x: l.plot.x1 + 35, y: ly)
        }
        return try RGBImage(height: height, width: width, pixels: image.pixels)
    }
}

/// A 5×7 bitmap font (ASCII letters, digits and the punctuation of metric names and numbers):
/// enough for chart labels without a font library. Lower case is drawn as upper case.
enum BitmapFont {
    /// Seven rows of five bits (bit 4 = leftmost column) for `ch`; unknown characters get a box.
    static func glyph(_ ch: Character) -> [UInt8] {
        let key = Character(ch.uppercased())
        return table[key] ?? [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F]
    }

    private static let table: [Character: [UInt8]] = {
        let rows: [(Character, [String])] = [
            (" ", [".....", ".....", ".....", ".....", ".....", ".....", "....."]),
            ("0", [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."]),
            ("1", ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."]),
            ("2", [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"]),
            ("3", ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."]),
            ("4", ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."]),
            ("5", ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."]),
            ("6", ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."]),
            ("7", ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."]),
            ("8", [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."]),
            ("9", [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."]),
            ("A", [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"]),
            ("B", ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."]),
            ("C", [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."]),
            ("D", ["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."]),
            ("E", ["#####", "#....", "#....", "####.", "#....", "#....", "#####"]),
            ("F", ["#####", "#....", "#....", "####.", "#....", "#....", "#...."]),
            ("G", [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"]),
            ("H", ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"]),
            ("I", [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."]),
            ("J", ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."]),
            ("K", ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"]),
            ("L", ["#....", "#....", "#....", "#....", "#....", "#....", "#####"]),
            ("M", ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"]),
            ("N", ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"]),
            ("O", [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."]),
            ("P", ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."]),
            ("Q", [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"]),
            ("R", ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"]),
            ("S", [".####", "#....", "#....", ".###.", "....#", "....#", "####."]),
            ("T", ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."]),
            ("U", ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."]),
            ("V", ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."]),
            ("W", ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."]),
            ("X", ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"]),
            ("Y", ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."]),
            ("Z", ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"]),
            (".", [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."]),
            (",", [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."]),
            ("-", [".....", ".....", ".....", "#####", ".....", ".....", "....."]),
            ("+", [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."]),
            ("_", [".....", ".....", ".....", ".....", ".....", ".....", "#####"]),
            ("/", [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."]),
            (":", [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."]),
            ("(", ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."]),
            (")", [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."]),
            ("=", [".....", ".....", "#####", ".....", "#####", ".....", "....."]),
            ("<", ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."]),
            (">", [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."]),
            ("%", ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"]),
        ]
        var out: [Character: [UInt8]] = [:]
        for (ch, pattern) in rows {
            out[ch] = pattern.map { row in row.reduce(UInt8(0)) { $0 << 1 | ($1 == "#" ? 1 : 0) } }
        }
        return out
    }()
}
