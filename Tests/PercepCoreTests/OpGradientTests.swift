import CKernels
import XCTest
import Foundation
import TestSupport
@testable import PercepCore

/// Finite-difference checks of every op's backward rule.
final class OpGradientTests: XCTestCase {
    override func setUp() { Tape.current.reset() }

    func testBroadcastArithmetic() {
        let shapes: [([Int], [Int])] = [([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [4]), ([2, 1, 4], [3, 1]), ([3, 4], [])]
        for (i, (sa, sb)) in shapes.enumerated() {
            let a = randomTensor(sa, seed: UInt64(i)), b = randomTensor(sb, seed: UInt64(i + 10), lo: 0.5, hi: 1.5)
            checkGradients("add \(sa) \(sb)", [a, b]) { $0[0] + $0[1] }
            checkGradients("sub \(sa) \(sb)", [a, b]) { $0[0] - $0[1] }
            checkGradients("mul \(sa) \(sb)", [a, b]) { $0[0] * $0[1] }
            checkGradients("div \(sa) \(sb)", [a, b]) { $0[0] / $0[1] }
        }
        let a = randomTensor([3, 5], seed: 3)
        checkGradients("scalar ops", [a]) { -((2 * $0[0] + 1) / 4 - 0.5) }
    }

    func testUnary() {
        let x = randomTensor([4, 6], seed: 1)
        let pos = randomTensor([4, 6], seed: 2, lo: 0.5, hi: 2)
        let sep = separatedTensor([4, 6], seed: 3)
        checkGradients("exp", [x]) { $0[0].exp() }
        checkGradients("log", [pos]) { $0[0].log() }
        checkGradients("sqrt", [pos]) { $0[0].sqrt() }
        checkGradients("pow 2", [x]) { $0[0].pow(2) }
        checkGradients("pow 1.5", [pos]) { $0[0].pow(1.5) }
        checkGradients("abs", [sep]) { $0[0].abs() }
        checkGradients("clamp", [sep]) { $0[0].clamp(min: -0.31, max: 0.42) }
        checkGradients("relu", [sep]) { $0[0].relu() }
        // |a + b| ≥ 0.05 − 0.01: away from ReLU's kink, where finite differences hold.
        let small = randomTensor([4, 6], seed: 5, lo: -0.01, hi: 0.01)
        checkGradients("addRelu", [sep, small]) { Tensor.addRelu($0[0], $0[1]) }
        checkGradients("addRelu same input", [sep]) { Tensor.addRelu($0[0], $0[0]) }
        checkGradients("sigmoid", [x]) { $0[0].sigmoid() }
        checkGradients("tanh", [x]) { $0[0].tanh() }
    }

    func testReductions() {
        let x = randomTensor([2, 3, 4, 5], seed: 4)
        checkGradients("sum all", [x]) { $0[0].sum() }
        checkGradients("sum axes 1,3", [x]) { $0[0].sum(axes: [1, 3]) }
        checkGradients("sum keepDims", [x]) { $0[0].sum(axes: [0, -1], keepDims: true) }
        checkGradients("mean", [x]) { $0[0].mean(axes: [2]) }
        checkGradients("mean all", [x]) { $0[0].mean() }
        let s = separatedTensor([3, 4, 5], seed: 5)
        checkGradients("max axis 1", [s]) { $0[0].max(axis: 1) }
        checkGradients("max axis -1 keep", [s]) { $0[0].max(axis: -1, keepDims: true) }
    }

    func testShapeOps() {
        let x = randomTensor([2, 3, 4], seed: 6)
        checkGradients("reshape", [x]) { $0[0].reshaped([4, -1]) * $0[0].reshaped([4, 6]) }
        checkGradients("permute", [x]) { $0[0].permuted([2, 0, 1]) }
        checkGradients("transpose", [x]) { $0[0].transposed(0, 2) }
        checkGradients("slice", [x]) { $0[0].slice(axis: 2, start: 1, end: 4, step: 2) }
        let y = randomTensor([2, 5, 4], seed: 7)
        checkGradients("concat", [x, y]) { Tensor.concat([$0[0], $0[1], $0[0]], axis: 1) }
        checkGradients("pad", [x]) { $0[0].padded([1, 2, 0, 1], value: 0.5) }
        checkGradients("pad crop", [x]) { $0[0].padded([-1, 1]) }
        checkGradients("index_select", [x]) { $0[0].indexSelect(axis: 1, indices: [2, 0, 2]) }
        checkGradients("gather", [x]) {
            $0[0].gather(axis: 2, index: [0, 3, 1, 1, 2, 2, 3, 0, 1, 0, 0, 0], indexShape: [2, 3, 2])
        }
        let b = randomTensor([3, 1], seed: 8)
        checkGradients("expand", [b]) { $0[0].expanded(to: [2, 3, 4]) }
    }

    func testMatmulAndLinear() {
        let a = randomTensor([2, 3, 4], seed: 9), b = randomTensor([4, 5], seed: 10)
        checkGradients("matmul", [a, b]) { $0[0].matmul($0[1]) }
        let c = randomTensor([2, 4, 3], seed: 11)
        checkGradients("batched matmul", [a, c]) { $0[0].matmul($0[1]) }
        let w = randomTensor([6, 4], seed: 12), bias = randomTensor([6], seed: 13)
        checkGradients("linear", [a, w, bias]) { $0[0].linear(weight: $0[1], bias: $0[2]) }
    }

    func testConv2d() {
        let cases: [(String, [Int], [Int], (Int, Int), (Int, Int), (Int, Int), Int)] = [
            ("3x3 pad1", [2, 3, 6, 5], [4, 3, 3, 3], (1, 1), (1, 1), (1, 1), 1),
            ("stride2", [1, 2, 7, 7], [3, 2, 3, 3], (2, 2), (1, 1), (1, 1), 1),
            ("dilation2", [1, 2, 8, 8], [2, 2, 3, 3], (1, 1), (2, 2), (2, 2), 1),
            ("groups2", [1, 4, 5, 5], [6, 2, 3, 3], (1, 1), (1, 1), (1, 1), 2),
            ("depthwise", [1, 3, 5, 5], [3, 1, 3, 3], (1, 1), (1, 1), (1, 1), 3),
            ("1x1", [2, 3, 4, 4], [5, 3, 1, 1], (1, 1), (0, 0), (1, 1), 1),
            ("large-output", [1, 2, 34, 34], [3, 2, 3, 3], (1, 1), (1, 1), (1, 1), 1),
        ]
        for (i, c) in cases.enumerated() {
            let x = randomTensor(c.1, seed: UInt64(20 + i)), w = randomTensor(c.2, seed: UInt64(40 + i))
            let b = randomTensor([c.2[0]], seed: UInt64(60 + i))
            checkGradients("conv2d \(c.0)", [x, w, b], eps: 2e-2) {
                $0[0].conv2d(weight: $0[1], bias: $0[2], stride: c.3, padding: c.4, dilation: c.5, groups: c.6)
            }
        }
    }

    func testFusedConvReLU() {
        for algorithm in ConvAlgorithm.allCases {
            ConvDispatch.force(algorithm)
            defer { ConvDispatch.force(nil) }
            let x = randomTensor([2, 3, 9, 8], seed: 70), w = randomTensor([4, 3, 3, 3], seed: 71), b = randomTensor([4], seed: 72)
            let fused = Tape.withoutGrad { x.conv2d(weight: w, bias: b, padding: (1, 1), fusedReLU: true) }
            let plain = Tape.withoutGrad { x.conv2d(weight: w, bias: b, padding: (1, 1)).relu() }
            XCTAssertEqual(fused.values, plain.values, "\(algorithm)")
            checkGradients("conv+relu \(algorithm)", [x, w, b], eps: 1e-3) {
                $0[0].conv2d(weight: $0[1], bias: $0[2], padding: (1, 1), fusedReLU: true)
            }
        }
    }

    func testPooling() {
        let x = separatedTensor([2, 2, 7, 6], seed: 14, gap: 0.03)
        checkGradients("max_pool 2", [x]) { $0[0].maxPool2d(kernel: (2, 2)) }
        checkGradients("max_pool 3 s2 p1", [x]) { $0[0].maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        checkGradients("max_pool ceil", [x]) { $0[0].maxPool2d(kernel: (2, 2), ceilMode: true) }
        let y = randomTensor([2, 2, 7, 6], seed: 15)
        checkGradients("avg_pool 3 s2 p1", [y]) { $0[0].avgPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        checkGradients("avg_pool exclude pad", [y]) {
            $0[0].avgPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1), countIncludePad: false)
        }
        checkGradients("adaptive 3x2", [y]) { $0[0].adaptiveAvgPool2d((3, 2)) }
    }

    func testResize() {
        let x = randomTensor([1, 2, 4, 5], seed: 16)
        checkGradients("bilinear up", [x]) { $0[0].resizeBilinear((7, 9)) }
        checkGradients("bilinear down ac", [x]) { $0[0].resizeBilinear((3, 3), alignCorners: true) }
        checkGradients("bilinear up ac", [x]) { $0[0].resizeBilinear((8, 6), alignCorners: true) }
        checkGradients("nearest", [x]) { $0[0].resizeNearest((8, 7)) }
    }

    func testNormalisation() {
        let x = randomTensor([3, 4, 3, 2], seed: 17), w = randomTensor([4], seed: 18), b = randomTensor([4], seed: 19)
        checkGradients("batch_norm train", [x, w, b], eps: 5e-3) {
            $0[0].batchNorm(weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        let rm = randomTensor([4], seed: 20, requiresGrad: false), rv = randomTensor([4], seed: 21, lo: 0.5, hi: 2, requiresGrad: false)
        checkGradients("batch_norm eval", [x, w, b]) {
            $0[0].batchNorm(weight: $0[1], bias: $0[2], runningMean: rm, runningVar: rv, training: false)
        }
        let x2 = randomTensor([5, 3], seed: 22), w2 = randomTensor([3], seed: 23), b2 = randomTensor([3], seed: 24)
        checkGradients("batch_norm 2d", [x2, w2, b2], eps: 5e-3) {
            $0[0].batchNorm(weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        let gw = randomTensor([4], seed: 25), gb = randomTensor([4], seed: 26)
        checkGradients("group_norm", [x, gw, gb], eps: 5e-3) { $0[0].groupNorm(groups: 2, weight: $0[1], bias: $0[2]) }
    }

    func testSoftmax() {
        let x = randomTensor([2, 5, 3, 2], seed: 27)
        checkGradients("softmax", [x]) { $0[0].softmax(axis: 1) }
        checkGradients("log_softmax", [x]) { $0[0].logSoftmax(axis: 1) }
        checkGradients("softmax last", [x]) { $0[0].softmax(axis: -1) }
    }

    /// The blocked (log-)softmax kernels and their backward, on a layout with several 256-position
    /// blocks and a partial last one, equal the per-position formulas exactly (same arithmetic,
    /// the kernels' exp included, in the same order per position), and their gradients match
    /// finite differences.
    func testBlockedSoftmaxEqualsPerPositionReference() {
        let x = randomTensor([2, 5, 23, 29], seed: 31, lo: -3, hi: 3)   // inner 667 = 2 full blocks + 155
        let g = randomTensor(x.shape, seed: 32, requiresGrad: false)
        let (n, inner) = (5, 23 * 29)
        for log in [false, true] {
            Tape.current.reset(); x.grad = nil
            let y = log ? x.logSoftmax(axis: 1) : x.softmax(axis: 1)
            y.backward(seed: g)
            var maxDiff: Float = 0, maxGradDiff: Float = 0
            for o in 0..<2 {
                for j in 0..<inner {
                    let idx = (0..<n).map { o * n * inner + $0 * inner + j }
                    var mx = -Float.infinity
                    for i in idx { mx = max(mx, x.data[i]) }
                    var sum: Float = 0, e = [Float]()
                    for i in idx { let v = pd_exp_reference(x.data[i] - mx); e.append(v); sum += v }
                    let ref = log ? idx.map { x.data[$0] - (mx + Foundation.log(sum)) } : e.map { $0 * (1 / sum) }
                    for (k, i) in idx.enumerated() { maxDiff = max(maxDiff, abs(y.data[i] - ref[k])) }
                    // dx = g − softmax·Σg (log) or y ⊙ (g − Σ g·y)
                    let probs = log ? ref.map { pd_exp_reference($0) } : ref
                    var acc: Float = 0
                    for (k, i) in idx.enumerated() { acc += log ? g.data[i] : g.data[i] * probs[k] }
                    for (k, i) in idx.enumerated() {
                        let d = log ? g.data[i] - probs[k] * acc : probs[k] * (g.data[i] - acc)
                        maxGradDiff = max(maxGradDiff, abs(x.grad!.data[i] - d))
                    }
                }
            }
            XCTAssertEqual(maxDiff, 0, "log: \(log)")
            XCTAssertLessThan(maxGradDiff, 1e-6, "log: \(log)")
        }
        checkGradients("blocked softmax", [randomTensor([1, 3, 17, 19], seed: 33)]) { $0[0].softmax(axis: 1) }
        checkGradients("blocked log-softmax", [randomTensor([1, 3, 17, 19], seed: 34)]) { $0[0].logSoftmax(axis: 1) }
    }
}
