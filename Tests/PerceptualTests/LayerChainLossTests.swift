import XCTest
import PercepCore
import PercepNN
import TestSupport
@testable import Perceptual

/// The perceptual loss's one-op path through VGG and AlexNet (`LayerChainLoss`): the same loss
/// and gradient as running the network op by op on the tape, while keeping bits instead of
/// activations until backward.
final class LayerChainLossTests: XCTestCase {
    /// ℓ the way the tape computes it op by op: every level on the tape, then Σ w_j·mse.
    func opByOpLoss(_ loss: PerceptualLoss, _ prediction: Tensor, _ target: Tensor) -> Tensor {
        let last = loss.levelWeights.lastIndex(where: { $0 > 0 })!
        let targetLevels = Tape.withoutGrad { loss.embed(target, upTo: last) }
        let predLevels = ConvDispatch.withSwitchingForward { loss.embed(prediction, upTo: last) }
        var total: Tensor?
        for j in 0...last where loss.levelWeights[j] > 0 {
            let term = Loss.mse(predLevels[j], targetLevels[j]) * loss.levelWeights[j]
            total = total.map { $0 + term } ?? term
        }
        return total!
    }

    func testSameLossAndGradientAsOpByOp() throws {
        var cases: [(String, LossNetworkConfig, [Int])] = []
        var vgg = LossNetworkConfig(inChannels: 5)
        vgg.structure = [2, 1, 3]; vgg.widths = [8, 12, 16]
        cases.append(("vgg last level", vgg, [2, 5, 22, 19]))       // odd sizes: pools floor
        vgg.levelWeights = [0.5, 0, 2]                               // a skipped middle level
        cases.append(("vgg weighted", vgg, [2, 5, 16, 16]))
        vgg.levelWeights = [1, 0, 0]                                 // stops after level 0
        vgg.kernelSize = 5
        cases.append(("vgg k5 first level", vgg, [1, 5, 16, 16]))
        var alex = LossNetworkConfig(inChannels: 3)
        alex.family = .alexnet
        alex.levelWeights = [1, 1, 1]                                // overlapping 3×3/2 pools
        cases.append(("alexnet", alex, [2, 3, 71, 67]))
        for (name, config, shape) in cases {
            let loss = try PerceptualLoss(config)
            XCTAssertNotNil(loss.network.layerChain, name)
            let target = randomTensor(shape, seed: 2, lo: 0, hi: 1, requiresGrad: false)
            let p1 = randomTensor(shape, seed: 1, lo: 0, hi: 1), p2 = randomTensor(shape, seed: 1, lo: 0, hi: 1)
            Tape.current.reset()
            let chained = loss(p1, target)
            XCTAssertEqual(Tape.current.count, 1, "\(name): the whole network is one tape op")
            chained.backward()
            let reference = opByOpLoss(loss, p2, target)
            reference.backward()
            XCTAssertEqual(Double(chained.item), Double(reference.item), accuracy: 1e-6 * Double(abs(reference.item)), name)
            let g1 = try XCTUnwrap(p1.grad, name), g2 = try XCTUnwrap(p2.grad, name)
            XCTAssertLessThan(relativeNorm(g1, g2), 1e-5, "\(name): gradient")
        }
    }

    /// The prediction's forward decides which ReLUs and max-pool inputs pass the gradient. On a
    /// piecewise-constant prediction (one-hot blocks, like a confident segmentation) every pool
    /// window inside a flat region is an exact tie, which float64 and a direct convolution (the
    /// same bits at every position) resolve to the window's first element. The chain must keep
    /// those switches, so its gradient is the op-by-op tape's, and both are those of direct
    /// convolutions everywhere (up to the target's Winograd rounding) although the prediction's
    /// forward runs Winograd F(2×2, 3×3), which keeps such ties; F(4×4, 3×3) on the prediction
    /// (`PERCEP_WINOGRAD=all`) rounds each position of a tile differently and moves them.
    func testPredictionSwitchesSurviveExactTies() throws {
        // Winograd must run where its rule says, whatever a timed dispatch would pick.
        try ConvDispatch.withWinogradByRule {
            var c = LossNetworkConfig(inChannels: 16)
            c.structure = [2, 2]; c.widths = [32, 32]
            let loss = try PerceptualLoss(c)
            let shape = [1, 16, 64, 64]
            let layer = ConvGeometry(n: 1, cIn: 32, h: 64, w: 64, cOut: 32, kh: 3, kw: 3, padding: (1, 1))
            XCTAssertTrue(ConvDispatch.usesWinograd(layer, pass: .forward), "the size must be one where Winograd runs")
            XCTAssertTrue(ConvDispatch.usesWinogradTwo(layer), "and F(2×2, 3×3) on the prediction")
            let target = oneHotBlocks(shape, seed: 7, requiresGrad: false)
            func chainGradient() throws -> Tensor {
                let p = oneHotBlocks(shape, seed: 8, requiresGrad: true)
                loss(p, target).backward()
                return try XCTUnwrap(p.grad)
            }
            let p = oneHotBlocks(shape, seed: 8, requiresGrad: true)
            opByOpLoss(loss, p, target).backward()
            let reference = try XCTUnwrap(p.grad)
            XCTAssertLessThan(relativeNorm(try chainGradient(), reference), 1e-5, "default: the prediction's switches as op by op")
            ConvDispatch.force(.dnnl)
            let direct = oneHotBlocks(shape, seed: 8, requiresGrad: true)
            opByOpLoss(loss, direct, target).backward()
            ConvDispatch.force(nil)
            XCTAssertLessThan(relativeNorm(reference, try XCTUnwrap(direct.grad)), 1e-4, "default: the switches of direct convolutions")

            // Without this the test would prove nothing: the input must hold ties Winograd moves.
            ConvDispatch.winogradOnSwitchingForward = true
            defer { ConvDispatch.winogradOnSwitchingForward = false }
            XCTAssertGreaterThan(relativeNorm(try chainGradient(), reference), 1e-3, "Winograd on the prediction breaks ties elsewhere")
        }
    }

    /// A two-block VGG on 7 channels with both levels weighted, the logits' shape and a soft target:
    /// the setting of the softmax-folding tests.
    func softmaxFoldSetup() throws -> (PerceptualLoss, [Int], Tensor) {
        var c = LossNetworkConfig(inChannels: 7)
        c.structure = [2, 1]; c.widths = [8, 12]; c.levelWeights = [0.5, 1]
        let shape = [2, 7, 20, 18]
        let target = Tape.withoutGrad { randomTensor(shape, seed: 3, lo: -2, hi: 2, requiresGrad: false).softmax(axis: 1) }
        return (try PerceptualLoss(c), shape, target)
    }

    /// `weighted(softmaxOf:)`: the softmax inside the chain op gives the loss and logits gradient
    /// of a softmax on the tape followed by the chain, as one tape op that holds less until
    /// backward (no probabilities); with an adapter (no folding) it is the tape softmax itself.
    func testSoftmaxFoldedIntoTheChain() throws {
        let (loss, shape, target) = try softmaxFoldSetup()
        let l1 = randomTensor(shape, seed: 4, lo: -3, hi: 3), l2 = randomTensor(shape, seed: 4, lo: -3, hi: 3)
        Tape.current.reset()
        let before = StorageStatistics.liveBytes
        let folded = loss.weighted(softmaxOf: l1, target)
        let heldFolded = StorageStatistics.liveBytes - before
        XCTAssertEqual(Tape.current.count, 2, "the chain op and the λ product, no softmax op")
        folded.backward()
        let before2 = StorageStatistics.liveBytes
        let reference = loss.weighted(l2.softmax(axis: 1), target)
        let heldReference = StorageStatistics.liveBytes - before2
        reference.backward()
        XCTAssertEqual(Double(folded.item), Double(reference.item), accuracy: 1e-6 * Double(abs(reference.item)))
        let g1 = try XCTUnwrap(l1.grad), g2 = try XCTUnwrap(l2.grad)
        XCTAssertLessThan(relativeNorm(g1, g2), 1e-6, "logits gradient")
        let probabilityBytes = shape.reduce(1, *) * MemoryLayout<Float>.stride
        XCTAssertLessThanOrEqual(heldFolded + probabilityBytes, heldReference, "folded holds \(heldFolded), softmax on the tape \(heldReference)")
    }

    /// The folded softmax runs the prediction's first convolution band by band
    /// (`ConvDispatch.forwardInRowBands`): one-row bands, three bands with a shorter last one,
    /// and the default budget (one band per image) give the same loss and logits gradient.
    func testSoftmaxInRowBandsMatchesWholeImages() throws {
        let (loss, shape, target) = try softmaxFoldSetup()
        let saved = ConvDispatch.rowBandBudget
        defer { ConvDispatch.rowBandBudget = saved }
        func run(budget: Int) throws -> (Float, Tensor) {
            ConvDispatch.rowBandBudget = budget
            let logits = randomTensor(shape, seed: 4, lo: -3, hi: 3)
            let value = loss.weighted(softmaxOf: logits, target)
            value.backward()
            return (value.item, try XCTUnwrap(logits.grad))
        }
        let (whole, wholeGrad) = try run(budget: saved)
        // Bytes per row of this first layer: input and its blocked copy, and the output.
        let bytesPerRow = (2 * 7 * 18 + 8 * 18) * 4
        for budget in [1, bytesPerRow * (7 + 2)] {
            let (value, grad) = try run(budget: budget)
            XCTAssertEqual(Double(value), Double(whole), accuracy: 1e-6 * Double(abs(whole)), "budget \(budget)")
            XCTAssertLessThan(relativeNorm(grad, wholeGrad), 1e-6, "budget \(budget): logits gradient")
        }
    }

    /// The softmax backward from recomputed probabilities equals the one from the kept output,
    /// along channels (blocks of positions) and along the last axis (one position per block).
    func testSoftmaxBackwardRecomputingMatchesTheTape() throws {
        for (shape, axis) in [([2, 5, 9, 300], 1), ([3, 4, 11], 2)] {
            let x = randomTensor(shape, seed: 5, lo: -4, hi: 4)
            let y = x.softmax(axis: axis)
            let upstream = randomTensor(shape, seed: 6, requiresGrad: false)
            y.backward(seed: upstream.copy())
            let expected = try XCTUnwrap(x.grad)
            let a = Shape.axis(axis, rank: shape.count)
            let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
            let g = upstream.copy()
            Tensor.softmaxBackwardRecomputing(g.data, logits: x.data, outer: outer, n: shape[a], inner: inner)
            for i in 0..<g.count { XCTAssertEqual(g.data[i], expected.data[i], "\(shape) axis \(axis) at \(i)") }
        }
    }

    func testWithoutGradientNothingIsRecorded() throws {
        var c = LossNetworkConfig(inChannels: 2)
        c.structure = [1, 1]; c.widths = [4, 4]
        let loss = try PerceptualLoss(c)
        let x = randomTensor([1, 2, 8, 8], seed: 1), t = randomTensor([1, 2, 8, 8], seed: 2, requiresGrad: false)
        let before = Tape.current.count
        let value = Tape.withoutGrad { loss(x, t) }
        XCTAssertEqual(Tape.current.count, before)
        XCTAssertEqual(value.item, opByOpLoss(loss, x, t).item, accuracy: 1e-6 * abs(value.item))
        Tape.current.reset()
    }

    /// What waits for backward: bits and level differences, far less than the activations the
    /// op-by-op tape holds (each conv output as a float, each pool's argmax as a float).
    func testKeepsBitsNotActivations() throws {
        var c = LossNetworkConfig(inChannels: 19)
        c.structure = [2, 2, 3]; c.widths = [32, 64, 128]
        let loss = try PerceptualLoss(c)
        let target = randomTensor([2, 19, 64, 64], seed: 2, lo: 0, hi: 1, requiresGrad: false)
        func heldUntilBackward(_ body: (Tensor) -> Tensor) -> Int {
            let x = randomTensor([2, 19, 64, 64], seed: 1, lo: 0, hi: 1)
            let before = StorageStatistics.liveBytes
            let value = body(x)
            let held = StorageStatistics.liveBytes - before
            value.backward()
            return held
        }
        _ = heldUntilBackward { loss($0, target) }   // first call: kernels' scratch buffers
        let chained = heldUntilBackward { loss($0, target) }
        let opByOp = heldUntilBackward { self.opByOpLoss(loss, $0, target) }
        // Op by op: 2·(32 + 32)·64² + 2·(64 + 64)·32² + … floats ≈ 5 MiB; the chain keeps the
        // level difference and the bits (StorageStatistics counts both).
        XCTAssertGreaterThan(opByOp, 4 << 20)
        XCTAssertLessThan(chained * 4, opByOp, "chain holds \(chained) bytes, op by op \(opByOp)")
    }

    /// A training run repeats the same loss step thousands of times, so what the mapped-block
    /// cache does per step must not grow with the steps run. On the AVX2 machines it was measured
    /// on, the warm VGG16 step takes every block whole or cut and moves and faults in no page at
    /// all; with 9434ef9's cache, whose cut pieces never joined again, the runs of pages its
    /// gathers moved grew from 247 to 2374 per step over 30 steps of this test's step after 3
    /// warm ones.
    func testRepeatedLossStepsDoNotMoveMorePagesAsTheyGoOn() throws {
        try XCTSkipIf(ProcessInfo.processInfo.environment["PERCEP_MAPPED_CACHE"] == "0" || Storage.mappingThreshold > 1 << 20,
                      "the mapped-block cache is off or maps only larger blocks")
        let loss = try PerceptualLoss(LossNetworkConfig(inChannels: 19))   // VGG16, (2, 2, 3, 3, 3)
        let target = randomTensor([2, 19, 64, 64], seed: 2, lo: 0, hi: 1, requiresGrad: false)
        let prediction = randomTensor([2, 19, 64, 64], seed: 1, lo: 0, hi: 1)
        /// Runs moved and fresh bytes over 10 steps.
        func tenSteps() -> (moved: Int, fresh: Int) {
            let moved = StorageStatistics.movedMappedRuns, fresh = StorageStatistics.freshMappedBytes
            for _ in 0..<10 {
                prediction.grad = nil
                loss(prediction, target).backward()
            }
            return (StorageStatistics.movedMappedRuns - moved, StorageStatistics.freshMappedBytes - fresh)
        }
        _ = tenSteps()   // warm: the kernels' scratch, the dispatch's timings
        let early = tenSteps(), late = tenSteps()
        XCTAssertLessThanOrEqual(late.moved, early.moved + 10, "runs moved in steps 21–30 against 11–20")
        XCTAssertLessThanOrEqual(late.fresh, early.fresh, "fresh bytes in steps 21–30 against 11–20")
    }
}

/// The VGG loss network with its Winograd layers against a float64 implementation written out
/// here (3×3 convolutions, ReLU, 2×2 max-pool, mean squared level differences, and their
/// backward), on a size where Winograd runs most of the convolutions: loss within 1e-4 and
/// gradient within 5e-4 relative (issue 17's bound).
final class WinogradLossNetworkTests: XCTestCase {
    struct Level64 { var values: [Double]; var c: Int; var h: Int; var w: Int }

    func conv(_ x: Level64, _ weight: Tensor, _ bias: Tensor, flip: Bool = false) -> Level64 {
        // flip: the backward-data convolution (weights transposed and rotated, no bias).
        let cOut = flip ? weight.shape[1] : weight.shape[0], cIn = x.c
        var y = [Double](repeating: 0, count: cOut * x.h * x.w)
        for o in 0..<cOut {
            for i in 0..<cIn {
                for a in 0..<3 {
                    for b in 0..<3 {
                        let wv = flip ? Double(weight.data[((i * cOut + o) * 3 + (2 - a)) * 3 + (2 - b)])
                                      : Double(weight.data[((o * cIn + i) * 3 + a) * 3 + b])
                        for r in 0..<x.h {
                            let sr = r + a - 1
                            if sr < 0 || sr >= x.h { continue }
                            for q in 0..<x.w {
                                let sq = q + b - 1
                                if sq < 0 || sq >= x.w { continue }
                                y[(o * x.h + r) * x.w + q] += wv * x.values[(i * x.h + sr) * x.w + sq]
                            }
                        }
                    }
                }
            }
            if !flip { for k in 0..<(x.h * x.w) { y[o * x.h * x.w + k] += Double(bias.data[o]) } }
        }
        return Level64(values: y, c: cOut, h: x.h, w: x.w)
    }

    func testVGGWithWinogradMatchesFloat64() throws {
        // Winograd must run where its rule says, whatever a timed dispatch would pick.
        try ConvDispatch.withWinogradByRule {
            var config = LossNetworkConfig(inChannels: 16)
            config.structure = [2, 2]; config.widths = [32, 64]; config.levelWeights = [1, 0.5]
            let loss = try PerceptualLoss(config)
            let shape = [1, 16, 96, 96]
            XCTAssertTrue(ConvDispatch.usesWinograd(ConvGeometry(n: 1, cIn: 32, h: 96, w: 96, cOut: 32, kh: 3, kw: 3, padding: (1, 1)), pass: .forward))
            XCTAssertTrue(ConvDispatch.usesWinograd(ConvGeometry(n: 1, cIn: 64, h: 48, w: 48, cOut: 64, kh: 3, kw: 3, padding: (1, 1)), pass: .backwardData))
            let pred = randomTensor(shape, seed: 11, lo: 0, hi: 1), target = randomTensor(shape, seed: 12, lo: 0, hi: 1, requiresGrad: false)
            let value = loss(pred, target)
            value.backward()
            let grad = try XCTUnwrap(pred.grad)

            // float64: forward both inputs, keeping the prediction's pre-activations and pool inputs.
            let convs = loss.network.layerChain!.layers.compactMap { $0 as? Conv2d }
            func embed(_ t: Tensor) -> (levels: [Level64], preacts: [Level64], poolInputs: [Level64]) {
                var h = Level64(values: (0..<t.count).map { Double(t.data[$0]) }, c: shape[1], h: shape[2], w: shape[3])
                var levels: [Level64] = [], preacts: [Level64] = [], poolInputs: [Level64] = []
                var k = 0
                for convsInBlock in config.structure {
                    for _ in 0..<convsInBlock {
                        let z = conv(h, convs[k].weight, convs[k].bias!)
                        preacts.append(z)
                        h = Level64(values: z.values.map { max($0, 0) }, c: z.c, h: z.h, w: z.w)
                        k += 1
                    }
                    poolInputs.append(h)
                    var p = [Double](repeating: 0, count: h.c * (h.h / 2) * (h.w / 2))
                    for c in 0..<h.c { for r in 0..<(h.h / 2) { for q in 0..<(h.w / 2) {
                        var best = -Double.infinity
                        for a in 0..<2 { for b in 0..<2 { best = max(best, h.values[(c * h.h + 2 * r + a) * h.w + 2 * q + b]) } }
                        p[(c * (h.h / 2) + r) * (h.w / 2) + q] = best
                    } } }
                    h = Level64(values: p, c: h.c, h: h.h / 2, w: h.w / 2)
                    levels.append(h)
                }
                return (levels, preacts, poolInputs)
            }
            let (pl, preacts, poolInputs) = embed(pred), (tl, _, _) = embed(target)
            var expected = 0.0
            for j in 0..<2 {
                let n = Double(pl[j].values.count)
                expected += Double(config.levelWeights![j]) * zip(pl[j].values, tl[j].values).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / n
            }
            XCTAssertEqual(Double(value.item), expected, accuracy: 1e-4 * expected)

            // float64 backward, deepest level first.
            var g: Level64?
            var k = convs.count - 1
            for j in stride(from: 1, through: 0, by: -1) {
                let n = Double(pl[j].values.count), wj = Double(config.levelWeights![j])
                var gl = Level64(values: zip(pl[j].values, tl[j].values).map { 2 * wj * ($0 - $1) / n }, c: pl[j].c, h: pl[j].h, w: pl[j].w)
                if let g { gl.values = zip(gl.values, g.values).map(+) }
                let x = poolInputs[j]
                var up = Level64(values: [Double](repeating: 0, count: x.values.count), c: x.c, h: x.h, w: x.w)
                for c in 0..<x.c { for r in 0..<(x.h / 2) { for q in 0..<(x.w / 2) {
                    var best = -Double.infinity, at = 0
                    for a in 0..<2 { for b in 0..<2 {
                        let i = (c * x.h + 2 * r + a) * x.w + 2 * q + b
                        if x.values[i] > best { best = x.values[i]; at = i }
                    } }
                    up.values[at] += gl.values[(c * (x.h / 2) + r) * (x.w / 2) + q]
                } } }
                var cur = up
                for _ in 0..<config.structure[j] {
                    let z = preacts[k]
                    cur.values = zip(cur.values, z.values).map { $1 > 0 ? $0 : 0 }
                    cur = conv(cur, convs[k].weight, convs[k].bias!, flip: true)
                    k -= 1
                }
                g = cur
            }
            var diff = 0.0, norm = 0.0
            for i in 0..<grad.count { diff += pow(Double(grad.data[i]) - g!.values[i], 2); norm += pow(g!.values[i], 2) }
            XCTAssertLessThan((diff / norm).squareRoot(), 5e-4, "gradient relative error against float64")
        }
    }
}
