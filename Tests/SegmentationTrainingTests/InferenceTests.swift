import PercepCore
import SegmentationModels
import SegmentationTraining
import XCTest

/// mmseg's sliding-window inference against direct forward passes of its windows.
final class InferenceTests: XCTestCase {
    func model() throws -> SegmentationModel {
        var rng = SeededRNG(seed: 5, stream: "model")
        let m = try makeSegmentationModel(name: "pspnet_r18", classes: 3, rng: &rng, auxiliaryHead: false, baseChannels: 4)
        m.train(false)
        return m
    }

    func image(_ h: Int, _ w: Int) -> Tensor {
        var rng = SeededRNG(seed: 9)
        let x = Tensor.zeros([1, 3, h, w])
        rng.fillNormal(x, std: 1)
        return x
    }

    func testSlideWithACropCoveringTheImageEqualsWhole() throws {
        let m = try model(), x = image(40, 56)
        let whole = SegmentationInference(model: m, mode: .whole).logits(x)
        let slide = SegmentationInference(model: m, mode: .slide(crop: (64, 64), stride: (32, 32))).logits(x)
        XCTAssertEqual(whole.shape, [1, 3, 40, 56])
        XCTAssertEqual(whole.values, slide.values)
    }

    func testSlideAveragesTheWindowsCoveringEachPixel() throws {
        let m = try model(), x = image(40, 56)
        let slide = SegmentationInference(model: m, mode: .slide(crop: (32, 32), stride: (24, 24))).logits(x)
        // Grid: rows ⌈(40−32)/24⌉+1 = 2 at y 0 and 8 (pulled back inside), columns 2 at x 0 and 24.
        func window(_ y: Int, _ x0: Int) -> Tensor {
            let crop = x.slice(axis: 2, start: y, end: y + 32).slice(axis: 3, start: x0, end: x0 + 32)
            return upsampleLogits(m(crop).logits, to: (32, 32))
        }
        let windows = [(0, 0), (0, 24), (8, 0), (8, 24)].map { ($0, window($0.0, $0.1)) }
        func expected(_ c: Int, _ py: Int, _ px: Int) -> Float {
            let covering = windows.filter { py >= $0.0.0 && py < $0.0.0 + 32 && px >= $0.0.1 && px < $0.0.1 + 32 }
            let sum = covering.reduce(Float(0)) { $0 + $1.1.values[(c * 32 + py - $1.0.0) * 32 + px - $1.0.1] }
            return sum / Float(covering.count)
        }
        for (py, px) in [(0, 0), (5, 30), (20, 28), (39, 55), (10, 10)] {
            for c in 0..<3 {
                XCTAssertEqual(slide.values[(c * 40 + py) * 56 + px], expected(c, py, px), accuracy: 1e-5, "class \(c) at (\(py), \(px))")
            }
        }
    }
}
