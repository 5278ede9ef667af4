import XCTest
import PercepCore
import PercepHDF5
import PercepNN
@testable import Perceptual

/// Loss-network files: PyTorch fixtures, round trips and damaged files.
final class LossNetworkFileTests: XCTestCase {
    static let cases = ["vgg16_k3_last", "vgg_11111_k7_geometric", "vgg11_k1_equal", "vgg_3blocks_k5_mid"]

    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "h5", subdirectory: "Fixtures")).path
    }

    var scratch: URL!
    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lossnet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// Loss and gradient against PyTorch (float64 reference), rtol 1e-4.
    func testLossAndGradientMatchPyTorch() throws {
        for name in Self.cases {
            let loss = try LossNetworkFile.load(try fixture("\(name).lossnet"))   // also checks the fingerprint
            let data = try HDF5File(reading: try fixture("\(name).case"))
            let pred = try data.readTensor(at: "pred"), target = try data.readTensor(at: "target")
            let expected = try data.readTensor(at: "loss").item, grad = try data.readTensor(at: "grad")
            pred.requiresGrad = true
            let value = loss(pred, target)
            XCTAssertEqual(value.item, expected, accuracy: 1e-4 * abs(expected), name)
            value.backward()
            let g = try XCTUnwrap(pred.grad)
            let scale = grad.values.map(abs).max()!
            var worst: Float = 0
            for i in 0..<g.count { worst = max(worst, abs(g.data[i] - grad.data[i]) - 1e-4 * abs(grad.data[i]) - 1e-5 * scale) }
            XCTAssertLessThanOrEqual(worst, 0, "\(name): gradient differs from PyTorch")
            XCTAssertEqual(loss.levelWeights.count, loss.config.levelCount)
        }
    }

    func testExportLoadRoundTripForEveryFamily() throws {
        for family in LossNetworkFamily.allCases {
            var c = LossNetworkConfig(inChannels: 3)
            c.family = family
            if family == .vgg { c.structure = [1, 1, 2]; c.widths = [4, 8, 8]; c.levelWeights = [0.25, 0.5, 1] }
            c.seed = 11
            c.initScheme = .xavierNormal
            let original = try PerceptualLoss(c)
            let path = scratch.appendingPathComponent("\(family).h5").path
            try LossNetworkFile.export(original, to: path)
            let loaded = try LossNetworkFile.load(path)
            var expected = original.config
            expected.levelWeights = expected.resolvedLevelWeights   // files always store the weights in force
            XCTAssertEqual(loaded.config, expected, "\(family)")
            XCTAssertEqual(loaded.fingerprint, original.fingerprint, "\(family)")
            let size = family == .alexnet ? 64 : 32
            var rng = SeededRNG(seed: 1)
            let p = Tensor(uninitialized: [1, 3, size, size]), t = Tensor(uninitialized: [1, 3, size, size])
            rng.fillUniform(p, lo: 0, hi: 1); rng.fillUniform(t, lo: 0, hi: 1)
            XCTAssertEqual(Tape.withoutGrad { loaded(p, t) }.item, Tape.withoutGrad { original(p, t) }.item, "\(family)")
        }
    }

    func testPretrainedAdapterRoundTrip() throws {
        var c = LossNetworkConfig(inChannels: 5)
        c.structure = [1, 1]; c.widths = [4, 4]
        var three = c
        three.inChannels = 3
        let weightsPath = scratch.appendingPathComponent("imagenet.h5").path
        let file = try HDF5File(creating: weightsPath)
        for (name, t) in try PerceptualLoss(three).network.stateDict() { t.fill(0.01); try file.write(t, at: name) }
        try file.close()
        let loss = try LossNetworkFile.pretrained(c, weights: weightsPath)
        XCTAssertEqual(loss.adapter?.weight.shape, [3, 5, 1, 1])
        XCTAssertTrue(loss.network.namedParameters().allSatisfy { $0.1.values.allSatisfy { $0 == 0.01 } })
        let path = scratch.appendingPathComponent("t.h5").path
        try LossNetworkFile.export(loss, to: path)
        let loaded = try LossNetworkFile.load(path)
        XCTAssertEqual(loaded.fingerprint, loss.fingerprint)
        XCTAssertEqual(loaded.adapter?.weight.values, loss.adapter?.weight.values)
    }

    /// Copies a fixture's datasets and attributes, letting `edit` drop or change datasets.
    func damagedCopy(_ edit: (String, Tensor) -> Tensor?, dropAttribute: String? = nil) throws -> String {
        let src = try HDF5File(reading: try fixture("vgg11_k1_equal.lossnet"))
        let path = scratch.appendingPathComponent("damaged.h5").path
        let dst = try HDF5File(creating: path)
        for name in try src.datasetNames() {
            if let t = edit(name, try src.readTensor(at: name)) { try dst.write(t, at: name) }
        }
        for attr in ["family", "structure", "widths", "kernel_size", "in_channels", "init", "seed", "level_weights", "fingerprint"]
        where attr != dropAttribute {
            try dst.setAttribute(attr, try XCTUnwrap(try src.attribute(attr)))
        }
        try dst.close()
        return path
    }

    func assertLoadFails(_ path: String, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try LossNetworkFile.load(path), file: file, line: line) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains(text), "message was: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(path), "message must name the file: \(message)", file: file, line: line)
        }
    }

    func testDamagedFilesAreRejectedWithReasons() throws {
        assertLoadFails(try damagedCopy { name, t in name == "features.0.weight" ? nil : t }, contains: "missing keys: features.0.weight")
        assertLoadFails(try damagedCopy { name, t in name == "features.3.bias" ? Tensor.zeros([3]) : t },
                        contains: "features.3.bias: checkpoint [3], model [8]")
        assertLoadFails(try damagedCopy { name, t in
            if name == "features.0.weight" { let c = t.copy(); c.data[0] += 1e-3; return c }
            return t
        }, contains: "fingerprint")
        assertLoadFails(try damagedCopy({ _, t in t }, dropAttribute: "in_channels"), contains: "in_channels")
        let garbage = scratch.appendingPathComponent("garbage.h5").path
        try Data("not an hdf5 file".utf8).write(to: URL(fileURLWithPath: garbage))
        XCTAssertThrowsError(try LossNetworkFile.load(garbage)) { XCTAssertTrue("\($0)".contains(garbage), "\($0)") }
    }
}
