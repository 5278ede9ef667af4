import XCTest
import PercepCore
import PercepHDF5
import PercepNN
import TestSupport
@testable import Perceptual

/// The loss networks: weights, determinism, names, gradients and bad input.
final class LossNetworkTests: XCTestCase {
    func smallVGG(seed: UInt64 = 0, _ edit: (inout LossNetworkConfig) -> Void = { _ in }) -> LossNetworkConfig {
        var c = LossNetworkConfig(inChannels: 3)
        c.structure = [1, 2, 1]
        c.widths = [4, 6, 8]
        c.seed = seed
        edit(&c)
        return c
    }

    func testLayerWeightStdMatchesEachInitScheme() throws {
        var c = LossNetworkConfig(inChannels: 19)   // full VGG16 widths: enough samples per layer
        for scheme in [LossNetworkInit.he, .xavierNormal, .normal(0.01), .uniform(0.1)] {
            c.initScheme = scheme
            let net = try makeLossNetwork(c)
            for (name, w) in net.namedParameters() where name.hasSuffix(".weight") {
                let v = w.values.map(Double.init)
                let mean = v.reduce(0, +) / Double(v.count)
                let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
                let sigma = Double(scheme.initializer.std(for: w.shape))
                XCTAssertEqual(std, sigma, accuracy: 0.03 * sigma, "\(scheme) \(name)")
                if case .he = scheme {   // the paper's σ = √(2/(s²·c_in))
                    XCTAssertEqual(sigma, (2.0 / Double(w.shape[1] * w.shape[2] * w.shape[3])).squareRoot(), accuracy: 1e-7)
                }
            }
            for (name, b) in net.namedParameters() where name.hasSuffix(".bias") { XCTAssertTrue(b.values.allSatisfy { $0 == 0 }, name) }
        }
    }

    func testSameSeedSameBytesOtherSeedOtherNetwork() throws {
        let a = try PerceptualLoss(smallVGG(seed: 4)), b = try PerceptualLoss(smallVGG(seed: 4)), c = try PerceptualLoss(smallVGG(seed: 5))
        XCTAssertEqual(a.fingerprint, b.fingerprint)
        XCTAssertNotEqual(a.fingerprint, c.fingerprint)
        for ((n1, t1), (n2, t2)) in zip(a.network.stateDict(), b.network.stateDict()) {
            XCTAssertEqual(n1, n2)
            XCTAssertEqual(t1.values.map(\.bitPattern), t2.values.map(\.bitPattern), n1)
        }
        let d = try PerceptualLoss(smallVGG(seed: 4) { $0.kernelSize = 5 })
        XCTAssertNotEqual(a.fingerprint, d.fingerprint)
    }

    /// Pins each non-VGG family's weights for seed 0: the bytes were recorded before the ResNet
    /// BasicBlock moved into PercepNN (shared with the segmentation backbones), so a change to
    /// the draw order or the names there cannot silently alter a loss network (GoogLeNet's when it
    /// was added, after its PyTorch parity test passed).
    func testFingerprintsArePinned() throws {
        for (family, expected) in [(LossNetworkFamily.resnet18, UInt64(5536145404936107762)), (.alexnet, 4217503057404626654),
                                   (.mobilenetv2, 6677162801967238221), (.googlenet, 17762702963147460966)] {
            var c = LossNetworkConfig(inChannels: 19)
            c.family = family
            XCTAssertEqual(try PerceptualLoss(c).fingerprint, expected, "\(family)")
        }
    }

    /// GoogLeNet at exactly its minimum side runs all three levels; one pixel less is a named
    /// error from `check`, not a trap inside a pooling layer.
    func testGoogLeNetMinimumInputSize() throws {
        var c = LossNetworkConfig(inChannels: 2)
        c.family = .googlenet
        c.levelWeights = [1, 1, 1]
        let loss = try PerceptualLoss(c)
        let side = loss.network.minimumInputSize
        let fits = randomTensor([1, 2, side, side], seed: 1, lo: 0, hi: 1)
        XCTAssertNoThrow(try loss.check(prediction: fits, target: fits))
        XCTAssertEqual(loss.network.levels(fits, upTo: 2).map { Array($0.shape.suffix(2)) }, [[4, 4], [2, 2], [1, 1]])
        let small = randomTensor([1, 2, side - 1, side], seed: 1, lo: 0, hi: 1)
        XCTAssertThrowsError(try loss.check(prediction: small, target: small))
    }

    func testNamesMatchTorchvision() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "torchvision_names", withExtension: "json", subdirectory: "Fixtures"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let families = try XCTUnwrap(json["families"] as? [String: [[Any]]])
        let cin = try XCTUnwrap(json["in_channels"] as? Int)
        for (key, family) in [("vgg16", LossNetworkFamily.vgg), ("resnet18", .resnet18), ("alexnet", .alexnet), ("mobilenetv2", .mobilenetv2),
                              ("googlenet", .googlenet)] {
            var c = LossNetworkConfig(inChannels: cin)
            c.family = family
            let ours = try makeLossNetwork(c).stateDict().map { "\($0.0) \($0.1.shape)" }
            let theirs = try XCTUnwrap(families[key]).map { "\($0[0] as! String) \(($0[1] as! [Int]))" }
            XCTAssertEqual(ours, theirs, key)
        }
    }

    func testNoWeightGradientIsEverComputed() throws {
        let loss = try PerceptualLoss(smallVGG())
        let pred = randomTensor([2, 3, 16, 16], seed: 1, lo: 0, hi: 1)
        let target = randomTensor([2, 3, 16, 16], seed: 2, lo: 0, hi: 1, requiresGrad: false)
        let before = ConvDispatch.passCount(.backwardWeight), dataBefore = ConvDispatch.passCount(.backwardData)
        loss(pred, target).backward()
        XCTAssertEqual(ConvDispatch.passCount(.backwardWeight), before, "a backward-weight pass ran for the frozen network")
        XCTAssertEqual(ConvDispatch.passCount(.backwardData) - dataBefore, 4, "one backward-data pass per convolution")
        XCTAssertNotNil(pred.grad)
        XCTAssertTrue(loss.network.namedParameters().allSatisfy { $0.1.grad == nil && !$0.1.requiresGrad })
        XCTAssertNil(target.grad)
    }

    func testGradientMatchesFiniteDifferencesForEveryFamily() throws {
        var configs: [(String, LossNetworkConfig, Int)] = [
            ("vgg geometric", smallVGG { $0.levelWeights = LossNetworkConfig.geometricLevelWeights(3) }, 16),
            ("vgg k7 equal", smallVGG { $0.kernelSize = 7; $0.levelWeights = [1, 1, 1] }, 16),
        ]
        for family in [LossNetworkFamily.resnet18, .alexnet, .mobilenetv2, .googlenet] {
            var c = LossNetworkConfig(inChannels: 2)
            c.family = family
            // MobileNetV2's He-initialised activations reach ReLU6's cap of 6 in so many units
            // that float32 finite differences are dominated by kinks; smaller weights keep it
            // in the region where the derivative is defined.
            if family == .mobilenetv2 { c.initScheme = .normal(0.05) }
            configs.append((family.rawValue, c, family == .alexnet ? 67 : 32))
        }
        for (name, config, size) in configs {
            let loss = try PerceptualLoss(config)
            let pred = randomTensor([1, config.inChannels, size, size], seed: 3, lo: 0, hi: 1)
            let target = randomTensor([1, config.inChannels, size, size], seed: 4, lo: 0, hi: 1, requiresGrad: false)
            checkDirectionalDerivative(name, pred) { loss($0, target) }
        }
    }

    /// The loss networks run on the tape (ResNet-18, GoogLeNet, MobileNetV2) embed the prediction
    /// as the layer-chain op does (`ConvDispatch.withSwitchingForward`: Winograd F(2×2, 3×3) or a
    /// direct convolution), although `Tensor.conv2d` runs F(4×4, 3×3) elsewhere. GoogLeNet has
    /// max-pools after 3×3 layers Winograd would run (ResNet-18's only pool comes before them): on
    /// one-hot blocks, exact ties in every flat pool window, the gradient is the all-direct one's
    /// up to the target's Winograd rounding, and F(4×4, 3×3) on the prediction
    /// (`winogradOnSwitchingForward`) moves it, so the input holds ties the check can see.
    func testTapeLossNetworksKeepTheirPredictionsSwitches() throws {
        // Winograd must run where its rule says, whatever a timed dispatch would pick.
        try ConvDispatch.withWinogradByRule {
            var c = LossNetworkConfig(inChannels: 16)
            c.family = .googlenet
            c.levelWeights = LossNetworkConfig.equalLevelWeights(c.levelCount)
            let loss = try PerceptualLoss(c)
            let target = oneHotBlocks([2, 16, 96, 96], seed: 7, requiresGrad: false)
            func gradient() throws -> Tensor {
                let p = oneHotBlocks([2, 16, 96, 96], seed: 8, requiresGrad: true)
                loss(p, target).backward()
                return try XCTUnwrap(p.grad)
            }
            ConvDispatch.force(.dnnl)
            let direct = try gradient()
            ConvDispatch.force(nil)
            let byDefault = try gradient()
            ConvDispatch.winogradOnSwitchingForward = true
            defer { ConvDispatch.winogradOnSwitchingForward = false }
            let winograd = try gradient()
            XCTAssertLessThan(relativeNorm(byDefault, direct), 1e-4, "the default's switches as all-direct")
            XCTAssertGreaterThan(relativeNorm(winograd, direct), 1e-3, "Winograd on the prediction moves ties")
        }
    }

    func testPresetsAndDefaults() {
        XCTAssertEqual(LossNetworkConfig.geometricLevelWeights(5), [1.0 / 16, 1.0 / 8, 0.25, 0.5, 1])
        XCTAssertEqual(LossNetworkConfig.equalLevelWeights(3), [1, 1, 1])
        XCTAssertEqual(LossNetworkConfig().resolvedLevelWeights, [0, 0, 0, 0, 1])
        XCTAssertEqual(LossNetworkConfig().lambda, 0.1)
    }

    func testBadConfigurationsAreNamed() {
        func message(_ edit: (inout LossNetworkConfig) -> Void) -> String {
            var c = LossNetworkConfig()
            edit(&c)
            do { try c.validate(); return "" } catch { return String(describing: error) }
        }
        XCTAssertTrue(message { $0.kernelSize = 4 }.contains("--kernel-size"))
        XCTAssertTrue(message { $0.widths = [64, 128] }.contains("--widths"))
        XCTAssertTrue(message { $0.structure = [2, 0, 3, 3, 3] }.contains("--structure"))
        XCTAssertTrue(message { $0.levelWeights = [1, 1] }.contains("--level-weights"))
        XCTAssertTrue(message { $0.levelWeights = [0, 0, 0, 0, 0] }.contains("not all zero"))
        XCTAssertTrue(message { $0.inChannels = 0 }.contains("--in-channels"))
        XCTAssertThrowsError(try LossNetworkInit(parsing: "kaiming"))
        XCTAssertThrowsError(try LossNetworkInit(parsing: "normal:-1"))
        XCTAssertEqual(try LossNetworkInit(parsing: "normal:0.01"), .normal(0.01))
        XCTAssertEqual(try LossNetworkInit(parsing: "uniform:0.1").description, "uniform:0.1")
    }

    func testBadInputsAreNamed() throws {
        let loss = try PerceptualLoss(smallVGG())
        let good = Tensor.zeros([1, 3, 16, 16])
        XCTAssertThrowsError(try loss.check(prediction: good, target: Tensor.zeros([1, 3, 16, 8]))) {
            XCTAssertTrue("\($0)".contains("differ in shape"), "\($0)")
        }
        XCTAssertThrowsError(try loss.check(prediction: Tensor.zeros([1, 4, 16, 16]), target: Tensor.zeros([1, 4, 16, 16]))) {
            XCTAssertTrue("\($0)".contains("4 channels"), "\($0)")
        }
        XCTAssertThrowsError(try loss.check(prediction: Tensor.zeros([1, 3, 4, 4]), target: Tensor.zeros([1, 3, 4, 4]))) {
            XCTAssertTrue("\($0)".contains("too small"), "\($0)")
        }
        let nan = Tensor.zeros([1, 3, 16, 16])
        nan.data[5] = .nan
        XCTAssertThrowsError(try loss.check(prediction: good, target: nan)) { XCTAssertTrue("\($0)".contains("non-finite"), "\($0)") }
        XCTAssertNoThrow(try loss.check(prediction: good, target: good))
    }

    /// The weight formula of tools/pytorch/make_lossnet_family_fixtures.py (`fixture_weights`):
    /// bit-identical float32 values for state-dict entry `name` from SplitMix64 over the element
    /// index, keyed by FNV-1a(name) ^ seed (integer ops and an exact product only).
    static func fixtureWeights(_ name: String, _ shape: [Int], seed: UInt64) -> Tensor {
        let t = Tensor.zeros(shape)
        let leaf = name.split(separator: ".").last.map(String.init) ?? name
        let center: Double, half: Float
        switch leaf {
        case "num_batches_tracked": return t
        case "weight" where shape.count == 4:
            center = 0; half = Float((6.0 / Double(shape[1] * shape[2] * shape[3])).squareRoot())
        case "weight": center = 1; half = 0.5
        case "bias", "running_mean": center = 0; half = 0.25
        case "running_var": center = 1.25; half = 0.75
        default: preconditionFailure("no fixture formula for \(name) \(shape)")
        }
        var key: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.utf8 { key = (key ^ UInt64(b)) &* 0x100_0000_01B3 }
        key ^= seed
        for i in 0..<t.count {
            let x = key &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
            var z = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let u = Double(Int64(z >> 40) - (1 << 23)) * 0x1p-23
            t.data[i] = Float(center + Double(half) * u)
        }
        return t
    }

    /// ResNet-18, AlexNet, MobileNetV2 and GoogLeNet against PyTorch (tools/pytorch/make_lossnet_family_fixtures.py,
    /// a float64 reference with torchvision's structures): loss within 1e-4 relative, gradient
    /// within 1e-3 relative norm. The full-width weights are not stored: both sides generate them
    /// with the fixture formula, and the stored fingerprint proves they are bit-identical.
    func testNonVGGFamiliesMatchPyTorch() throws {
        for family in [LossNetworkFamily.resnet18, .alexnet, .mobilenetv2, .googlenet] {
            let name = "lossnet_\(family.rawValue)"
            let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "h5", subdirectory: "Fixtures"), name)
            let file = try HDF5File(reading: url.path)
            XCTAssertEqual(try file.attribute("weights")?.stringValue, "splitmix64-uniform-v1", name)
            let config = try LossNetworkFile.config(of: file)
            XCTAssertEqual(config.family, family, name)
            let network = try makeLossNetwork(config)
            var state: [String: Tensor] = [:]
            for (key, t) in network.stateDict() { state[key] = Self.fixtureWeights(key, t.shape, seed: config.seed) }
            try network.loadStateDict(state)   // strict: every name, nothing extra, same shapes
            let loss = try PerceptualLoss(config: config, network: network)
            XCTAssertEqual(loss.fingerprint, try XCTUnwrap(try file.attribute("fingerprint")?.uintValue),
                           "\(name): the weights differ from PyTorch's")
            XCTAssertEqual(loss.levelWeights, config.resolvedLevelWeights, name)
            let pred = try file.readTensor(at: "pred"), target = try file.readTensor(at: "target")
            let expected = try file.readTensor(at: "loss").item, grad = try file.readTensor(at: "grad")
            try loss.check(prediction: pred, target: target)
            pred.requiresGrad = true
            let value = loss(pred, target)
            XCTAssertEqual(value.item, expected, accuracy: 1e-4 * abs(expected), name)
            value.backward()
            let g = try XCTUnwrap(pred.grad, name)
            XCTAssertEqual(g.shape, grad.shape, name)
            var diff = 0.0, ref = 0.0
            for i in 0..<grad.count {
                let d = Double(g.data[i]) - Double(grad.data[i])
                diff += d * d
                ref += Double(grad.data[i]) * Double(grad.data[i])
            }
            XCTAssertGreaterThan(ref, 0, name)
            XCTAssertLessThanOrEqual((diff / ref).squareRoot(), 1e-3, "\(name): gradient differs from PyTorch")
        }
    }
}
