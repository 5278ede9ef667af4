import XCTest
import PercepCore
@testable import PercepNN

/// A two-level module shaped like torchvision's ResNet stem, to check dotted names.
final class Block: Module, Layer {
    let conv1: Conv2d, bn1: BatchNorm2d, downsample: Sequential
    init(rng: inout SeededRNG) {
        conv1 = Conv2d(4, 8, kernel: (3, 3), padding: (1, 1), bias: false, rng: &rng)
        bn1 = BatchNorm2d(8)
        downsample = Sequential([Conv2d(4, 8, kernel: (1, 1), bias: false, rng: &rng), BatchNorm2d(8)])
        super.init()
        registerModule("conv1", conv1); registerModule("bn1", bn1); registerModule("downsample", downsample)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { (bn1(conv1(x)) + downsample(x)).relu() }
}

final class ModuleTests: XCTestCase {
    func makeNet() -> Sequential {
        var rng = SeededRNG(seed: 1)
        let layer1 = Sequential([Block(rng: &rng), Block(rng: &rng)])
        let net = Sequential([])
        net.append(layer1)
        return net
    }

    func testStateDictNamesFollowPyTorch() {
        let names = makeNet().stateDict().map(\.0)
        XCTAssertEqual(Array(names.prefix(11)), [
            "0.0.conv1.weight", "0.0.bn1.weight", "0.0.bn1.bias", "0.0.bn1.running_mean", "0.0.bn1.running_var",
            "0.0.bn1.num_batches_tracked", "0.0.downsample.0.weight", "0.0.downsample.1.weight",
            "0.0.downsample.1.bias", "0.0.downsample.1.running_mean", "0.0.downsample.1.running_var",
        ])
        XCTAssertEqual(names.count, 2 * 12)
    }

    func testStrictLoadReportsEveryProblemAtOnce() {
        let net = makeNet()
        var state = Dictionary(uniqueKeysWithValues: net.stateDict().map { ($0.0, $0.1.copy()) })
        state["0.0.conv1.weight"] = nil
        state["0.1.bn1.weight"] = Tensor.zeros([7])
        state["head.weight"] = Tensor.zeros([1])
        XCTAssertThrowsError(try net.loadStateDict(state)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("missing keys: 0.0.conv1.weight"), message)
            XCTAssertTrue(message.contains("unexpected keys: head.weight"), message)
            XCTAssertTrue(message.contains("0.1.bn1.weight: checkpoint [7], model [8]"), message)
        }
    }

    func testLoadCopiesValues() throws {
        let a = makeNet(), b = makeNet()
        for (_, t) in b.stateDict() { t.fill(0.25) }
        try a.loadStateDict(Dictionary(uniqueKeysWithValues: b.stateDict()))
        XCTAssertTrue(a.stateDict().allSatisfy { $0.1.values.allSatisfy { $0 == 0.25 } })
    }

    func testFreezeAndModes() {
        let net = makeNet()
        net.freeze()
        XCTAssertTrue(net.trainableParameters.isEmpty)
        net.unfreeze()
        XCTAssertEqual(net.trainableParameters.count, net.namedParameters().count)
        net.eval()
        XCTAssertTrue(net.namedModules().allSatisfy { !$0.1.isTraining })
    }

    func testBatchNormTracksRunningStatistics() {
        let bn = BatchNorm2d(2)
        let x = Tensor(shape: [2, 2, 1, 2], values: [1, 2, 10, 20, 3, 4, 30, 40])
        _ = bn(x)
        // channel 0: {1,2,3,4} mean 2.5, unbiased var 5/3; channel 1: {10,20,30,40} mean 25, var 500/3
        XCTAssertEqual(bn.runningMean.values[0], 0.25, accuracy: 1e-6)
        XCTAssertEqual(bn.runningMean.values[1], 2.5, accuracy: 1e-6)
        XCTAssertEqual(bn.runningVar.values[0], 0.9 + 0.1 * 5 / 3, accuracy: 1e-5)
        XCTAssertEqual(bn.runningVar.values[1], 0.9 + 0.1 * 500 / 3, accuracy: 1e-4)
        XCTAssertEqual(bn.numBatchesTracked.item, 1)
        bn.eval()
        _ = bn(x)
        XCTAssertEqual(bn.numBatchesTracked.item, 1)
    }

    func testInitializerStatistics() {
        let shape = [256, 128, 3, 3]
        let cases: [(Initializer, Float)] = [
            (.kaimingNormal(), (2 / Float(128 * 9)).squareRoot()),
            (.kaimingUniform(a: 0), (2 / Float(128 * 9)).squareRoot()),
            (.xavierNormal, (2 / Float(128 * 9 + 256 * 9)).squareRoot()),
            (.xavierUniform, (2 / Float(128 * 9 + 256 * 9)).squareRoot()),
            (.normal(std: 0.01), 0.01),
            (.uniform(bound: 0.1), 0.1 / Float(3).squareRoot()),
        ]
        for (i, (initializer, sigma)) in cases.enumerated() {
            var rng = SeededRNG(seed: UInt64(i))
            let t = Tensor(uninitialized: shape)
            initializer.fill(t, rng: &rng)
            let v = t.values.map(Double.init)
            let mean = v.reduce(0, +) / Double(v.count)
            let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
            XCTAssertEqual(std, Double(sigma), accuracy: 0.02 * Double(sigma), "\(initializer)")
            XCTAssertEqual(mean, 0, accuracy: 0.02 * Double(sigma), "\(initializer)")
        }
        var rng = SeededRNG(seed: 0)
        let c = Tensor(uninitialized: [3])
        Initializer.constant(0.5).fill(c, rng: &rng)
        XCTAssertEqual(c.values, [0.5, 0.5, 0.5])
    }

    func testSameSeedGivesBitIdenticalWeights() {
        var a = SeededRNG(seed: 5), b = SeededRNG(seed: 5), c = SeededRNG(seed: 6)
        let w1 = Conv2d(3, 4, kernel: (3, 3), initializer: .kaimingNormal(), rng: &a).weight.values
        let w2 = Conv2d(3, 4, kernel: (3, 3), initializer: .kaimingNormal(), rng: &b).weight.values
        let w3 = Conv2d(3, 4, kernel: (3, 3), initializer: .kaimingNormal(), rng: &c).weight.values
        XCTAssertEqual(w1.map(\.bitPattern), w2.map(\.bitPattern))
        XCTAssertNotEqual(w1, w3)
    }

    func testSGDMatchesPyTorchFormula() {
        let w = Tensor(shape: [2], values: [1, -2], requiresGrad: true)
        let sgd = SGD([w], learningRate: 0.1, momentum: 0.9, weightDecay: 0.01)
        w.grad = Tensor(shape: [2], values: [0.5, 1])
        sgd.step()
        // buf = g + wd·w = [0.51, 0.98]; w = [1 − 0.051, −2 − 0.098]
        XCTAssertEqual(w.values[0], 0.949, accuracy: 1e-6)
        XCTAssertEqual(w.values[1], -2.098, accuracy: 1e-6)
        w.grad = Tensor(shape: [2], values: [0.5, 1])
        sgd.step()
        // buf = 0.9·[0.51, 0.98] + [0.5 + 0.00949, 1 − 0.02098]
        let b0: Float = 0.9 * 0.51 + 0.5 + 0.01 * 0.949, b1: Float = 0.9 * 0.98 + 1 + 0.01 * -2.098
        XCTAssertEqual(w.values[0], 0.949 - 0.1 * b0, accuracy: 1e-6)
        XCTAssertEqual(w.values[1], -2.098 - 0.1 * b1, accuracy: 1e-6)
    }
}

/// The weight-decay group of normalisation parameters is found by layer type, wherever the
/// layers sit (a name pattern missed BatchNorms that were not child `1` of their stage).
final class NormalizationParameterTests: XCTestCase {
    func testFindsEveryNormLayerByType() {
        var rng = SeededRNG(seed: 1)
        let net = Sequential([Conv2d(3, 4, kernel: (3, 3), rng: &rng), BatchNorm2d(4), ReLU(),
                              Conv2d(4, 4, kernel: (3, 3), rng: &rng), GroupNorm(groups: 2, channels: 4), ReLU(),
                              Sequential([Conv2d(4, 4, kernel: (1, 1), rng: &rng), BatchNorm2d(4)])])
        XCTAssertEqual(net.normalizationParameterNames(),
                       ["1.weight", "1.bias", "4.weight", "4.bias", "6.1.weight", "6.1.bias"])
    }
}
