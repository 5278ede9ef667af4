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
        let predLevels = loss.embed(prediction, upTo: last)
        var total: Tensor?
        for j in 0...last where loss.levelWeights[j] > 0 {
            let term = Loss.mse(predLevels[j], targetLevels[j]) * loss.levelWeights[j]
            total = total.map { $0 + term } ?? term
        }
        return total!
    }

    func relativeNorm(_ a: Tensor, _ b: Tensor) -> Double {
        var diff = 0.0, norm = 0.0
        for i in 0..<a.count { diff += pow(Double(a.data[i] - b.data[i]), 2); norm += pow(Double(b.data[i]), 2) }
        return (diff / max(norm, 1e-30)).squareRoot()
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
        let chained = heldUntilBackward { loss($0, target) }
        let opByOp = heldUntilBackward { self.opByOpLoss(loss, $0, target) }
        // Op by op: 2·(32 + 32)·64² + 2·(64 + 64)·32² + … floats ≈ 5 MiB; the chain keeps the
        // level differences (a fifth of that) and the bits.
        XCTAssertGreaterThan(opByOp, 4 << 20)
        XCTAssertLessThan(chained * 4, opByOp, "chain holds \(chained) bytes, op by op \(opByOp)")
    }
}
