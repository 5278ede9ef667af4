import XCTest
import PercepCore
import TestSupport
@testable import PercepNN

/// Finite-difference checks of every loss, plus the semantics PyTorch users rely on.
final class LossGradientTests: XCTestCase {
    let labels: [Int32] = [0, 2, 255, 1, 1, 0, 2, 255, 0, 1, 2, 2, 1, 0, 255, 1, 0, 0]   // N2 × 3 × 3

    func testCrossEntropy() {
        let logits = randomTensor([2, 3, 3, 3], seed: 1, lo: -2, hi: 2)
        for reduction in [Reduction.mean, .sum, .none] {
            checkGradients("ce \(reduction)", [logits]) { Loss.crossEntropy($0[0], target: self.labels, ignoreIndex: 255, reduction: reduction) }
            checkGradients("ce weighted \(reduction)", [logits]) {
                Loss.crossEntropy($0[0], target: self.labels, ignoreIndex: 255, weight: [0.2, 1, 3], reduction: reduction)
            }
        }
    }

    func testCrossEntropyValueByHand() {
        // Two positions, one ignored: loss = −log softmax([1, 2, 3])[2].
        let logits = Tensor(shape: [2, 3], values: [1, 2, 3, 5, 5, 5])
        let loss = Loss.crossEntropy(logits, target: [2, 255], ignoreIndex: 255)
        let expected: Double = -(3.0 - Foundation.log(Foundation.exp(1.0) + Foundation.exp(2.0) + Foundation.exp(3.0)))
        XCTAssertEqual(Double(loss.item), expected, accuracy: 1e-6)
    }

    func testSoftTargetsAndKL() {
        let logits = randomTensor([2, 4, 2, 3], seed: 2, lo: -2, hi: 2)
        let target = Tape.withoutGrad { randomTensor([2, 4, 2, 3], seed: 3, requiresGrad: false).softmax(axis: 1) }
        checkGradients("soft ce", [logits]) { Loss.softTargetCrossEntropy($0[0], target: target) }
        let t = target.copy()
        t.data[0] = 0
        for (r, bm) in [(Reduction.mean, false), (.sum, false), (.sum, true)] {
            checkGradients("kl \(r) \(bm)", [logits]) { Loss.klDivergence(logProbs: $0[0].logSoftmax(axis: 1), target: t, reduction: r, batchMean: bm) }
        }
    }

    func testRegressionAndBinaryLosses() {
        let x = randomTensor([3, 5], seed: 4, lo: -3, hi: 3), t = randomTensor([3, 5], seed: 5, lo: 0, hi: 1, requiresGrad: false)
        checkGradients("mse", [x]) { Loss.mse($0[0], t) }
        checkGradients("bce", [x]) { Loss.bceWithLogits($0[0], t) }
        checkGradients("bce sum", [x]) { Loss.bceWithLogits($0[0], t, reduction: .sum) }
        checkGradients("focal", [x]) { Loss.sigmoidFocal($0[0], t, reduction: .mean) }
        checkGradients("focal no alpha", [x]) { Loss.sigmoidFocal($0[0], t, alpha: -1, gamma: 1.5, reduction: .sum) }
        let sep = separatedTensor([3, 5], seed: 6, gap: 0.13)
        let zeros = Tensor.zeros([3, 5])
        checkGradients("smooth l1", [sep]) { Loss.smoothL1($0[0], zeros, beta: 0.5) }
        checkGradients("smooth l1 beta 0", [sep]) { Loss.smoothL1($0[0], zeros, beta: 0) }
    }

    func testBCEIsStableForLargeLogits() {
        let x = Tensor(shape: [2], values: [100, -100]), t = Tensor(shape: [2], values: [0, 1])
        let v = Loss.bceWithLogits(x, t, reduction: .none).values
        XCTAssertEqual(v[0], 100, accuracy: 1e-4)
        XCTAssertEqual(v[1], 100, accuracy: 1e-4)
    }
}
