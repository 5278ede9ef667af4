import CKernels
import Foundation
import XCTest
@testable import PercepCore

/// The vectorised exp behind softmax and cross-entropy (`Kernels.exp`, CKernels' `pd_vexp`):
/// its error against float64, its edges, and that the clone this CPU runs gives the baseline
/// clone's bits (so AVX-512, AVX2 and other machines compute the same softmax).
final class VectorExpTests: XCTestCase {
    /// Arguments over the whole range softmax and cross-entropy use (and beyond, up to 88.3):
    /// a dense sweep plus random values.
    func arguments() -> [Float] {
        var xs: [Float] = stride(from: -87.3, through: 88.3, by: 0.000_37).map { Float($0) }
        var rng = SeededRNG(seed: 3, stream: "vexp")
        for _ in 0..<100_000 { xs.append(Float(rng.nextUnit() * 40 - 30)) }
        xs += [0, -0.0, 1, -1, Float.ulpOfOne, -Float.ulpOfOne, 0.346_573_6, -0.346_573_6, 88.376_26, -87.336_54]
        return xs
    }

    func testErrorWithinTwoUlpOfFloat64() {
        let xs = arguments()
        var ys = [Float](repeating: .nan, count: xs.count)
        Kernels.exp(&ys, xs, count: xs.count)
        var worst: Double = 0, worstX: Float = 0
        for (x, y) in zip(xs, ys) {
            let exact = Foundation.exp(Double(x))
            let ulp = Double(Float(exact).ulp)
            let err = abs(Double(y) - exact) / ulp
            if err > worst { worst = err; worstX = x }
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error \(worst) ulp at x = \(worstX)")
    }

    func testEdges() {
        let xs: [Float] = [.nan, -.infinity, -200, -87.34, -87.3, 0, 88.37, 1000]
        var ys = [Float](repeating: 7, count: xs.count)
        Kernels.exp(&ys, xs, count: xs.count)
        XCTAssertTrue(ys[0].isNaN, "NaN must stay NaN (a diverging step must show)")
        XCTAssertEqual(ys[1], 0)
        XCTAssertEqual(ys[2], 0)
        XCTAssertEqual(ys[3], 0)
        XCTAssertEqual(Double(ys[4]), Foundation.exp(Double(xs[4])), accuracy: 2 * Double(ys[4].ulp))
        XCTAssertEqual(ys[5], 1)
        XCTAssertEqual(Double(ys[6]), Foundation.exp(Double(xs[6])), accuracy: 2 * Double(ys[6].ulp))
        XCTAssertTrue(ys[7].isFinite && ys[7] > 2e38, "above the range the result saturates, \(ys[7])")
    }

    func testThisCPUsCloneGivesTheBaselineBits() {
        let xs = arguments()
        var ys = [Float](repeating: .nan, count: xs.count)
        // Odd lengths and offsets: the vector body and its scalar tail both run.
        for (start, length) in [(0, xs.count), (1, 17), (5, 3), (13, 1025)] {
            xs.withUnsafeBufferPointer { x in
                ys.withUnsafeMutableBufferPointer { y in
                    Kernels.exp(y.baseAddress! + start, x.baseAddress! + start, count: length)
                }
            }
            for i in start..<(start + length) {
                XCTAssertEqual(ys[i].bitPattern, pd_exp_reference(xs[i]).bitPattern, "x = \(xs[i])")
            }
        }
    }

    func testShiftIsSubtractedFirst() {
        let xs: [Float] = [1, 2, 3, -4, 5.5]
        let shifts: [Float] = [1, 0.5, 3, -4, 10]
        var ys = [Float](repeating: 0, count: xs.count)
        Kernels.exp(&ys, xs, shift: shifts, count: xs.count)
        for i in xs.indices { XCTAssertEqual(ys[i].bitPattern, pd_exp_reference(xs[i] - shifts[i]).bitPattern) }
    }
}
