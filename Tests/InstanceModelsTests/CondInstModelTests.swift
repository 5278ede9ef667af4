import Foundation
import PercepCore
import PercepNN
import TestSupport
import XCTest
@testable import InstanceModels

/// CondInst's modules: AdelaiDet's state-dict names, shapes and kinds, shapes through the
/// network, and the gradients of the two ops CondInst adds (aligned_bilinear, the dynamic head).
final class CondInstModelTests: XCTestCase {
    /// (name, shape, kind) rows of AdelaiDet's CondInst R-50-FPN, 80 classes
    /// (`../shared/specs/condinst-names.txt`, copied into the fixtures).
    func referenceNames() throws -> [(name: String, shape: [Int], kind: String)] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/condinst-names", withExtension: "txt"))
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let parts = line.split(separator: " ").map(String.init)
            let shape = parts[1] == "scalar" ? [] : parts[1].split(separator: "x").map { Int($0)! }
            return (parts[0], shape, parts[2])
        }
    }

    func testStateDictMatchesAdelaiDetNameForName() throws {
        var rng = SeededRNG(seed: 0, stream: "condinst")
        let model = CondInstModel(CondInstSpec(), rng: &rng)
        let reference = try referenceNames()
        let mine = model.stateDict()
        XCTAssertEqual(mine.map(\.0), reference.map(\.name), "names and their order")
        let parameters = Dictionary(uniqueKeysWithValues: model.namedParameters())
        for ((name, tensor), ref) in zip(mine, reference) {
            // PyTorch keeps sizes_of_interest as [5] int64 and num_batches_tracked as a scalar;
            // shapes are compared, dtypes are float32 here.
            XCTAssertEqual(tensor.shape, ref.shape, name)
            switch ref.kind {
            case "trainable": XCTAssertEqual(parameters[name]?.requiresGrad, true, "\(name) must train")
            case "frozen": XCTAssertEqual(parameters[name]?.requiresGrad, false, "\(name) must be frozen (FREEZE_AT 2)")
            default: XCTAssertNil(parameters[name], "\(name) must be a buffer")
            }
        }
        XCTAssertEqual(model.maskHead.sizesOfInterest.values, [64, 128, 256, 512, 1024])
        XCTAssertEqual(model.proposalGenerator.head.clsLogits.bias!.values.first!, -4.59512, accuracy: 1e-5)
    }

    func testNarrowNetworkShapesPerLevel() throws {
        var spec = CondInstSpec()
        spec.resnet.stemChannels = 8; spec.resnet.res2Channels = 32; spec.resnet.bottleneckChannels = 8
        spec.fpnChannels = 32; spec.gnGroups = 8; spec.numClasses = 3; spec.fcosClsConvs = 2; spec.fcosBoxConvs = 2
        spec.maskBranchChannels = 16; spec.maskBranchConvs = 2
        var rng = SeededRNG(seed: 1, stream: "condinst")
        let model = CondInstModel(spec, rng: &rng)
        let out = model(randomTensor([2, 3, 96, 128], seed: 2, requiresGrad: false))
        XCTAssertEqual(out.levels.map { Array($0.logits.shape[2...]) }, [[12, 16], [6, 8], [3, 4], [2, 2], [1, 1]])
        XCTAssertEqual(out.levels[0].logits.shape, [2, 3, 12, 16])
        XCTAssertEqual(out.levels[4].boxRegression.shape, [2, 4, 1, 1])
        XCTAssertEqual(out.controllers[1].shape, [2, 169, 6, 8])
        XCTAssertEqual(out.maskFeatures.shape, [2, 8, 12, 16])
        XCTAssertTrue(out.levels.allSatisfy { $0.boxRegression.values.allSatisfy { $0 >= 0 } }, "regression is ReLU'd")
    }

    /// Output index k reads input coordinate max(k − ⌊f/2⌋, 0)/f, edges replicated.
    func testAlignedBilinearSamplesTheShiftedGrid() {
        let x = Tensor(shape: [1, 1, 2, 3], values: [0, 10, 20, 30, 40, 50])
        let y = x.alignedBilinear(factor: 4)
        XCTAssertEqual(y.shape, [1, 1, 8, 12])
        // Row 0 and 1 and 2 read row coordinate 0, 0, 0; row 3 reads 1/4.
        XCTAssertEqual(Array(y.values[0..<12]), [0, 0, 0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20, 20])
        XCTAssertEqual(y.values[3 * 12], 30 * 0.25, accuracy: 1e-5)
        XCTAssertEqual(y.values[7 * 12 + 11], 50, accuracy: 1e-5)
    }

    func testAlignedBilinearGradient() {
        for f in [2, 4, 8] {
            checkGradients("aligned_bilinear ×\(f)", [randomTensor([2, 2, 3, 1], seed: UInt64(f))]) { $0[0].alignedBilinear(factor: f) }
        }
    }

    func testDynamicMaskHeadMatchesAPlainComposition() {
        let head = DynamicMaskHead()
        let features = randomTensor([2, 8, 5, 6], seed: 3)
        let params = randomTensor([3, head.parameterCount], seed: 4, lo: -0.5, hi: 0.5)
        let instances = MaskInstances(imageIndex: [1, 0, 1], locations: [(20, 12), (4, 36), (44, 4)], levels: [0, 2, 4])
        let logits = head(maskFeatures: features, parameters: params, instances: instances)
        XCTAssertEqual(logits.shape, [3, 1, 5, 6])
        // The same maths with engine ops: split, relative coordinates, three 1×1 layers.
        for i in 0..<3 {
            let p = params.values[(i * 169)..<((i + 1) * 169)].map { $0 }
            var input = [[Float]](repeating: [], count: 10)
            let soi: [Float] = [64, 128, 256, 512, 1024]
            for r in 0..<5 {
                for c in 0..<6 {
                    input[0].append((instances.locations[i].x - Float(c * 8 + 4)) / soi[instances.levels[i]])
                    input[1].append((instances.locations[i].y - Float(r * 8 + 4)) / soi[instances.levels[i]])
                }
            }
            for ch in 0..<8 {
                let base = (instances.imageIndex[i] * 8 + ch) * 30
                input[2 + ch] = Array(features.values[base..<(base + 30)])
            }
            func layer(_ x: [[Float]], _ w: ArraySlice<Float>, _ b: ArraySlice<Float>, outputs: Int, relu: Bool) -> [[Float]] {
                (0..<outputs).map { o in
                    (0..<30).map { j in
                        var v = b[b.startIndex + o]
                        for k in 0..<x.count { v += w[w.startIndex + o * x.count + k] * x[k][j] }
                        return relu ? max(v, 0) : v
                    }
                }
            }
            let h1 = layer(input, p[0..<80], p[152..<160], outputs: 8, relu: true)
            let h2 = layer(h1, p[80..<144], p[160..<168], outputs: 8, relu: true)
            let out = layer(h2, p[144..<152], p[168..<169], outputs: 1, relu: false)[0]
            for j in 0..<30 { XCTAssertEqual(logits.values[i * 30 + j], out[j], accuracy: 1e-4, "instance \(i) pixel \(j)") }
        }
    }

    func testDynamicMaskHeadGradient() {
        let head = DynamicMaskHead()
        let instances = MaskInstances(imageIndex: [0, 1, 0], locations: [(12, 20), (30, 4), (4, 4)], levels: [0, 1, 3])
        checkGradients("dynamic mask head", [randomTensor([2, 8, 4, 5], seed: 5), randomTensor([3, head.parameterCount], seed: 6, lo: -0.5, hi: 0.5)],
                       eps: 1e-3, rtol: 5e-2, atol: 5e-3) { head(maskFeatures: $0[0], parameters: $0[1], instances: instances) }
    }
}
