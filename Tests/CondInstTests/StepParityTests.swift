import CondInst
import Foundation
import InstanceModels
import InstanceTraining
import PercepCore
import PercepHDF5
import PercepNN
import Perceptual
import XCTest

/// One CondInst training step against the float64 PyTorch twin of AdelaiDet
/// (`tools/pytorch/condinst_twin.py`, fixtures from `make_condinst_fixtures.py`): the same narrow
/// network, weights and batch (4 images in 2 groups, positives on P3–P5, boundary sizes, ties), so
/// every loss within 1e-4 relative and every gradient within 1e-3 relative norm.
final class StepParityTests: XCTestCase {
    static func fixture(_ name: String) throws -> HDF5File {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "h5"))
        return try HDF5File(reading: url.path)
    }

    /// The spec and loss settings the fixture's attributes describe, and the model loaded from /model.
    static func model(from file: HDF5File) throws -> (CondInstModel, CondInstCriterion) {
        func int(_ name: String) throws -> Int {
            guard case .int(let v)? = try file.attribute(name) else { throw HDF5Error(file: file.path, object: "/", operation: "reading attribute", message: "\(name) missing") }
            return Int(v)
        }
        var spec = CondInstSpec()
        spec.numClasses = try int("num_classes")
        spec.resnet.depth = try int("resnet_depth")
        let width = try int("resnet_width_per_group")
        spec.resnet.stemChannels = width; spec.resnet.bottleneckChannels = width; spec.resnet.res2Channels = 4 * width
        spec.resnet.freezeAt = try int("freeze_at")
        spec.fpnChannels = try int("fpn_channels")
        spec.fcosClsConvs = try int("fcos_num_convs"); spec.fcosBoxConvs = spec.fcosClsConvs
        spec.gnGroups = try int("gn_groups")
        spec.maskBranchChannels = try int("mask_branch_channels")
        spec.maskBranchConvs = try int("mask_branch_num_convs")
        spec.maskBranchOutChannels = try int("mask_branch_out_channels")
        spec.maskHeadChannels = try int("mask_head_channels")
        spec.maskHeadLayers = try int("mask_head_layers")
        var rng = SeededRNG(seed: 0, stream: "fixture")
        let model = CondInstModel(spec, rng: &rng)
        var state: [String: Tensor] = [:]
        let shapes = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.0, $0.1.shape) })
        for name in try file.datasetNames(in: "/model") {
            let t = try file.readTensor(at: "/model/\(name)")
            // num_batches_tracked is a scalar here and a one-element array in the fixture.
            state[name] = shapes[name] == [] && t.count == 1 ? t.reshaped([]) : t
        }
        try model.loadStateDict(state, strict: true)
        var settings = CondInstLossSettings()
        settings.maxProposals = -1
        if try int("perceptual") == 1 {
            guard case .ints(let structure)? = try file.attribute("lossnet_structure"), case .ints(let widths)? = try file.attribute("lossnet_widths"),
                  case .doubles(let levels)? = try file.attribute("lossnet_level_weights"), case .double(let lambda)? = try file.attribute("lossnet_lambda") else {
                throw HDF5Error(file: file.path, object: "/", operation: "reading attribute", message: "loss network attributes missing")
            }
            var config = LossNetworkConfig(inChannels: 1)
            config.structure = structure.map(Int.init); config.widths = widths.map(Int.init)
            config.kernelSize = try int("lossnet_kernel_size")
            config.levelWeights = levels.map(Float.init); config.lambda = Float(lambda)
            let network = try makeLossNetwork(config)
            var weights: [String: Tensor] = [:]
            for name in try file.datasetNames(in: "/lossnet") { weights[name] = try file.readTensor(at: "/lossnet/\(name)") }
            try network.loadStateDict(weights, strict: true)
            settings.perceptual = try PerceptualLoss(config: config, network: network)
        }
        return (model, CondInstCriterion(spec: spec, settings: settings))
    }

    func checkStep(_ name: String) throws {
        let file = try Self.fixture(name)
        let (model, criterion) = try Self.model(from: file)
        let dump = try StepDump.read(file)
        let terms = dump.terms(model: model, criterion: criterion)
        let total = terms.dropFirst().reduce(terms[0].value) { $0 + $1.value }
        total.backward()
        for (term, value) in terms {
            guard case .double(let expected)? = try file.attribute(term) else { XCTFail("\(name): no attribute \(term)"); continue }
            XCTAssertEqual(Double(value.item), expected, accuracy: 1e-4 * abs(expected), "\(name): \(term)")
            print("\(name) \(term): ours \(value.item), twin \(expected)")
        }
        var worst = (0.0, "")
        let gradNames = Set(try file.datasetNames(in: "/grad"))
        for (param, p) in model.namedParameters() where p.requiresGrad {
            XCTAssertTrue(gradNames.contains(param), "\(name): the twin has no gradient for \(param)")
            guard gradNames.contains(param) else { continue }
            let expected = try file.readTensor(at: "/grad/\(param)").values
            let ours = p.grad?.values ?? [Float](repeating: 0, count: p.count)
            var diff = 0.0, norm = 0.0
            for (a, b) in zip(ours, expected) { diff += Double(a - b) * Double(a - b); norm += Double(b) * Double(b) }
            let relative = norm == 0 ? (diff == 0 ? 0 : .infinity) : (diff / norm).squareRoot()
            if relative > worst.0 { worst = (relative, param) }
            XCTAssertLessThan(relative, 1e-3, "\(name): gradient of \(param) off by \(relative) (relative norm)")
        }
        XCTAssertEqual(gradNames, Set(model.namedParameters().filter { $0.1.requiresGrad }.map(\.0)), "\(name): the same trainable parameters")
        print("\(name): worst gradient \(worst.1) at \(worst.0)")
    }

    func testStepMatchesTheTwin() throws { try checkStep("step_narrow") }

    func testStepWithThePerceptualTermMatchesTheTwin() throws { try checkStep("step_narrow_percep") }
}
