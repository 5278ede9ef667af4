import Foundation
import ImageCodecs
@testable import Plot
import XCTest

final class PlotTests: XCTestCase {
    func metricsFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).jsonl").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testReadsLossEvaluationAndLearningRateCurves() throws {
        let path = try metricsFile("""
        {"iteration":0,"total_loss":2.0,"loss_ce":1.9,"loss_perceptual":0.1,"lr":0.01,"time":0.5,"comm_wait":0.02}
        {"iteration":20,"total_loss":1.0,"loss_ce":0.95,"loss_perceptual":0.05,"lr":0.009,"time":0.5,"comm_wait":0.01}
        {"iteration":39,"eval/mIoU":0.5,"eval/aAcc":null,"eval/IoU/pole":0.25,"eval/segm/AP":0.3}
        {"iteration":40,"total_loss":0.5,"loss_ce":0.45,"loss_perc
        """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let curves = try TrainingCurves(metricsFile: path)
        XCTAssertEqual(curves.series["total_loss"]!.map(\.y), [2.0, 1.0], "the truncated last line is skipped")
        XCTAssertEqual(curves.series["eval/mIoU"]!.map(\.x), [39])
        XCTAssertTrue(curves.series["eval/aAcc"]![0].y.isNaN)
        let charts = curves.charts()
        XCTAssertEqual(charts.map(\.stem), ["loss", "eval", "lr", "time"])
        XCTAssertEqual(charts[0].chart.series.map(\.name), ["loss_ce", "loss_perceptual", "total_loss"])
        XCTAssertEqual(charts[1].chart.series.map(\.name), ["eval/aAcc", "eval/mIoU", "eval/segm/AP"],
                       "per-class IoU details stay out of the chart, CondInst's AP stays in")
        XCTAssertEqual(charts[3].chart.series.map(\.name), ["comm_wait", "time"])
    }

    func testMalformedLineIsAnErrorNamingTheLine() throws {
        let path = try metricsFile("{\"iteration\":0,\"total_loss\":1}\nnot json\n{\"iteration\":1,\"total_loss\":1}\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try TrainingCurves(metricsFile: path)) { error in
            XCTAssertTrue("\(error)".contains("line 2"), "\(error)")
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
        XCTAssertThrowsError(try TrainingCurves(metricsFile: path + ".missing")) { XCTAssertTrue("\($0)".contains("cannot read")) }
    }

    func testTicksAreRoundAndCoverTheRange() {
        let unit = LineChart.ticks((0, 1))
        XCTAssertEqual(unit.count, 6)
        for (k, t) in unit.enumerated() { XCTAssertEqual(t, Double(k) * 0.2, accuracy: 1e-12) }
        let t = LineChart.ticks((3, 997))
        XCTAssertEqual(t, [200, 400, 600, 800])
        // Iterations 16 apart near 1e17: the step (5) is below the values' spacing, so adding it
        // never advanced and the loop ran until memory ran out. Now it ends.
        let huge = LineChart.ticks((1e17, 1e17 + 16))
        XCTAssertLessThanOrEqual(huge.count, 64)
    }

    func testSVGAndRasterDrawEverySeries() throws {
        let chart = LineChart(title: "loss", series: [
            .init(name: "a", points: [(0, 1), (10, 0.5), (20, 0.25)]),
            .init(name: "b", points: [(0, 2), (10, .nan), (20, 1)]),
        ], logY: true)
        let svg = chart.svg(width: 400, height: 300)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 1, "a: one run; b: two single points (gap at 10)")
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 2)
        let image = try chart.raster(width: 400, height: 300)
        XCTAssertEqual(image.pixels.count, 400 * 300 * 3)
        for (r, g, b) in LineChart.palette.prefix(2) {
            let hits = stride(from: 0, to: image.pixels.count, by: 3).filter {
                image.pixels[$0] == r && image.pixels[$0 + 1] == g && image.pixels[$0 + 2] == b
            }
            XCTAssertGreaterThan(hits.count, 10, "series colour (\(r),\(g),\(b)) drawn")
        }
    }
}

final class InstanceOverlayTests: XCTestCase {
    /// Results files may hold boxes anywhere: off the image, enormous, degenerate. They draw what
    /// falls on the canvas and nothing else, without trapping.
    func testBoxesOffTheCanvasDrawNothingAndDoNotTrap() throws {
        let image = try RGBImage(height: 64, width: 64, pixels: [UInt8](repeating: 255, count: 64 * 64 * 3))
        let far: [(x: Double, y: Double, width: Double, height: Double)] = [
            (100, 100, 10, 10), (-500, -500, 10, 10), (1e300, 5, 1e300, 2), (-1e300, -1e300, 1e299, 1e299), (70, 10, 0, 0)]
        let offCanvas = try InstanceOverlay.draw(image, far.map { OverlayInstance(mask: nil, box: $0, caption: "x 0.50", colourIndex: 0) })
        XCTAssertEqual(offCanvas.pixels, image.pixels, "a box entirely off the image draws nothing")
        let inside = try InstanceOverlay.draw(image, [OverlayInstance(mask: nil, box: (8, 20, 30, 30), caption: "x 0.50", colourIndex: 0)])
        XCTAssertNotEqual(inside.pixels, image.pixels)
    }

    /// A magnified overlay repeats each source pixel k × k times and puts masks and boxes on the
    /// magnified pixels: a mask on source pixel (x 1, y 0) of a 2 × 2 image covers exactly the
    /// block x 3…5, y 0…2 at k = 3.
    func testMagnifiedOverlayScalesImageMasksAndBoxes() throws {
        let image = try RGBImage(height: 2, width: 2, pixels: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120])
        let plain = try InstanceOverlay.draw(image, [], magnification: 3)
        XCTAssertEqual(plain.width, 6); XCTAssertEqual(plain.height, 6)
        for y in 0..<6 {
            for x in 0..<6 {
                let src = ((y / 3) * 2 + x / 3) * 3, dst = (y * 6 + x) * 3
                XCTAssertEqual(Array(plain.pixels[dst..<dst + 3]), Array(image.pixels[src..<src + 3]), "pixel (\(x), \(y))")
            }
        }
        let masked = try InstanceOverlay.draw(image, [OverlayInstance(mask: [0, 1, 0, 0], box: nil, caption: "", colourIndex: 0)], magnification: 3)
        for y in 0..<6 {
            for x in 0..<6 {
                let dst = (y * 6 + x) * 3
                let changed = masked.pixels[dst..<dst + 3] != plain.pixels[dst..<dst + 3]
                XCTAssertEqual(changed, x >= 3 && y < 3, "mask at pixel (\(x), \(y))")
            }
        }
        // A box drawn at magnification 4 lands where the same box scaled by 4 lands at 1.
        let big = try RGBImage(height: 16, width: 16, pixels: [UInt8](repeating: 255, count: 16 * 16 * 3))
        let boxed = try InstanceOverlay.draw(big, [OverlayInstance(mask: nil, box: (2, 3, 8, 9), caption: "", colourIndex: 1)], magnification: 4)
        let bigger = try RGBImage(height: 64, width: 64, pixels: [UInt8](repeating: 255, count: 64 * 64 * 3))
        let reference = try InstanceOverlay.draw(bigger, [OverlayInstance(mask: nil, box: (8, 12, 32, 36), caption: "", colourIndex: 1)])
        XCTAssertEqual(boxed.pixels, reference.pixels)
        XCTAssertEqual(InstanceOverlay.magnification(forWidth: 128), 3)
        XCTAssertEqual(InstanceOverlay.magnification(forWidth: 160), 2)
        XCTAssertEqual(InstanceOverlay.magnification(forWidth: 640), 1)
    }

    /// Side by side, a caption longer than its image is cut at the image's edge: nothing of it
    /// reaches the gap or the other image's header (128-pixel images used to get "prediction
    /// (score >= 0.5)" written across "ground truth").
    func testSideBySideCaptionsStayAboveTheirOwnImage() throws {
        let image = try RGBImage(height: 8, width: 40, pixels: [UInt8](repeating: 200, count: 8 * 40 * 3))
        let picture = try InstanceOverlay.sideBySide(image, image, captions: (String(repeating: "W", count: 30), ""))
        let header = 14
        var leftInk = 0
        for y in 0..<header {
            for x in 0..<picture.width {
                let i = (y * picture.width + x) * 3
                let ink = picture.pixels[i] != 255 || picture.pixels[i + 1] != 255 || picture.pixels[i + 2] != 255
                if x >= image.width { XCTAssertFalse(ink, "caption ink at (\(x), \(y)), right of the left image") } else if ink { leftInk += 1 }
            }
        }
        XCTAssertGreaterThan(leftInk, 0, "the cut caption is still drawn")
        // Every character of visualize's captions has a glyph (no fallback boxes).
        let box = BitmapFont.glyph("\u{1}")
        for ch in "prediction (score >= 0.5) ground truth <" { XCTAssertNotEqual(BitmapFont.glyph(ch), box, "glyph for \(ch)") }
    }
}
