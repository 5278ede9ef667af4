import PercepCore
import XCTest
@testable import PercepNN

final class GradientClippingTests: XCTestCase {
    func testClipValue() {
        let p = Tensor(shape: [4], values: [0, 0, 0, 0], requiresGrad: true)
        p.grad = Tensor(shape: [4], values: [-3, -0.5, 0.5, 3])
        GradientClipping.clipValue([p], 1)
        XCTAssertEqual(p.grad?.values, [-1, -0.5, 0.5, 1])
    }

    func testClipNormScalesAllGradientsTogether() {
        let a = Tensor(shape: [2], values: [0, 0], requiresGrad: true), b = Tensor(shape: [1], values: [0], requiresGrad: true)
        a.grad = Tensor(shape: [2], values: [3, 0])
        b.grad = Tensor(shape: [1], values: [4])
        let norm = GradientClipping.clipNorm([a, b], 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-9)
        let c = Float(1 / (5 + 1e-6))
        XCTAssertEqual(a.grad!.values[0], 3 * c, accuracy: 1e-6)
        XCTAssertEqual(b.grad!.values[0], 4 * c, accuracy: 1e-6)
        // Below the limit nothing changes.
        GradientClipping.clipNorm([a, b], 10)
        XCTAssertEqual(b.grad!.values[0], 4 * c, accuracy: 1e-6)
    }
}
