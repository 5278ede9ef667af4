import PercepCore
@testable import PercepNN
import XCTest

/// Channel dropout: whole planes kept (scaled by 1/(1−p)) or zeroed, masks that depend only on
/// each sample's key and the call's place in the forward pass, identity in evaluation.
final class DropoutTests: XCTestCase {
    func input(_ n: Int, _ c: Int) -> Tensor {
        let x = Tensor(uninitialized: [n, c, 2, 3])
        for i in 0..<x.count { x.data[i] = Float(i % 11) + 1 }
        x.requiresGrad = true
        return x
    }

    /// Per-(sample, channel) factor applied to x (checks the whole plane shares it).
    func factors(_ y: Tensor, _ x: Tensor) -> [Float] {
        let plane = x.shape[2] * x.shape[3]
        return (0..<(x.shape[0] * x.shape[1])).map { k in
            let f = y.data[k * plane] / x.data[k * plane]
            for j in 0..<plane { XCTAssertEqual(y.data[k * plane + j], x.data[k * plane + j] * f, accuracy: 1e-5) }
            return f
        }
    }

    func testEvaluationAndZeroProbabilityAreTheIdentity() {
        let x = input(2, 4)
        let d = Dropout2d(0.5)
        d.eval()
        XCTAssertTrue(d(x) === x)
        XCTAssertTrue(Dropout2d(0)(x) === x)
    }

    func testPlanesAreDroppedOrScaledAtTheRequestedRate() {
        let (n, c, p) = (4, 500, Float(0.1))
        let x = input(n, c)
        let y = Dropout2d.withSampleKeys([11, 12, 13, 14]) { Dropout2d(p)(x) }
        let f = factors(y, x)
        XCTAssertTrue(f.allSatisfy { $0 == 0 || abs($0 - 1 / (1 - p)) < 1e-6 }, "factors other than 0 and 1/(1−p)")
        let dropped = f.filter { $0 == 0 }.count
        // 2000 Bernoulli(0.1) draws: mean 200, standard deviation 13.4.
        XCTAssertTrue((140...260).contains(dropped), "dropped \(dropped) of \(n * c) planes")
    }

    func testASamplesMaskDependsOnItsKeyNotItsBatch() {
        let c = 64, x = input(2, c)
        func dropped(_ f: [Float]) -> [Bool] { f.map { $0 == 0 } }
        let both = dropped(factors(Dropout2d.withSampleKeys([7, 9]) { Dropout2d(0.3)(x) }, x))
        let single = input(1, c)
        let alone = dropped(factors(Dropout2d.withSampleKeys([9]) { Dropout2d(0.3)(single) }, single))
        XCTAssertEqual(Array(both[c...]), alone, "sample with key 9 gets the same mask alone and second in a batch")
        XCTAssertNotEqual(Array(both[..<c]), Array(both[c...]), "different keys, different masks")
        let again = dropped(factors(Dropout2d.withSampleKeys([7, 9]) { Dropout2d(0.3)(x) }, x))
        XCTAssertEqual(both, again, "same keys, same masks")
    }

    func testEachCallOfAForwardPassDrawsItsOwnMask() {
        let x = input(1, 64)
        let (first, second) = Dropout2d.withSampleKeys([5]) { (Dropout2d(0.3)(x), Dropout2d(0.3)(x)) }
        XCTAssertNotEqual(factors(first, x).map { $0 == 0 }, factors(second, x).map { $0 == 0 })
    }

    func testGradientFlowsThroughKeptPlanesOnly() {
        let x = input(2, 16)
        let y = Dropout2d.withSampleKeys([1, 2]) { Dropout2d(0.25)(x) }
        let f = factors(y, x)
        y.sum().backward()
        let plane = 6
        for k in 0..<f.count {
            for j in 0..<plane { XCTAssertEqual(x.grad!.data[k * plane + j], f[k], accuracy: 1e-6) }
        }
    }
}
