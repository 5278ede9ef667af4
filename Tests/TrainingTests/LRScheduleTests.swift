import XCTest
@testable import Training

/// The schedules at their boundary iterations, against values worked out by hand.
final class LRScheduleTests: XCTestCase {
    /// detectron2 WarmupMultiStepLR: base 0.01, warmup 1000 at factor 0.001, steps 3000 and 4000.
    func testWarmupMultiStep() {
        let s = LRSchedule(name: .warmupMultiStep, baseLR: 0.01, maxIter: 5000, steps: [4000, 3000])
        let cases: [(Int, Double)] = [
            (0, 0.01 * 0.001),                                          // alpha 0: the warmup factor
            (999, 0.00999001),                                          // 0.01 × (0.001 · 0.001 + 0.999)
            (1000, 0.01),                                               // warmup over
            (2999, 0.01),
            (3000, 0.001),                                              // first step counts at its own iteration
            (3999, 0.001),
            (4000, 0.0001),
            (4999, 0.0001),
            (5000, 0.0001),
        ]
        for (it, want) in cases { XCTAssertEqual(s.lr(at: it), want, accuracy: 1e-15, "it \(it)") }
        XCTAssertEqual(s.lr(at: 500), 0.01 * (0.001 * 0.5 + 0.5), accuracy: 1e-15)
        XCTAssertEqual(s.warmup(at: 999), 0.999001, accuracy: 1e-12)

        var c = s
        c.warmupMethod = .constant
        XCTAssertEqual(c.lr(at: 999), 0.00001, accuracy: 1e-15)
        XCTAssertEqual(c.lr(at: 1000), 0.01, accuracy: 1e-15)
    }

    /// The paper's poly: base 0.01, power 0.9, no warmup, max 100.
    func testPoly() {
        let s = LRSchedule(name: .poly, baseLR: 0.01, maxIter: 100, polyPower: 0.9, warmupIters: 0)
        XCTAssertEqual(s.lr(at: 0), 0.01)
        XCTAssertEqual(s.lr(at: 50), 0.01 * 0.5358867312681466, accuracy: 1e-15)   // 0.5^0.9
        XCTAssertEqual(s.lr(at: 99), 0.01 * 0.015848931924611134, accuracy: 1e-15)  // 0.01^0.9
        XCTAssertEqual(s.lr(at: 100), 0)
        XCTAssertEqual(s.lr(at: 150), 0)                                             // clamped, not NaN
    }

    /// Poly with linear warmup: the two factors multiply.
    /// VNL steps its scheduler before each iteration: update k uses poly's rate at k + 1, and the
    /// last update of MAX_ITER uses 0.
    func testPolyStepBeforeIteration() {
        var s = LRSchedule(name: .poly, baseLR: 0.01, maxIter: 100, polyPower: 0.9, warmupIters: 0)
        s.stepBeforeIteration = true
        XCTAssertEqual(s.lr(at: 0), 0.01 * pow(0.99, 0.9), accuracy: 1e-15)
        XCTAssertEqual(s.lr(at: 50), 0.01 * pow(0.49, 0.9), accuracy: 1e-15)
        XCTAssertEqual(s.lr(at: 99), 0)
    }

    func testPolyWithWarmup() {
        let s = LRSchedule(name: .poly, baseLR: 0.1, maxIter: 100, polyPower: 1, warmupIters: 10, warmupFactor: 0.1)
        XCTAssertEqual(s.lr(at: 0), 0.1 * 0.1, accuracy: 1e-15)
        XCTAssertEqual(s.lr(at: 9), 0.1 * (0.1 * 0.1 + 0.9) * 0.91, accuracy: 1e-15)
        XCTAssertEqual(s.lr(at: 10), 0.1 * 0.9, accuracy: 1e-15)
        XCTAssertEqual(s.lr(at: 99), 0.1 * 0.01, accuracy: 1e-15)
        XCTAssertEqual(s.lr(at: 100), 0)
    }

    func testConstant() {
        let s = LRSchedule(name: .constant, baseLR: 0.05, maxIter: 10, warmupIters: 0)
        for it in [0, 1, 9, 10] { XCTAssertEqual(s.lr(at: it), 0.05) }
        let w = LRSchedule(name: .constant, baseLR: 0.05, maxIter: 10, warmupIters: 4, warmupFactor: 0.2)
        XCTAssertEqual(w.lr(at: 0), 0.01, accuracy: 1e-15)
        XCTAssertEqual(w.lr(at: 3), 0.05 * (0.2 * 0.25 + 0.75), accuracy: 1e-15)
        XCTAssertEqual(w.lr(at: 4), 0.05)
    }

    func testFromConfig() throws {
        var c = TrainingConfig()
        try c.apply(overrides: ["SOLVER.LR_SCHEDULER_NAME", "WarmupMultiStepLR", "SOLVER.BASE_LR", "0.01",
                                "SOLVER.STEPS", "3000,4000", "SOLVER.MAX_ITER", "5000"])
        XCTAssertEqual(LRSchedule(config: c), LRSchedule(name: .warmupMultiStep, baseLR: 0.01, maxIter: 5000, steps: [3000, 4000]))
    }
}
