import Checkpoint
import Foundation
import ImageCodecs
import PercepHDF5
import TestSupport
import XCTest

/// `train-inst` and `eval-inst` end to end on a small `synth coco` set: world-size equivalence,
/// bit-exact resume, eight ranks with one thread each, COCO results files, broken images skipped
/// and counted, and the one-step dump.
final class TrainInstJobTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let config = repo.appendingPathComponent("configs/synthetic/condinst.yaml").path
    static var dataRoot: URL!

    override class func setUp() {
        dataRoot = FileManager.default.temporaryDirectory.appendingPathComponent("cocodata-\(UUID().uuidString)")
        for (split, images, seed) in [("train", 24, "5"), ("val", 6, "6")] {
            let r = try! ProcessRunner.run(ProcessRunner.percepDist, ["synth", "coco", "--out", dataRoot.path, "--images", "\(images)", "--seed", seed,
                                                                       "--size", "64,64", "--split", split])
            precondition(r.status == 0, r.err)
        }
    }

    override class func tearDown() { try? FileManager.default.removeItem(at: dataRoot) }

    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("traininst-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// Overrides shrinking the synthetic recipe to seconds: 64-pixel images, batch 4 in groups of 2.
    func small(_ name: String, iterations: Int = 3, root: URL? = nil) -> [String] {
        ["DATASETS.ROOT", (root ?? Self.dataRoot).path, "OUTPUT_DIR", dir.appendingPathComponent(name).path,
         "SOLVER.MAX_ITER", "\(iterations)", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "2",
         "INPUT.MIN_SIZE_TRAIN", "[56, 64, 72]", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "128",
         "TEST.EVAL_PERIOD", "0", "SOLVER.CHECKPOINT_PERIOD", "100", "LOG_PERIOD", "1", "DATALOADER.NUM_WORKERS", "1"]
    }

    func datasets(_ path: String) throws -> [String: [Float]] {
        let file = try HDF5File(reading: path)
        var out: [String: [Float]] = [:]
        for group in ["model", "optimizer/momentum"] {
            for name in try file.datasetNames(in: group) { out["\(group)/\(name)"] = try file.readTensor(at: "\(group)/\(name)").values }
        }
        return out
    }

    /// One rank with 4 images (two groups) and two ranks with 2 images each (one group each) train
    /// the same network: the groups, their padding, BN statistics, proposal samples and the global
    /// normalisers do not depend on the world size.
    func testOneRankBatchFourEqualsTwoRanksBatchTwoEach() throws {
        var runs: [[String: [Float]]] = []
        for ranks in [1, 2] {
            let r = try MPIJob.run(ranks: ranks, ["--config", Self.config] + small("w\(ranks)"), command: ["train-inst"], limit: 300)
            XCTAssertEqual(r.status, 0, r.output)
            runs.append(try datasets(dir.appendingPathComponent("w\(ranks)/model_0000003.h5").path))
        }
        XCTAssertEqual(Set(runs[0].keys), Set(runs[1].keys))
        var compared = 0
        for (name, a) in runs[0] where name.hasSuffix("weight") || name.hasSuffix("bias") || name.hasSuffix("scale") {
            let b = runs[1][name]!
            let scale = max(a.map(abs).max() ?? 0, 1e-6)
            let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(diff / scale, 1e-4, "\(name): 1×4 and 2×2 differ by \(diff)")
            compared += 1
        }
        XCTAssertGreaterThan(compared, 50)
        // Groups of 4 (BN statistics and dice means over 4 images) train another network: the
        // equivalence above is not one of runs that cannot differ.
        let regrouped = try MPIJob.run(ranks: 1, ["--config", Self.config] + small("g4") + ["SOLVER.IMS_PER_GROUP", "4"], command: ["train-inst"], limit: 300)
        XCTAssertEqual(regrouped.status, 0, regrouped.output)
        let other = try datasets(dir.appendingPathComponent("g4/model_0000003.h5").path)
        let moved = runs[0].keys.filter { $0.hasPrefix("model/mask_branch") && $0.hasSuffix("weight") }.map { name in
            zip(runs[0][name]!, other[name]!).map { abs($0 - $1) }.max() ?? 0
        }.max() ?? 0
        XCTAssertGreaterThan(moved, 1e-5, "groups of 2 and of 4 must train different mask branches")
    }

    /// `visualize` draws predictions beside the ground truth for each image.
    func testVisualizeWritesSideBySidePictures() throws {
        let train = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config] + small("vis", iterations: 2))
        XCTAssertEqual(train.status, 0, train.err)
        let results = dir.appendingPathComponent("vis-results")
        let eval = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-inst", "--config", Self.config, "--checkpoint",
                                                                    dir.appendingPathComponent("vis/model_0000002.h5").path,
                                                                    "--results-dir", results.path, "--set"] + small("vis", iterations: 2))
        XCTAssertEqual(eval.status, 0, eval.err)
        let out = dir.appendingPathComponent("pictures")
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["visualize", "--gt", Self.dataRoot.appendingPathComponent("annotations/instances_val.json").path,
                                                                 "--results", results.appendingPathComponent("segm.json").path, "--images",
                                                                 Self.dataRoot.appendingPathComponent("val").path, "--out", out.path, "--score", "0"])
        XCTAssertEqual(r.status, 0, r.err)
        let pngs = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".png") }
        XCTAssertEqual(pngs.count, 6)
        // 64-pixel images are drawn 5 times larger by default (at least 320 pixels wide), so
        // the captions fit; --scale 1 keeps them at their own size.
        let picture = try ImageFile.readRGB(out.appendingPathComponent(pngs.sorted()[0]).path)
        XCTAssertEqual(picture.width, 320 + 4 + 320, "prediction and ground truth side by side")
        XCTAssertEqual(picture.height, 14 + 320)
        let small = dir.appendingPathComponent("pictures-1x")
        let unscaled = try ProcessRunner.run(ProcessRunner.percepDist, ["visualize", "--gt", Self.dataRoot.appendingPathComponent("annotations/instances_val.json").path,
                                                                        "--results", results.appendingPathComponent("segm.json").path, "--images",
                                                                        Self.dataRoot.appendingPathComponent("val").path, "--out", small.path, "--score", "0", "--scale", "1"])
        XCTAssertEqual(unscaled.status, 0, unscaled.err)
        let smallPicture = try ImageFile.readRGB(small.appendingPathComponent(pngs.sorted()[0]).path)
        XCTAssertEqual(smallPicture.width, 64 + 4 + 64)
        XCTAssertEqual(smallPicture.height, 14 + 64)
    }

    func testResumedRunIsBitIdentical() throws {
        let straight = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config] + small("straight", iterations: 6))
        XCTAssertEqual(straight.status, 0, straight.err)
        let first = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config, "--stop-at", "3"]
                                          + small("resumed", iterations: 6) + ["SOLVER.CHECKPOINT_PERIOD", "3"])
        XCTAssertEqual(first.status, 0, first.err)
        let second = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config, "--resume"]
                                           + small("resumed", iterations: 6) + ["SOLVER.CHECKPOINT_PERIOD", "3"])
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertTrue(second.out.contains("resumed from"), second.out)
        XCTAssertEqual(try datasets(dir.appendingPathComponent("straight/model_0000006.h5").path),
                       try datasets(dir.appendingPathComponent("resumed/model_0000006.h5").path))
    }

    /// `mpirun -np 8` with one thread per rank: a few iterations, an evaluation (detections of 6
    /// images gathered from 8 ranks) and a checkpoint.
    func testEightRanksTrainEvaluateAndCheckpoint() throws {
        let r = try MPIJob.run(ranks: 8, ["--config", Self.config] + small("eight", iterations: 2)
                               + ["SOLVER.IMS_PER_BATCH", "16", "TEST.EVAL_PERIOD", "2", "SOLVER.CHECKPOINT_PERIOD", "2"],
                               command: ["train-inst"], limit: 400)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("evaluation on 6 samples"), r.output)
        XCTAssertTrue(r.output.contains("segm/AP"), r.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("eight/model_0000002.h5").path))
        // One image per rank cannot hold a group of two: a clear error, before any work.
        let split = try MPIJob.run(ranks: 4, ["--config", Self.config] + small("split", iterations: 2), command: ["train-inst"], limit: 200)
        XCTAssertNotEqual(split.status, 0)
        XCTAssertTrue(split.output.contains("SOLVER.IMS_PER_GROUP") && split.output.contains("1 image(s)"), split.output)
    }

    /// eval-inst writes bbox.json and segm.json in the COCO results format, which `coco-eval`
    /// (pycocotools-identical) scores exactly as eval-inst printed.
    func testEvalInstResultsReproduceItsStats() throws {
        let train = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config] + small("eval", iterations: 4))
        XCTAssertEqual(train.status, 0, train.err)
        let results = dir.appendingPathComponent("results")
        let eval = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-inst", "--config", Self.config, "--checkpoint",
                                                                    dir.appendingPathComponent("eval/model_0000004.h5").path, "--json",
                                                                    "--results-dir", results.path, "--set"] + small("eval", iterations: 4))
        XCTAssertEqual(eval.status, 0, eval.err)
        let stats = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(eval.out.utf8)) as? [String: [String: Any]], "stdout must be JSON only: \(eval.out)")
        let gt = Self.dataRoot.appendingPathComponent("annotations/instances_val.json").path
        for type in ["bbox", "segm"] {
            let file = results.appendingPathComponent("\(type).json").path
            let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [[String: Any]])
            for entry in list {
                XCTAssertNotNil(entry["image_id"]); XCTAssertNotNil(entry["category_id"]); XCTAssertNotNil(entry["score"])
                XCTAssertEqual(entry["bbox"] != nil, type == "bbox", "\(type).json entries carry only their own geometry")
                XCTAssertEqual(entry["segmentation"] != nil, type == "segm")
            }
            let coco = try ProcessRunner.run(ProcessRunner.percepDist, ["coco-eval", "--gt", gt, "--results", file, "--iou-type", type, "--json"])
            XCTAssertEqual(coco.status, 0, coco.err)
            let scored = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(coco.out.utf8)) as? [String: Any])
            let ap = try XCTUnwrap((scored["stats"] as? [Double])?.first)
            let printed = try XCTUnwrap(stats[type]?["AP"] as? Double)
            XCTAssertEqual(100 * ap, printed, accuracy: 1e-9, "\(type): coco-eval on the written file vs eval-inst")
        }
    }

    /// A corrupted JPEG and an annotation pointing at a missing image are skipped and counted, not
    /// fatal (DATALOADER.MAX_BROKEN_FRACTION allows them).
    func testBrokenImagesAreSkippedAndCounted() throws {
        let root = dir.appendingPathComponent("broken-data")
        try FileManager.default.copyItem(at: Self.dataRoot, to: root)
        let images = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("train").path).sorted()
        try Data([0xFF, 0xD8, 0xFF, 0x00, 0x13]).write(to: root.appendingPathComponent("train/\(images[0])"))
        try FileManager.default.removeItem(at: root.appendingPathComponent("train/\(images[1])"))
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config] + small("broken", iterations: 12, root: root)
                                      + ["DATALOADER.MAX_BROKEN_FRACTION", "0.5"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("inst-loader: skipped sample"), r.err)
        XCTAssertTrue(r.err.contains(images[0]) && r.err.contains(images[1]), r.err)
        let strict = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config] + small("strict", iterations: 12, root: root)
                                           + ["DATALOADER.MAX_BROKEN_FRACTION", "0"])
        XCTAssertNotEqual(strict.status, 0)
        XCTAssertTrue(strict.err.contains("samples broken"), strict.err)
        for trace in ["Fatal error", "Stack dump"] { XCTAssertFalse(strict.err.contains(trace), strict.err) }
    }

    /// MODEL.WEIGHTS takes detectron2's Caffe2 `R-50.pkl` layout directly (here the stem and res2
    /// of a narrow R-50, written by tools/pytorch/make_weights_fixtures.py): the blobs are renamed
    /// as detectron2 renames them, land under `backbone.bottom_up.`, the log says how many loaded
    /// and which model tensors kept their initialisation, and the step starts from those values.
    func testCaffe2PickleStartsCondInst() throws {
        let pkl = Self.repo.appendingPathComponent("Tests/PretrainedWeightsTests/Fixtures/caffe2_r50_stem_res2.pkl").path
        let path = dir.appendingPathComponent("step.h5").path
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config, "--dump-step", path] + small("c2") + Self.narrowR50
                                      + ["MODEL.WEIGHTS", pkl])
        XCTAssertEqual(r.status, 0, r.err)
        // Stem (conv + FrozenBN scale/shift) and res2's 3 blocks (3 convs each, plus the shortcut).
        XCTAssertTrue(r.out.contains("loaded 33 of ") && r.out.contains("(pickle of NumPy arrays (Caffe2 names renamed as detectron2 does))")
                      && r.out.contains("2 classifier tensor(s) of the file dropped"), r.out)
        XCTAssertTrue(r.out.contains("not in the file, left at their initialisation") && r.out.contains("backbone.bottom_up.res3.0.conv1.weight"), r.out)
        XCTAssertFalse(r.out.contains("in the file but not in the model"), r.out)
        let file = try HDF5File(reading: path)
        let stem = try file.readTensor(at: "/model/backbone.bottom_up.stem.conv1.weight")
        XCTAssertEqual(stem.shape, [8, 3, 7, 7])
        // Values against the fixture's own numbers (expected.h5 holds them under detectron2's names).
        let expected = try HDF5File(reading: Self.repo.appendingPathComponent("Tests/PretrainedWeightsTests/Fixtures/expected.h5").path)
        for name in ["stem.conv1.weight", "stem.conv1.norm.weight", "res2.0.shortcut.weight", "res2.2.conv3.norm.bias"] {
            XCTAssertEqual(try file.readTensor(at: "/model/backbone.bottom_up." + name).values,
                           try expected.readTensor(at: "/caffe2_r50_stem_res2.pkl/" + name).values, name)
        }
    }

    /// A narrow R-50 with FrozenBN (stem 8, res2 32, bottleneck 8) and FREEZE_AT 2, as AdelaiDet's.
    static let narrowR50 = ["MODEL.RESNETS.DEPTH", "50", "MODEL.RESNETS.NORM", "FrozenBN", "MODEL.RESNETS.STEM_OUT_CHANNELS", "8",
                            "MODEL.RESNETS.RES2_OUT_CHANNELS", "32", "MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.BACKBONE.FREEZE_AT", "2",
                            "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.FCOS.GN_GROUPS", "8", "MODEL.CONDINST.MAX_PROPOSALS", "-1"]

    /// --dump-step writes the step in the twin's layout: AdelaiDet names before the update,
    /// gradients of exactly the trainable parameters, inputs, losses and the architecture.
    func testDumpStepWritesTheTwinsLayout() throws {
        let path = dir.appendingPathComponent("step.h5").path
        let narrow = Self.narrowR50
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["train-inst", "--config", Self.config, "--dump-step", path] + small("dump") + narrow)
        XCTAssertEqual(r.status, 0, r.err)
        let file = try HDF5File(reading: path)
        let model = try file.datasetNames(in: "/model"), grads = Set(try file.datasetNames(in: "/grad"))
        XCTAssertTrue(model.contains("backbone.bottom_up.res2.0.conv1.norm.running_mean"))
        XCTAssertFalse(grads.contains("backbone.bottom_up.res2.0.conv1.weight"), "FREEZE_AT 2 freezes res2")
        XCTAssertTrue(grads.contains("backbone.bottom_up.res3.0.conv1.weight") && grads.contains("controller.bias"))
        XCTAssertEqual(try file.shape(at: "/input/images")[0], 4)
        for name in ["loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr", "loss_mask"] {
            guard case .double(let v)? = try file.attribute(name) else { XCTFail("no \(name)"); continue }
            XCTAssertTrue(v.isFinite && v > 0, "\(name) = \(v)")
            XCTAssertTrue(r.out.contains(name), r.out)
        }
        guard case .int(let group)? = try file.attribute("ims_per_group") else { return XCTFail("no ims_per_group") }
        XCTAssertEqual(group, 2)

        // The dump loads as weights; into a network it does not fit, the error names the file and
        // every misshapen, missing and unexpected name at once, without a trace.
        let wrong = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-inst", "--config", Self.config, "--checkpoint", path, "--set"]
                                          + small("dump") + narrow + ["MODEL.FPN.OUT_CHANNELS", "16", "MODEL.CONDINST.MASK_BRANCH.NUM_CONVS", "3"])
        XCTAssertNotEqual(wrong.status, 0)
        for expected in [path, "size mismatch: ", "proposal_generator.fcos_head.cls_logits.weight: checkpoint [4, 32, 3, 3], model [4, 16, 3, 3]",
                         "missing keys: ", "mask_branch.tower.3.weight", "unexpected keys: mask_branch.tower.2.bias"] {
            XCTAssertTrue(wrong.err.contains(expected), "\(expected) not in: \(wrong.err)")
        }
        for trace in ["Fatal error", "Stack dump"] { XCTAssertFalse(wrong.err.contains(trace), wrong.err) }
    }
}
