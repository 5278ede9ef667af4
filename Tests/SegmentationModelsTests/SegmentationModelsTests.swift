import XCTest
import Foundation
import PercepCore
import PercepNN
import PercepHDF5
import TestSupport
@testable import SegmentationModels

// Reference values come from tools/pytorch/make_seg_fixtures.py (plain-PyTorch twins of mmseg's
// modules in tools/pytorch/seg_models.py); CI only reads the committed Fixtures/.

/// Largest |a − b| relative to the largest |b| of a tensor: a per-tensor relative error that a
/// near-zero element cannot blow up.
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var diff = 0.0, scale = 0.0
    for i in a.indices { diff = max(diff, Double(abs(a[i] - b[i]))); scale = max(scale, Double(abs(b[i]))) }
    return scale == 0 ? diff : diff / scale
}

func fixtureURL(_ name: String, _ ext: String) throws -> URL {
    try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures"), "missing fixture \(name).\(ext)")
}

final class SegmentationModelsTests: XCTestCase {
    /// Every model's state_dict names, order and shapes equal the PyTorch reference's (mmseg's).
    func testStateDictNamesAndShapesMatchPyTorch() throws {
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("names", "json"))) as? [String: Any])
        let models = try XCTUnwrap(json["models"] as? [String: [[Any]]])
        XCTAssertEqual(models.count, 12)
        for (key, entries) in models.sorted(by: { $0.key < $1.key }) {
            var rng = SeededRNG(seed: 1, stream: "names")
            let model: SegmentationModel
            if key == "deeplabv3plus_r50_os16_noaux_19" {
                model = try makeSegmentationModel(name: "deeplabv3plus_r50", classes: 19, rng: &rng, outputStride: 16, auxiliaryHead: false)
            } else {
                model = try makeSegmentationModel(name: key, classes: 150, rng: &rng)
            }
            let ours = model.stateDict().map { "\($0.0) \($0.1.shape)" }
            let theirs = entries.map { "\($0[0] as! String) \(($0[1] as! [Int]))" }
            XCTAssertEqual(ours.count, theirs.count, key)
            for (a, b) in zip(ours, theirs) where a != b { XCTFail("\(key): ours \(a), PyTorch \(b)"); break }
        }
    }

    /// Tiny-width models loaded with PyTorch's weights (training-mode BN for the R18 cases, eval
    /// mode for the R50 and HRNet ones, whose tiny batch statistics are too ill-conditioned): logits, auxiliary logits (where the recipe has them), the training
    /// loss (CE on upsampled logits, ignore 255, aux weight 0.4), every parameter gradient and
    /// the updated BN running statistics match the float64 reference within 1e-4 relative
    /// (gradients 2e-4: tens of float32 layers deep, see the floor below).
    func testForwardGradientsAndRunningStatsMatchPyTorch() throws {
        for file in ["pspnet_r18_os8", "deeplabv3plus_r18_os16", "deeplabv3plus_r50_os8", "pspnet_r50_os16", "fcn_hr18s_base8"] {
            let h5 = try HDF5File(reading: fixtureURL(file, "h5").path)
            defer { try? h5.close() }
            func attr(_ name: String) throws -> HDF5AttributeValue { try XCTUnwrap(try h5.attribute(name), "\(file): attribute \(name)") }
            guard case .string(let name) = try attr("model"), case .int(let classes) = try attr("classes"),
                  case .int(let base) = try attr("base_channels"), case .int(let os) = try attr("output_stride"),
                  case .ints(let rates) = try attr("aspp_dilations"), case .string(let layoutJSON) = try attr("layout"),
                  case .int(let trainMode) = try attr("train_mode") else {
                XCTFail("\(file): unexpected attribute types"); continue
            }
            var rng = SeededRNG(seed: 0, stream: "fixture")
            let model = try makeSegmentationModel(name: name, classes: Int(classes), rng: &rng, outputStride: Int(os),
                                                  baseChannels: Int(base), asppDilations: rates.isEmpty ? nil : rates.map { Int($0) })
            // The layout must name our state dict exactly before the flat data can be sliced.
            let layout = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(layoutJSON.utf8)) as? [[Any]])
            let mine = model.stateDict()
            XCTAssertEqual(mine.map { "\($0.0) \($0.1.shape)" }, layout.map { "\($0[0] as! String) \(($0[1] as! [Int]))" }, file)
            let flat = try h5.readTensor(at: "state")
            var state: [String: Tensor] = [:], offset = 0
            for (n, t) in mine {
                state[n] = Tensor(shape: t.shape, values: Array(UnsafeBufferPointer(start: flat.data + offset, count: t.count)))
                offset += t.count
            }
            XCTAssertEqual(offset, flat.count, file)
            try model.loadStateDict(state)
            model.train(trainMode != 0)   // ResNet-50 cases run in eval mode (see make_seg_fixtures.py)

            let x = try h5.readTensor(at: "x")
            let labels = try h5.readTensor(at: "labels").values.map { Int32($0) }
            let size = (x.shape[2], x.shape[3])
            Tape.current.reset()
            let out = model(x)
            // The HRNet recipes have no auxiliary head: neither side has auxiliary logits.
            let hasAux = try h5.exists("aux_logits")
            XCTAssertEqual(out.auxLogits != nil, hasAux, "\(file): auxiliary head")
            var loss = Loss.crossEntropy(upsampleLogits(out.logits, to: size), target: labels, ignoreIndex: 255)
            var compared = [("logits", out.logits)]
            if let aux = out.auxLogits, hasAux {
                loss = loss + Loss.crossEntropy(upsampleLogits(aux, to: size), target: labels, ignoreIndex: 255) * 0.4
                compared.append(("aux_logits", aux))
            }
            for (what, ours) in compared {
                let expected = try h5.readTensor(at: what)
                XCTAssertEqual(ours.shape, expected.shape, "\(file) \(what)")
                XCTAssertLessThan(relativeError(ours.values, expected.values), 1e-4, "\(file) \(what)")
            }
            let refLoss = Double(try h5.readTensor(at: "loss").item)
            XCTAssertEqual(Double(loss.item), refLoss, accuracy: 1e-5 * max(1, abs(refLoss)), "\(file) loss")
            loss.backward()

            // Each gradient is judged relative to its own largest element, floored at 1e-3 of the
            // largest gradient anywhere in the model: some gradients are zero in exact arithmetic
            // (a 1×1 pooled branch followed by BN over a batch of 2 normalises to ±1 whatever
            // its weights; a depthwise 3×3 whose dilated taps all land in the padding keeps
            // only its centre tap, which BN makes scale-free), and there both sides hold only
            // rounding noise.
            let grads = try h5.readTensor(at: "grad")
            let global = Double(grads.values.map { abs($0) }.max() ?? 0)
            offset = 0
            var worst = (0.0, "")
            for (n, p) in model.namedParameters() {
                let ref = Array(UnsafeBufferPointer(start: grads.data + offset, count: p.count))
                offset += p.count
                guard let g = p.grad else { XCTFail("\(file): \(n) got no gradient"); continue }
                let scale = max(Double(ref.map { abs($0) }.max() ?? 0), 1e-3 * global)
                let diff = zip(g.values, ref).map { Double(abs($0 - $1)) }.max() ?? 0
                if diff / scale > worst.0 { worst = (diff / scale, n) }
            }
            XCTAssertEqual(offset, grads.count, file)
            XCTAssertLessThan(worst.0, 2e-4, "\(file): worst gradient \(worst.1)")
            print("\(file): worst relative gradient error \(worst.0) at \(worst.1)")

            let after = try h5.readTensor(at: "after")
            let running = model.namedBuffers().filter { $0.0.contains("running") }.flatMap { $0.1.values }
            XCTAssertLessThan(relativeError(running, after.values), 1e-5, "\(file) running statistics")
        }
    }

    /// Stage sizes for each output stride, including odd inputs (each stride-2 step rounds up),
    /// and the dilation of every 3×3 convolution (mmseg's contract_dilation).
    func testOutputStrideSetsStageSizesAndDilations() throws {
        for depth in [ResNetDepth.r18, .r50] {
            for (os, expected) in [(8, [17, 9, 9, 9]), (16, [17, 9, 5, 5]), (32, [17, 9, 5, 3])] {
                var rng = SeededRNG(seed: 3, stream: "os")
                let backbone = ResNetBackbone(depth: depth, outputStride: os, baseChannels: 2, rng: &rng)
                let feats = Tape.withoutGrad { backbone(randomTensor([1, 3, 65, 65], seed: 4, requiresGrad: false)) }
                XCTAssertEqual(feats.map { $0.shape[2] }, expected, "\(depth) OS\(os)")
                XCTAssertEqual(feats.map { $0.shape[3] }, expected, "\(depth) OS\(os)")
                XCTAssertEqual(feats.map { $0.shape[1] }, backbone.stageChannels)
                XCTAssertEqual(backbone.stageChannels, [1, 2, 4, 8].map { $0 * 2 * depth.expansion })
            }
            var rng = SeededRNG(seed: 3, stream: "os")
            let b = ResNetBackbone(depth: depth, outputStride: 8, baseChannels: 2, rng: &rng)
            // The 3×3 conv of each block: conv1 in BasicBlock, conv2 in Bottleneck.
            let threes = b.namedModules().compactMap { name, m -> (String, Int)? in
                guard let c = m as? Conv2d, c.weight.shape[2] == 3 else { return nil }
                return (name, c.dilation.0)
            }.filter { depth.usesBottleneck ? $0.0.hasSuffix("conv2") : $0.0.hasSuffix("conv1") }
            let layer3 = threes.filter { $0.0.hasPrefix("layer3.") }.map(\.1)
            let layer4 = threes.filter { $0.0.hasPrefix("layer4.") }.map(\.1)
            XCTAssertEqual(layer3, [1] + Array(repeating: 2, count: depth.blocks[2] - 1), "\(depth) layer3")
            XCTAssertEqual(layer4, [2] + Array(repeating: 4, count: depth.blocks[3] - 1), "\(depth) layer4")
            XCTAssertTrue(threes.filter { $0.0.hasPrefix("layer1.") || $0.0.hasPrefix("layer2.") }.allSatisfy { $0.1 == 1 })
        }
    }

    /// Logit resolutions: PSPNet at the output stride, DeepLabV3+ at 1/4, aux at layer3;
    /// upsampleLogits restores the input size.
    func testLogitResolutions() throws {
        for (name, os, main, aux) in [("pspnet_r18", 8, 8, 8), ("pspnet_r50", 16, 4, 4), ("deeplabv3plus_r18", 8, 16, 8),
                                      ("deeplabv3plus_r101", 16, 16, 4)] {
            var rng = SeededRNG(seed: 5, stream: "res")
            let model = try makeSegmentationModel(name: name, classes: 7, rng: &rng, outputStride: os, baseChannels: 2)
            let x = randomTensor([2, 3, 64, 64], seed: 6, requiresGrad: false)
            let out = model(x)
            XCTAssertEqual(out.logits.shape, [2, 7, main, main], name)
            XCTAssertEqual(out.auxLogits?.shape, [2, 7, aux, aux], name)
            let up = upsampleLogits(out.logits, to: (64, 64))
            XCTAssertEqual(up.shape, [2, 7, 64, 64])
            XCTAssertEqual(up.values, out.logits.resizeBilinear((64, 64), alignCorners: false).values)
        }
        var rng = SeededRNG(seed: 5, stream: "res")
        let noAux = try makeSegmentationModel(name: "pspnet_r18", classes: 3, rng: &rng, auxiliaryHead: false, baseChannels: 2)
        XCTAssertNil(noAux(randomTensor([2, 3, 32, 32], seed: 6, requiresGrad: false)).auxLogits)
        XCTAssertFalse(noAux.stateDict().contains { $0.0.hasPrefix("auxiliary_head.") })
    }

    /// Seeded initialisation as mmseg's: Kaiming-normal fan_out convs, BN 1/0, conv_seg
    /// N(0, 0.01²) with zero bias; the same seed gives the same bytes, another seed other bytes.
    func testInitialisation() throws {
        func build(_ seed: UInt64) throws -> SegmentationModel {
            var rng = SeededRNG(seed: seed, stream: "init")
            return try makeSegmentationModel(name: "deeplabv3plus_r50", classes: 150, rng: &rng, baseChannels: 16)
        }
        let a = try build(1), b = try build(1), c = try build(2)
        XCTAssertEqual(a.stateDict().flatMap { $0.1.values.map(\.bitPattern) }, b.stateDict().flatMap { $0.1.values.map(\.bitPattern) })
        let aStem = try XCTUnwrap(a.backbone as? ResNetBackbone), cStem = try XCTUnwrap(c.backbone as? ResNetBackbone)
        XCTAssertNotEqual(aStem.conv1.weight.values, cStem.conv1.weight.values)
        for (name, t) in a.namedParameters() {
            let v = t.values.map(Double.init)
            if name.hasSuffix("bn.weight") || name.contains(".bn") && name.hasSuffix(".weight") || name.hasSuffix("downsample.1.weight") {
                XCTAssertTrue(v.allSatisfy { $0 == 1 }, name); continue
            }
            if name.hasSuffix(".bias") { XCTAssertTrue(v.allSatisfy { $0 == 0 }, name); continue }
            guard t.rank == 4, t.count >= 2000 else { continue }   // enough samples for a std estimate
            let mean = v.reduce(0, +) / Double(v.count)
            let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
            let fanOut = Double(t.shape[0] * t.shape[2] * t.shape[3])
            let expected = name.contains("conv_seg") ? 0.01 : (2 / fanOut).squareRoot()
            XCTAssertEqual(std, expected, accuracy: 0.05 * expected, name)
        }
    }

    /// HRNet's branches sit at strides 4, 8, 16, 32 with each stride-2 step rounding up (odd
    /// inputs included), widths scale with the stem, the FCN head's logits are at the first
    /// branch's size, and there is no auxiliary head; fuse layers leave PyTorch's gaps (no
    /// `fuse_layers.i.i`), and the backbone draws as mmseg initialises it (Kaiming-normal fan_out).
    func testHRNetBranchesHeadAndNames() throws {
        for (name, spec) in hrNetRecipes {
            var rng = SeededRNG(seed: 2, stream: "hrnet")
            let model = try makeSegmentationModel(name: name, classes: 6, rng: &rng, baseChannels: 16)
            let hr = try XCTUnwrap(model.backbone as? HRNetBackbone)
            XCTAssertEqual(hr.spec, spec)
            XCTAssertEqual(hr.stageChannels, spec.branchWidths.map { $0 / 4 }, name)
            XCTAssertNil(model.auxiliaryHead)
            let x = randomTensor([2, 3, 65, 47], seed: 3, requiresGrad: false)
            let feats = Tape.withoutGrad { hr(x) }
            XCTAssertEqual(feats.map { [$0.shape[1], $0.shape[2], $0.shape[3]] },
                           [[hr.stageChannels[0], 17, 12], [hr.stageChannels[1], 9, 6], [hr.stageChannels[2], 5, 3], [hr.stageChannels[3], 3, 2]], name)
            XCTAssertEqual(Tape.withoutGrad { model(x) }.logits.shape, [2, 6, 17, 12], name)
            let names = Set(model.stateDict().map(\.0))
            XCTAssertTrue(names.contains("backbone.stage2.0.fuse_layers.0.1.0.weight") && names.contains("backbone.stage4.0.fuse_layers.3.2.0.1.weight"))
            XCTAssertFalse(names.contains { $0.hasPrefix("backbone.stage3.0.fuse_layers.1.1.") }, name)
            XCTAssertEqual(names.filter { $0.hasPrefix("backbone.stage4.") && $0.hasSuffix("conv1.weight") && $0.contains("branches") }.count,
                           spec.modulesPerStage[2] * 4 * spec.blocksPerBranch, name)
        }
        var rng = SeededRNG(seed: 4, stream: "hrnet")
        let full = try makeSegmentationModel(name: "fcn_hr18s", classes: 19, rng: &rng)
        let params = full.namedParameters()
        // mmseg's fcn_hr18s on Cityscapes: 3.94 M parameters (PyTorch twin, tools/pytorch/seg_models.py).
        XCTAssertEqual(params.reduce(0) { $0 + $1.1.count }, 3_939_309)
        let w = try XCTUnwrap(params.first { $0.0 == "backbone.stage3.1.branches.2.0.conv1.weight" }?.1).values.map(Double.init)
        let std = (w.map { $0 * $0 }.reduce(0, +) / Double(w.count)).squareRoot()
        XCTAssertEqual(std, (2.0 / Double(72 * 9)).squareRoot(), accuracy: 0.05 * (2.0 / Double(72 * 9)).squareRoot())
    }

    /// Names and options that do not describe a model are refused with a message naming them.
    func testBadNamesAndOptions() {
        var rng = SeededRNG(seed: 0)
        XCTAssertThrowsError(try makeSegmentationModel(name: "pspnet_r20", classes: 3, rng: &rng)) {
            XCTAssertTrue("\($0)".contains("pspnet_r20") && "\($0)".contains("deeplabv3plus_r101"))
        }
        XCTAssertThrowsError(try makeSegmentationModel(name: "unet_r18", classes: 3, rng: &rng))
        XCTAssertThrowsError(try makeSegmentationModel(name: "pspnet_r18", classes: 3, rng: &rng, outputStride: 4)) {
            XCTAssertTrue("\($0)".contains("output stride"))
        }
        XCTAssertThrowsError(try makeSegmentationModel(name: "pspnet_r18", classes: 0, rng: &rng))
        XCTAssertThrowsError(try makeSegmentationModel(name: "deeplabv3plus_r18", classes: 3, rng: &rng, asppDilations: [1, 0]))
        XCTAssertEqual(segmentationModelNames.count, 11)
        XCTAssertThrowsError(try makeSegmentationModel(name: "fcn_hr32", classes: 3, rng: &rng)) { XCTAssertTrue("\($0)".contains("fcn_hr18s")) }
    }
}
