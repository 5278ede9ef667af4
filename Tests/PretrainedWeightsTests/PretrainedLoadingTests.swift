import Checkpoint
import Foundation
import InstanceModels
import PercepCore
import PercepHDF5
import PercepNN
import Perceptual
import PretrainedWeights
import SegmentationModels
import TestSupport
import Trainer
import Training
import XCTest

/// `.pth` / `.pkl` files into our models through `MODEL.WEIGHTS`' loader and the name maps, the
/// 'T' loss network from torchvision's names, and the `weights` command.
final class PretrainedLoadingTests: XCTestCase {
    func fixture(_ name: String) throws -> String { try WeightsReaderTests.fixture(name) }

    func values(_ file: String) throws -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: try WeightsReader.read(try fixture(file)).tensors.map { ($0.name, $0.values) })
    }

    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    // MARK: name maps against the real models' names

    /// Every blob of Caffe2's ResNet-50 (`R-50.pkl`: conv1, res_conv1_bn, res2–res5 with
    /// branch1/branch2{a,b,c}, fc1000) lands on a CondInst R-50 name after detectron2's rename and
    /// the map, and every backbone tensor CondInst needs from it is covered.
    func testCaffe2ResNet50NamesCoverCondInstsBackbone() {
        var blobs = ["conv1_w", "res_conv1_bn_s", "res_conv1_bn_b", "fc1000_w", "fc1000_b"]
        for (stage, blocks) in zip(2...5, [3, 4, 6, 3]) {
            for b in 0..<blocks {
                for branch in ["branch2a", "branch2b", "branch2c"] + (b == 0 ? ["branch1"] : []) {
                    blobs += ["_w", "_bn_s", "_bn_b"].map { "res\(stage)_\(b)_\(branch)\($0)" }
                }
            }
        }
        var rng = SeededRNG(seed: 0)
        let model = CondInstModel(CondInstSpec(), rng: &rng)
        let ours = Set(model.stateDict().map(\.0))
        let mapped = blobs.compactMap { WeightNames.condInst(WeightNames.detectron2Name(caffe2: $0)) }
        XCTAssertEqual(mapped.count, blobs.count - 2, "only the classifier is dropped")
        for name in mapped { XCTAssertTrue(ours.contains(name), name) }
        // FrozenBN statistics are not in R-50.pkl (scale and shift only): they stay 0 and 1.
        let backboneAffine = ours.filter { $0.hasPrefix("backbone.bottom_up.") && !$0.hasSuffix("running_mean") && !$0.hasSuffix("running_var") }
        XCTAssertEqual(Set(mapped), backboneAffine)
    }

    /// torchvision's ResNet-50 names map to the same CondInst names (detectron2's
    /// convert-torchvision-to-d2 rename), and torchvision's ResNet-18 onto the segmentation
    /// backbone under `backbone.`.
    func testTorchvisionResNetNamesMapOntoCondInstAndSegmentation() throws {
        func torchvisionNames(blocks: [Int], bottleneck: Bool) -> [String] {
            var n = ["conv1.weight"] + ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map { "bn1.\($0)" }
            for (i, count) in blocks.enumerated() {
                for b in 0..<count {
                    for j in 1...(bottleneck ? 3 : 2) {
                        n.append("layer\(i + 1).\(b).conv\(j).weight")
                        n += ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map { "layer\(i + 1).\(b).bn\(j).\($0)" }
                    }
                    if b == 0 && (bottleneck || i > 0) {
                        n.append("layer\(i + 1).0.downsample.0.weight")
                        n += ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map { "layer\(i + 1).0.downsample.1.\($0)" }
                    }
                }
            }
            return n + ["fc.weight", "fc.bias"]
        }
        var rng = SeededRNG(seed: 0)
        let condinst = Set(CondInstModel(CondInstSpec(), rng: &rng).stateDict().map(\.0))
        let r50 = torchvisionNames(blocks: [3, 4, 6, 3], bottleneck: true).compactMap(WeightNames.condInst)
        // FrozenBN has no num_batches_tracked: those are the only names CondInst does not take.
        XCTAssertEqual(Set(r50.filter { !condinst.contains($0) }.map { $0.hasSuffix("num_batches_tracked") }), [true])
        XCTAssertTrue(r50.contains("backbone.bottom_up.stem.conv1.norm.running_var") && r50.contains("backbone.bottom_up.res5.0.shortcut.norm.weight"))

        let seg = try makeSegmentationModel(name: "pspnet_r18", classes: 150, rng: &rng)
        let segNames = Set(seg.stateDict().map(\.0))
        let r18 = torchvisionNames(blocks: [2, 2, 2, 2], bottleneck: false).compactMap(WeightNames.segmentation)
        XCTAssertEqual(r18.count, torchvisionNames(blocks: [2, 2, 2, 2], bottleneck: false).count - 2)
        for name in r18 { XCTAssertTrue(segNames.contains(name), name) }
    }

    /// An ImageNet HRNet file (mmseg's `open-mmlab://msra/hrnetv2_w18_small`: the backbone's
    /// names bare, plus HRNet-Image-Classification's head) maps onto every backbone tensor of
    /// `fcn_hr18s` under `backbone.`, the classification head dropped.
    func testImageNetHRNetNamesMapOntoTheBackbone() throws {
        var rng = SeededRNG(seed: 0)
        let model = try makeSegmentationModel(name: "fcn_hr18s", classes: 19, rng: &rng, baseChannels: 8)
        let backbone = model.stateDict().map(\.0).filter { $0.hasPrefix("backbone.") }
        let file = backbone.map { String($0.dropFirst("backbone.".count)) } +
            ["incre_modules.0.0.conv1.weight", "downsamp_modules.2.0.weight", "final_layer.1.running_var", "classifier.weight", "classifier.bias"]
        XCTAssertEqual(file.compactMap(WeightNames.segmentation), backbone)
        XCTAssertTrue(backbone.contains("backbone.transition1.1.0.0.weight") && backbone.contains("backbone.stage4.1.fuse_layers.3.0.2.1.running_var"))
        // mmseg's own fcn_hr18s checkpoints keep their names.
        XCTAssertEqual(WeightNames.segmentation("decode_head.convs.0.conv.weight"), "decode_head.convs.0.conv.weight")
        XCTAssertEqual(WeightNames.segmentation("backbone.stage2.0.branches.0.0.conv1.weight"), "backbone.stage2.0.branches.0.0.conv1.weight")
    }

    // MARK: loading

    /// A torchvision-named ResNet `.pth` into the synthetic students' PSPNet-R18 (base width 8):
    /// the stem and layer1 are loaded (values exact), the classifier dropped, the rest reported
    /// missing; a strict load of the same file names every problem and changes nothing.
    func testTorchvisionPthLoadsIntoTheSegmentationBackbone() throws {
        var rng = SeededRNG(seed: 1)
        let model = try makeSegmentationModel(name: "pspnet_r18", classes: 4, rng: &rng, baseChannels: 8)
        let path = try fixture("torchvision_resnet_w8.pth")
        let before = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.0, $0.1.values) })
        XCTAssertThrowsError(try CheckpointLoader.loadWeights(from: path, into: model, remap: .segmentation, strict: true)) { error in
            XCTAssertTrue("\(error)".contains("missing keys: ") && "\(error)".contains("backbone.layer2.0.conv1.weight"), "\(error)")
        }
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.0, $0.1.values) }), before, "a failed strict load changes nothing")

        let report = try CheckpointLoader.loadWeights(from: path, into: model, remap: .segmentation, strict: false)
        XCTAssertEqual(report.loaded, 30)
        XCTAssertEqual(report.dropped, 2)
        XCTAssertTrue(report.unused.isEmpty && report.misshapen.isEmpty, "\(report)")
        XCTAssertTrue(report.missing.contains("backbone.layer2.0.conv1.weight") && report.missing.contains("decode_head.conv_seg.weight"))
        XCTAssertTrue(report.description.hasPrefix("loaded 30 of \(report.modelTotal) model tensors from \(path) (PyTorch zip)"), report.description)
        let file = try values("torchvision_resnet_w8.pth")
        let mine = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.0, $0.1.values) })
        for (name, v) in file where !name.hasPrefix("fc.") { XCTAssertEqual(mine["backbone." + name], v, name) }
    }

    /// Shapes that differ are skipped and named (detectron2's behaviour), the rest loads.
    func testMisshapenTensorsAreSkippedAndNamed() throws {
        var rng = SeededRNG(seed: 1)
        let model = try makeSegmentationModel(name: "pspnet_r18", classes: 4, rng: &rng, baseChannels: 16)
        let report = try CheckpointLoader.loadWeights(from: try fixture("torchvision_resnet_w8.pth"), into: model, remap: .segmentation, strict: false)
        XCTAssertTrue(report.misshapen.contains("backbone.conv1.weight: checkpoint [8, 3, 7, 7], model [16, 3, 7, 7]"), "\(report)")
        XCTAssertTrue(report.description.contains("shapes differ, skipped"))
        // num_batches_tracked is a scalar whatever the width: only those load.
        XCTAssertEqual(report.loaded, 5)
    }

    /// The 'T' loss network from torchvision's VGG names (a `.pth`), classifier ignored; a file
    /// for another width is refused with the misshapen names.
    func testPretrainedLossNetworkFromTorchvisionPth() throws {
        var config = LossNetworkConfig(inChannels: 2)
        config.structure = [1, 1, 1, 1, 1]
        config.widths = [4, 4, 4, 4, 4]
        var reported: WeightLoadReport?
        let loss = try LossNetworkFile.pretrained(config, weights: try fixture("torchvision_vgg_w4.pth"), report: { reported = $0 })
        XCTAssertEqual(reported?.loaded, 10)
        XCTAssertEqual(reported?.dropped, 2)
        let file = try values("torchvision_vgg_w4.pth")
        for (name, t) in loss.network.stateDict() { XCTAssertEqual(t.values, file[name], name) }
        config.widths = [8, 8, 8, 8, 8]
        XCTAssertThrowsError(try LossNetworkFile.pretrained(config, weights: try fixture("torchvision_vgg_w4.pth"))) { error in
            XCTAssertTrue("\(error)".contains("features.0.weight: checkpoint [4, 3, 3, 3], model [8, 3, 3, 3]"), "\(error)")
        }
    }

    /// GoogLeNet's 'T' network from a file under torchvision's names: every trunk tensor loads,
    /// the auxiliary classifiers and fc are dropped.
    func testPretrainedGoogLeNetDropsTheAuxiliaryClassifiers() throws {
        var config = LossNetworkConfig(inChannels: 4)
        config.family = .googlenet
        var source = config
        source.inChannels = 3
        source.seed = 99
        let trunk = try makeLossNetwork(source).stateDict().map { (name: $0.0, tensor: $0.1) }
        let extras = ["aux1.conv.conv.weight", "aux1.fc1.weight", "aux2.fc2.bias", "fc.weight", "fc.bias"].map {
            (name: $0, tensor: Tensor(shape: [2], values: [1, 2]))
        }
        let path = dir.appendingPathComponent("googlenet_like.h5").path
        try CheckpointWriter.writeWeights(trunk + extras, source: "test", to: path)
        var reported: WeightLoadReport?
        let loss = try LossNetworkFile.pretrained(config, weights: path, report: { reported = $0 })
        XCTAssertEqual(reported?.loaded, trunk.count)
        XCTAssertEqual(reported?.dropped, extras.count)
        let expected = Dictionary(uniqueKeysWithValues: trunk.map { ($0.name, $0.tensor.values) })
        for (name, t) in loss.network.stateDict() { XCTAssertEqual(t.values, expected[name], name) }
    }

    /// `LOSS.PERCEPTUAL.WEIGHTS` gives training the same 'T' network (Table 1's pretrained row).
    func testPretrainedLossNetworkFromTheConfig() throws {
        let yaml = dir.appendingPathComponent("t.yaml")
        try Data("""
            LOSS:
              PERCEPTUAL:
                ENABLED: true
                STRUCTURE: [1, 1, 1, 1, 1]
                WIDTHS: [4, 4, 4, 4, 4]
                WEIGHTS: \(try fixture("torchvision_vgg_w4.pth"))
            """.utf8).write(to: yaml)
        let cfg = try TrainingConfig.load(file: yaml.path)
        let loss = try XCTUnwrap(try makePerceptualLoss(cfg, inChannels: 5))
        let file = try values("torchvision_vgg_w4.pth")
        for (name, t) in loss.network.stateDict() { XCTAssertEqual(t.values, file[name], name) }
        XCTAssertEqual(loss.adapter?.weight.shape, [3, 5, 1, 1])
        let wrong = try TrainingConfig.load(file: yaml.path, overrides: ["LOSS.PERCEPTUAL.WIDTHS", "[8, 8, 8, 8, 8]"])
        XCTAssertThrowsError(try makePerceptualLoss(wrong, inChannels: 5)) { error in
            XCTAssertTrue("\(error)".hasPrefix("LOSS.PERCEPTUAL.WEIGHTS: ") && "\(error)".contains("torchvision_vgg_w4.pth"), "\(error)")
        }
    }

    // MARK: the command

    func testImportWritesAnHDF5FileThatLoadsTheSame() throws {
        let out = dir.appendingPathComponent("r18.h5").path
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["weights", "import", try fixture("torchvision_resnet_w8.pth"), "--out", out, "--for", "segmentation"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("30 tensors") && r.out.contains("2 classifier tensor(s) dropped") && r.out.contains("5 converted to float32"), r.out)
        var rng = SeededRNG(seed: 1)
        let a = try makeSegmentationModel(name: "pspnet_r18", classes: 4, rng: &rng, baseChannels: 8)
        let b = try makeSegmentationModel(name: "pspnet_r18", classes: 4, rng: &rng, baseChannels: 8)
        try CheckpointLoader.loadWeights(from: try fixture("torchvision_resnet_w8.pth"), into: a, remap: .segmentation, strict: false)
        let report = try CheckpointLoader.loadWeights(from: out, into: b, remap: .segmentation, strict: false)
        XCTAssertEqual(report.loaded, 30)
        let bValues = Dictionary(uniqueKeysWithValues: b.stateDict().map { ($0.0, $0.1.values) })
        for (name, t) in a.stateDict() where name.hasPrefix("backbone.conv1") || name.hasPrefix("backbone.layer1") {
            XCTAssertEqual(t.values, bValues[name], name)
        }

        // inspect --json: names, shapes, dtypes and totals.
        let inspect = try ProcessRunner.run(ProcessRunner.percepDist, ["weights", "inspect", try fixture("tiny_zip.pth"), "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.err)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(inspect.out.utf8)) as? [String: Any])
        XCTAssertEqual(json["count"] as? Int, 11)
        XCTAssertEqual(json["elements"] as? Int, 147)
        XCTAssertEqual(json["format"] as? String, "PyTorch zip")
        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors[4]["dtype"] as? String, "float16")
        XCTAssertEqual(tensors[4]["shape"] as? [Int], [2, 3])

        // A hostile source: one error line naming file and global, no trace, the existing output kept.
        let kept = try Data(contentsOf: URL(fileURLWithPath: out))
        let bad = try ProcessRunner.run(ProcessRunner.percepDist, ["weights", "import", try fixture("hostile_os_system.pth"), "--out", out])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("hostile_os_system.pth") && bad.err.contains("posix.system"), bad.err)
        for trace in ["Fatal error", "Stack dump"] { XCTAssertFalse(bad.err.contains(trace), bad.err) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), kept)
    }
}
