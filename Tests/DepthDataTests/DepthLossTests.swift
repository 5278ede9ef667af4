import Depth
import DepthData
import Foundation
import PercepCore
import PercepHDF5
import XCTest

/// Bins, soft-argmax depth, WCE and the virtual-normal loss against the float64 PyTorch twin
/// (tools/pytorch/depth_twin.py, fixture depth_losses.h5): losses within 1e-5 relative, the
/// gradient of WCE + 6·VNL with respect to the logits within 1e-4 relative norm.
final class DepthLossTests: XCTestCase {
    func testLossesAndGradientMatchTheTwin() throws {
        let file = try HDF5File(reading: try DepthDataTests.fixture("depth_losses.h5"))
        let logits = try file.readTensor(at: "logits"), gt = try file.readTensor(at: "gt")
        let triplets = try file.readIntegers(at: "triplets").values
        let bins = DepthBins()
        let (binned, clamped) = bins.binned(gt.values)
        XCTAssertEqual(binned.map(Int64.init), try file.readIntegers(at: "bins").values)
        XCTAssertEqual(clamped, try file.readTensor(at: "clamped").values)

        logits.requiresGrad = true
        let wce = DepthLoss.weightedCrossEntropy(logits, bins: binned, clampedDepth: clamped, weights: bins.crossEntropyWeights())
        let depth = logits.binsToDepth(bins)
        let twinDepth = try file.readTensor(at: "pred_depth").values
        for (a, b) in zip(depth.values, twinDepth) { XCTAssertEqual(a, b, accuracy: 2e-6 * b) }
        var settings = DepthLoss.VirtualNormalSettings()
        guard case .double(let focal)? = try file.attribute("focal_length") else { return XCTFail("no focal_length") }
        settings.focalX = Float(focal); settings.focalY = Float(focal)
        let picks = stride(from: 0, to: triplets.count, by: 3).map { (Int32(triplets[$0]), Int32(triplets[$0 + 1]), Int32(triplets[$0 + 2])) }
        let (vnl, kept, _) = DepthLoss.virtualNormal(depth, groundTruth: clamped, triplets: picks, settings: settings)
        XCTAssertEqual(kept.flatMap { $0.map { Int64($0 ? 1 : 0) } }, try file.readIntegers(at: "kept").values, "the float32 filter keeps the same triplets")
        for (name, value) in [("loss_wce", wce), ("loss_vnl", vnl)] {
            guard case .double(let want)? = try file.attribute(name) else { return XCTFail("no \(name)") }
            XCTAssertEqual(Double(value.values[0]), want, accuracy: 1e-5 * abs(want), name)
            print("\(name): \(value.values[0]) vs twin \(want), relative \(abs(Double(value.values[0]) - want) / abs(want))")
        }
        (wce + vnl * 6).backward()
        let grad = try XCTUnwrap(logits.grad).values, want = try file.readTensor(at: "grad_logits").values
        var diff = 0.0, norm = 0.0
        for (a, b) in zip(grad, want) { diff += Double(a - b) * Double(a - b); norm += Double(b) * Double(b) }
        XCTAssertLessThan((diff / norm).squareRoot(), 1e-4, "relative L2 of the gradient")
        print("grad_logits: relative L2 \((diff / norm).squareRoot())")
    }

    /// The bins: Δ and the centres as VNL's config computes them, padding and clamping.
    func testBinsOfPaddingZeroAndTheTop() {
        let bins = DepthBins()
        XCTAssertEqual(bins.interval, (log10(1.7) - log10(0.01)) / 150, accuracy: 1e-15)
        let (b, c) = bins.binned([-1, 0, 1.7, 5, 0.01])
        XCTAssertEqual(b, [151, 0, 149, 149, 0])
        XCTAssertEqual(c, [-1, 0.01, 1.7, 1.7, 0.01])
        let w = bins.crossEntropyWeights()
        for j in [0, 75, 149] { XCTAssertEqual(w[(j * 150)..<(j * 150 + 150)].reduce(0, +), 1, accuracy: 1e-5) }
    }
}

/// `synth depth` writes what the real readers read: the v7.3 file and splits.mat, planes whose
/// virtual normals agree with themselves (the VNL loss of the ground truth against itself is 0).
final class SynthDepthTests: XCTestCase {
    func testSyntheticSetReadsBackThroughTheNYUReaders() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synthdepth-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spec = SynthDepthSpec.tiny
        spec.images = 6
        try SynthDepth.write(spec, seed: 4, to: dir + "/a")
        try SynthDepth.write(spec, seed: 4, to: dir + "/b")
        try SynthDepth.write(spec, seed: 5, to: dir + "/c")
        let nyu = try NYULabeledFile(path: dir + "/a/" + SynthDepth.labeledFileName)
        XCTAssertEqual([nyu.count, nyu.height, nyu.width], [6, 120, 160])
        let splits = try NYUSplits(path: dir + "/a/" + SynthDepth.splitsFileName, imageCount: 6)
        XCTAssertEqual(splits.test, [4])
        XCTAssertEqual(splits.train, [0, 1, 2, 3, 5])
        let header = try XCTUnwrap(FileHandle(forReadingAtPath: dir + "/a/" + SynthDepth.labeledFileName)).readData(ofLength: 128)
        XCTAssertTrue(String(decoding: header.prefix(19), as: UTF8.self) == "MATLAB 7.3 MAT-file" && header[126] == UInt8(ascii: "I"))
        let same = try NYULabeledFile(path: dir + "/b/" + SynthDepth.labeledFileName).sample(3)
        let other = try NYULabeledFile(path: dir + "/c/" + SynthDepth.labeledFileName).sample(3)
        let sample = try nyu.sample(3)
        XCTAssertEqual(sample.rgb, same.rgb, "a seed gives the same set")
        XCTAssertNotEqual(sample.depth, other.depth)
        for i in 0..<6 {
            let s = try nyu.sample(i)
            XCTAssertTrue(s.depth.allSatisfy { $0 > 0.3 && $0 < 9.5 }, "depth range of image \(i)")
            // Normalised depth (metres / 10) against itself: every kept triplet has identical normals.
            let z = s.depth.map { $0 / 10 }
            var settings = DepthLoss.VirtualNormalSettings()
            settings.focalX = 129.75; settings.focalY = 129.75
            var rng = SeededRNG(seed: 9)
            let triplets = DepthLoss.sampleTriplets(count: 2000, pixels: 120 * 160, rng: &rng)
            let (loss, kept, _) = DepthLoss.virtualNormal(Tensor(shape: [1, 1, 120, 160], values: z), groundTruth: z, triplets: triplets, settings: settings)
            XCTAssertEqual(loss.values[0], 0, "image \(i)")
            XCTAssertGreaterThan(kept[0].filter { $0 }.count, 100, "image \(i) keeps triplets")
        }
    }
}

/// VNL's network: names and the trainable-parameter count of the full ResNet-50 model (VNL's
/// 71,815,382), and forward and gradients against the float64 PyTorch twin at narrow widths.
final class VNLModelTests: XCTestCase {
    static var narrow: VNLModelSpec {
        var s = VNLModelSpec()
        s.baseWidth = 4; s.blocks = [2, 1, 1, 2]; s.lateralOut = [16, 8, 8, 8]; s.asppChannels = 8
        s.fcnIn = [16, 8, 8, 8, 8, 8]; s.fcnOut = [8, 8, 8, 8, 8]; s.bins = 40
        return s
    }

    func testFullModelHasVNLsParameterCountAndNames() {
        var rng = SeededRNG(seed: 0)
        let model = VNLDepthModel(rng: &rng)
        XCTAssertEqual(model.namedParameters().reduce(0) { $0 + $1.1.count }, 71_815_382)
        let names = Set(model.stateDict().map(\.0))
        for name in ["depth_model.encoder_modules.bottomup.res1.conv1.weight", "depth_model.encoder_modules.bottomup.res5.2.conv2.weight",
                     "depth_model.encoder_modules.bottomup.res3.0.shortcut.bn.running_var",
                     "depth_model.encoder_modules.topdown_lateral_modules.3.lateral.conv2.bias",
                     "depth_model.encoder_modules.bottomup_top.aspp_conv3_3.weight", "depth_model.encoder_modules.bottomup_top.globalpool_bn.weight",
                     "depth_model.decoder_modules.top.1.running_mean", "depth_model.decoder_modules.topdown_fcn2.afa_block.conv1.weight",
                     "depth_model.decoder_modules.topdown_fcn4.ftb_block.bn1.weight", "depth_model.decoder_modules.topdown_fcn5.ftb.conv3.weight",
                     "depth_model.decoder_modules.topdown_predict.conv1.bias"] {
            XCTAssertTrue(names.contains(name), name)
        }
    }

    func testNarrowModelMatchesTheTwin() throws {
        let file = try HDF5File(reading: try DepthDataTests.fixture("vnl_model.h5"))
        var rng = SeededRNG(seed: 1)
        let model = VNLDepthModel(Self.narrow, rng: &rng)
        var state: [String: Tensor] = [:]
        for (name, t) in model.stateDict() {
            state[name] = name.hasSuffix("num_batches_tracked")
                ? Tensor(shape: [], values: [Float(try file.readIntegers(at: "state/" + name).values[0])])
                : try file.readTensor(at: "state/" + name)
        }
        XCTAssertEqual(Set(try file.datasetNames(in: "state")), Set(model.stateDict().map(\.0)), "names and entries")
        try model.loadStateDict(state)
        model.train(true)
        let x = try file.readTensor(at: "input")
        x.requiresGrad = true
        let logits = model(x)
        func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
            var d = 0.0, n = 0.0
            for (p, q) in zip(a, b) { d += Double(p - q) * Double(p - q); n += Double(q) * Double(q) }
            return (d / max(n, 1e-30)).squareRoot()
        }
        let want = try file.readTensor(at: "logits")
        XCTAssertEqual(logits.shape, want.shape)
        XCTAssertLessThan(relativeL2(logits.values, want.values), 1e-4, "logits")
        (logits * (try file.readTensor(at: "r"))).sum().backward()
        XCTAssertLessThan(relativeL2(try XCTUnwrap(x.grad).values, try file.readTensor(at: "input_grad").values), 1e-3, "d/d input")
        var worst = (0.0, ""), grads: [(String, [Float], [Float])] = []
        for (name, p) in model.namedParameters() { grads.append((name, try XCTUnwrap(p.grad, name).values, try file.readTensor(at: "grad/" + name).values)) }
        func norm(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let largest = grads.map { norm($0.2) }.max() ?? 1
        for (name, mine, twin) in grads {
            // A bias right before a training-mode BatchNorm has a zero gradient (BN removes the
            // mean): there both sides must be negligible next to the largest gradient.
            if norm(twin) < 1e-7 * largest {
                XCTAssertLessThan(norm(mine), 1e-5 * largest, "\(name) should have a vanishing gradient")
                continue
            }
            let e = relativeL2(mine, twin)
            if e > worst.0 { worst = (e, name) }
        }
        XCTAssertLessThan(worst.0, 1e-3, "worst parameter gradient: \(worst.1)")
        print("VNL narrow twin: worst parameter gradient relative L2 \(worst.0) (\(worst.1))")
    }
}
