import Checkpoint
import Distributed
import Foundation
import PercepCore
import SegmentationModels
import SegmentationTraining
import Trainer
import Training
import PercepHDF5
import TestSupport
import XCTest

/// `train-seg` and `eval-seg --config` end to end on a small synthetic set: teacher → student
/// with the perceptual loss under mpirun, evaluation in both eval-seg modes agreeing, world-size
/// equivalence of the data pipeline, exact resume, and config errors named before any work.
final class TrainSegJobTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let configs = repo.appendingPathComponent("configs/synthetic")
    static var dataRoot: URL!

    override class func setUp() {
        dataRoot = FileManager.default.temporaryDirectory.appendingPathComponent("segdata-\(UUID().uuidString)")
        let r = try! ProcessRunner.run(ProcessRunner.percepDist, ["synth", "seg", "--out", dataRoot.path, "--train", "24", "--val", "6",
                                                                   "--size", "64,64", "--seed", "3"])
        precondition(r.status == 0, r.err)
    }

    override class func tearDown() { try? FileManager.default.removeItem(at: dataRoot) }

    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("trainseg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// Overrides shrinking the synthetic recipe to seconds.
    func small(_ name: String, iterations: Int = 4) -> [String] {
        ["DATASETS.ROOT", Self.dataRoot.appendingPathComponent("ADEChallengeData2016").path, "OUTPUT_DIR", dir.appendingPathComponent(name).path,
         "SOLVER.MAX_ITER", "\(iterations)", "SOLVER.IMS_PER_BATCH", "4", "INPUT.CROP_SIZE", "[48, 48]", "INPUT.SCALE", "[256, 64]",
         "TEST.SCALE", "[256, 64]", "TEST.EVAL_PERIOD", "0", "SOLVER.CHECKPOINT_PERIOD", "100", "LOG_PERIOD", "1"]
    }

    func config(_ name: String) -> String { Self.configs.appendingPathComponent(name).path }

    func testTeacherThenStudentWithPerceptualLossUnderMPIThenBothEvalModesAgree() throws {
        let teacher = try MPIJob.run(ranks: 1, ["--config", config("teacher.yaml")] + small("teacher", iterations: 3), command: ["train-seg"])
        XCTAssertEqual(teacher.status, 0, teacher.output)
        let teacherWeights = dir.appendingPathComponent("teacher/model_best.h5").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: teacherWeights), teacher.output)

        let student = try MPIJob.run(ranks: 2, ["--config", config("percep.yaml"), "MODEL.TEACHER.WEIGHTS", teacherWeights] + small("student"),
                                     command: ["train-seg"])
        XCTAssertEqual(student.status, 0, student.output)
        XCTAssertTrue(student.output.contains("loss_perceptual"), student.output)
        XCTAssertTrue(student.output.contains("mIoU"), student.output)
        let metrics = try String(contentsOf: dir.appendingPathComponent("student/metrics.jsonl"), encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"loss_perceptual\""))
        XCTAssertTrue(metrics.contains("\"eval/mIoU\""))
        XCTAssertTrue(metrics.contains("\"comm_wait\""), "two ranks log how long each step waited for gradients")
        XCTAssertTrue(student.output.contains("comm_wait: "), student.output)

        // eval-seg on the model, saving predictions, then eval-seg on the saved PNGs: one metric.
        let preds = dir.appendingPathComponent("preds").path
        let root = Self.dataRoot.appendingPathComponent("ADEChallengeData2016").path
        let model = try MPIJob.run(ranks: 2, ["--config", config("percep.yaml"), "--checkpoint", dir.appendingPathComponent("student/model_0000004.h5").path,
                                              "--save-pred", preds, "--json",
                                              "--set", "DATASETS.ROOT", root, "TEST.SCALE", "[256, 64]", "MODEL.TEACHER.WEIGHTS", teacherWeights],
                                   command: ["eval-seg"])
        XCTAssertEqual(model.status, 0, model.output)
        let modelJSON = try lastJSON(model.output)
        let folder = try ProcessRunner.run(ProcessRunner.percepDist, [
            "eval-seg", "--pred-dir", preds, "--gt-dir", Self.dataRoot.appendingPathComponent("ADEChallengeData2016/annotations/validation").path,
            "--num-classes", "10", "--reduce-zero-label", "--json"])
        XCTAssertEqual(folder.status, 0, folder.err)
        let folderJSON = try lastJSON(folder.out)
        XCTAssertEqual(modelJSON["mIoU"] as? Double, folderJSON["mIoU"] as? Double)
        XCTAssertEqual(modelJSON["aAcc"] as? Double, folderJSON["aAcc"] as? Double)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: preds).count, 6)
    }

    /// The paper's PSPNet-R18 and HRNetV2-W18-Small recipes for each data set
    /// (`configs/<set>/pspnet_r101_teacher.yaml`, then `pspnet_r18_percep.yaml` against that
    /// teacher's checkpoint; `fcn_hr48_teacher.yaml`, then `fcn_hr18s_percep.yaml`) run on a
    /// synthetic set in the set's own layout (`synth seg --layout`; Cityscapes read through the
    /// labelTrainIds), one iteration each at a narrow width, without the ImageNet files.
    func testPaperTeacherStudentConfigsRunOnEachLayout() throws {
        let repo = Self.repo.appendingPathComponent("configs")
        for (layout, folder) in [("ade20k", "ADEChallengeData2016"), ("cityscapes", "cityscapes"), ("voc", "VOC2012")] {
            let data = dir.appendingPathComponent("\(layout)-data")
            let synth = try ProcessRunner.run(ProcessRunner.percepDist, ["synth", "seg", "--out", data.path, "--train", "4", "--val", "2",
                                                                          "--size", "48,64", "--seed", "1", "--layout", layout])
            XCTAssertEqual(synth.status, 0, synth.err)
            let narrow = ["DATASETS.ROOT", data.appendingPathComponent(folder).path, "MODEL.WEIGHTS", "", "MODEL.BASE_CHANNELS", "8",
                          "SOLVER.MAX_ITER", "1", "SOLVER.IMS_PER_BATCH", "2", "INPUT.CROP_SIZE", "[32, 32]", "INPUT.SCALE", "[128, 48]",
                          "TEST.MODE", "whole", "TEST.SCALE", "[128, 48]", "TEST.EVAL_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "1", "LOG_PERIOD", "1"]
                + (layout == "cityscapes" ? ["DATASETS.CITYSCAPES.LABELS", "labelTrainIds"] : [])
            // The paper's pairs: PSPNet-R101 → PSPNet-R18 (Tables 1–4) and HRNetV2-W48 →
            // HRNetV2-W18-Small (Table 6).
            for (teacherConfig, studentConfig) in [("pspnet_r101_teacher", "pspnet_r18_percep"), ("fcn_hr48_teacher", "fcn_hr18s_percep")] {
                let teacherRun = dir.appendingPathComponent("\(layout)-\(teacherConfig)")
                let teacher = try MPIJob.run(ranks: 1, ["--config", repo.appendingPathComponent("\(layout)/\(teacherConfig).yaml").path,
                                                        "OUTPUT_DIR", teacherRun.path] + narrow, command: ["train-seg"])
                XCTAssertEqual(teacher.status, 0, "\(layout) \(teacherConfig): \(teacher.output)")
                XCTAssertTrue(teacher.output.contains("mIoU"), teacher.output)
                let student = try MPIJob.run(ranks: 1, ["--config", repo.appendingPathComponent("\(layout)/\(studentConfig).yaml").path,
                                                        "OUTPUT_DIR", dir.appendingPathComponent("\(layout)-\(studentConfig)").path,
                                                        "MODEL.TEACHER.WEIGHTS", teacherRun.appendingPathComponent("model_0000001.h5").path,
                                                        "MODEL.TEACHER.BASE_CHANNELS", "8"] + narrow, command: ["train-seg"])
                XCTAssertEqual(student.status, 0, "\(layout) \(studentConfig): \(student.output)")
                XCTAssertTrue(student.output.contains("loss_perceptual"), student.output)
            }
        }
    }

    /// The perceptual term with a teacher: its logged value at the first step equals
    /// λ·ℓ(softmax(student), softmax(teacher)) computed outside the task from the same networks
    /// and batch, and one rank with batch 4 and two ranks with batch 2 train the same student
    /// with it on.
    func testPerceptualTermWithATeacherIsTheLossOfTheNetworksAndWorldSizeIndependent() throws {
        let teacher = try MPIJob.run(ranks: 1, ["--config", config("teacher.yaml")] + small("teacher", iterations: 2) + ["SOLVER.CHECKPOINT_PERIOD", "1"],
                                     command: ["train-seg"])
        XCTAssertEqual(teacher.status, 0, teacher.output)
        let teacherWeights = dir.appendingPathComponent("teacher/model_0000001.h5").path
        let overrides = ["MODEL.TEACHER.WEIGHTS", teacherWeights, "MODEL.DROPOUT_RATIO", "0", "MODEL.SYNC_BN", "true"]
        // The value: the task's first step against the same computation done here.
        let cfg = try TrainingConfig.load(file: config("percep.yaml"), overrides: overrides + small("probe", iterations: 1))
        let task = try SegmentationTask(cfg)
        let sampler = try DistributedSampler(datasetSize: task.trainingSetSize, globalBatch: 4, seed: UInt64(cfg.int("SEED")), worldSize: 1, rank: 0)
        try task.prepare(steps: 0..<1) { sampler.batch(atCursor: $0 * 4) }
        var rng = SeededRNG(seed: 0, stream: "trainer")
        let terms = try task.lossTerms(step: 0, rng: &rng)
        task.finish()
        Tape.current.reset()
        let logged = try XCTUnwrap(terms.first { $0.name == "loss_perceptual" }).value.item
        let (epoch, indices) = sampler.batch(atCursor: 0)
        let transform = try SegmentationRecipe.trainTransform(cfg)
        let samples = try indices.map { transform.apply(try task.trainSet.load($0), epoch: epoch, index: $0) }
        let (h, w) = (transform.cropHeight, transform.cropWidth)
        let x = Tensor(shape: [samples.count, 3, h, w], values: samples.flatMap(\.image))
        let student = try SegmentationRecipe.student(cfg, classes: task.classes)
        let teacherNet = try XCTUnwrap(try SegmentationRecipe.teacher(cfg, classes: task.classes))
        let network = try XCTUnwrap(try makePerceptualLoss(cfg, inChannels: task.classes))
        let expected = Tape.withoutGrad { () -> Float in
            let p = upsampleLogits(student(x).logits, to: (h, w)).softmax(axis: 1)
            let t = upsampleLogits(teacherNet(x).logits, to: (h, w)).softmax(axis: 1)
            return network.weighted(p, t).item
        }
        XCTAssertEqual(logged, expected, accuracy: 1e-5 * max(abs(expected), 1e-3), "the task's perceptual term")
        XCTAssertGreaterThan(expected, 0)
        // World-size equivalence with the term on.
        var runs: [[String: [Float]]] = []
        for ranks in [1, 2] {
            let r = try MPIJob.run(ranks: ranks, ["--config", config("percep.yaml")] + overrides + small("p\(ranks)", iterations: 3), command: ["train-seg"])
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("loss_perceptual"), r.output)
            runs.append(try datasets(dir.appendingPathComponent("p\(ranks)/model_0000003.h5").path))
        }
        for (name, a) in runs[0] where name.hasSuffix("weight") || name.hasSuffix("bias") {
            let b = runs[1][name]!
            let scale = max(a.map(abs).max() ?? 0, 1e-6)
            let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(diff / scale, 1e-4, "\(name): 1×4 and 2×2 differ by \(diff) with the perceptual term")
        }
        // A resume may find the teacher's file moved, but not replaced by another teacher.
        let moved = dir.appendingPathComponent("moved-teacher.h5").path
        try FileManager.default.copyItem(atPath: teacherWeights, toPath: moved)
        let resume = ["--config", config("percep.yaml"), "--resume"] + overrides + small("p1", iterations: 3)
        let fine = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg"] + resume + ["MODEL.TEACHER.WEIGHTS", moved])
        XCTAssertEqual(fine.status, 0, fine.err)
        XCTAssertTrue(fine.err.contains("MODEL.TEACHER.WEIGHTS \"\(moved)\""), fine.err)
        let other = dir.appendingPathComponent("teacher/model_0000002.h5").path
        let refused = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg"] + resume + ["MODEL.TEACHER.WEIGHTS", other])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("was trained with other teacher weights"), refused.err)
    }

    /// With sync BN and the heads' channel dropout (MODEL.DROPOUT_RATIO 0.1, masks keyed by
    /// sample), one rank with batch 4 and two ranks with batch 2 train the same model.
    func testOneRankBatchFourEqualsTwoRanksBatchTwoEach() throws {
        var runs: [[String: [Float]]] = []
        for (ranks, dropout) in [(1, "0.1"), (2, "0.1"), (1, "0")] {
            let name = "w\(ranks)-d\(dropout)"
            let r = try MPIJob.run(ranks: ranks, ["--config", config("baseline.yaml"), "MODEL.SYNC_BN", "true", "MODEL.DROPOUT_RATIO", dropout]
                                   + small(name, iterations: 3), command: ["train-seg"])
            XCTAssertEqual(r.status, 0, r.output)
            runs.append(try datasets(dir.appendingPathComponent("\(name)/model_0000003.h5").path))
        }
        XCTAssertNotEqual(runs[0]["model/decode_head.conv_seg.weight"], runs[2]["model/decode_head.conv_seg.weight"],
                          "dropout must change training, or the equivalence below says nothing about it")
        XCTAssertEqual(Set(runs[0].keys), Set(runs[1].keys))
        for (name, a) in runs[0] where name.hasSuffix("weight") || name.hasSuffix("bias") {
            let b = runs[1][name]!
            let scale = max(a.map(abs).max() ?? 0, 1e-6)
            let diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(diff / scale, 1e-4, "\(name): 1×4 and 2×2 differ by \(diff)")
        }
    }

    /// Eight ranks with one image each: PSPNet's 1×1 pooling branch gives BatchNorm one value per
    /// channel. Without sync BN the first forward stops the job naming the layer, the per-rank
    /// batch and the fix, before any update or checkpoint; with sync BN the statistics cover all
    /// eight images and the run trains, evaluates and checkpoints.
    func testOneImagePerRankNeedsSyncBatchNorm() throws {
        let eight = ["SOLVER.IMS_PER_BATCH", "8", "TEST.EVAL_PERIOD", "2", "SOLVER.CHECKPOINT_PERIOD", "2"]
        let local = try MPIJob.run(ranks: 8, ["--config", config("baseline.yaml")] + small("local", iterations: 2) + eight,
                                   command: ["train-seg"], limit: 300)
        XCTAssertNotEqual(local.status, 0, local.output)
        XCTAssertTrue(local.output.contains("decode_head.psp_modules.0.1.bn") && local.output.contains("1 value per channel")
                      && local.output.contains("1 image(s) per rank") && local.output.contains("MODEL.SYNC_BN True"), local.output)
        XCTAssertFalse(local.output.contains("iter: 0"), "the error comes before the first update: \(local.output)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("local/last_checkpoint").path))
        let synced = try MPIJob.run(ranks: 8, ["--config", config("baseline.yaml"), "MODEL.SYNC_BN", "true"] + small("sync", iterations: 2) + eight,
                                    command: ["train-seg"], limit: 300)
        XCTAssertEqual(synced.status, 0, synced.output)
        XCTAssertTrue(synced.output.contains("evaluation on"), synced.output)
        let weights = try datasets(dir.appendingPathComponent("sync/model_0000002.h5").path)
        XCTAssertTrue(weights.values.allSatisfy { $0.allSatisfy(\.isFinite) })
    }

    func testResumedRunIsBitIdentical() throws {
        let straight = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("baseline.yaml")] + small("straight", iterations: 6))
        XCTAssertEqual(straight.status, 0, straight.err)
        let first = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("baseline.yaml"), "--stop-at", "3"]
                                          + small("resumed", iterations: 6) + ["SOLVER.CHECKPOINT_PERIOD", "3"])
        XCTAssertEqual(first.status, 0, first.err)
        let second = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("baseline.yaml"), "--resume"]
                                           + small("resumed", iterations: 6) + ["SOLVER.CHECKPOINT_PERIOD", "3"])
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertTrue(second.out.contains("resumed from"), second.out)
        // CHECKPOINT_PERIOD differs between the runs, so the configs (and hashes) do too; the
        // tensors must not.
        XCTAssertEqual(try datasets(dir.appendingPathComponent("straight/model_0000006.h5").path),
                       try datasets(dir.appendingPathComponent("resumed/model_0000006.h5").path))
    }

    func testConfigAndDataProblemsAreNamedBeforeTraining() throws {
        let missing = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("baseline.yaml")] + small("m")
                                            + ["DATASETS.ROOT", "/nonexistent/ADE"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue((missing.out + missing.err).contains("/nonexistent/ADE"), missing.err)
        let teacherless = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("percep.yaml")] + small("t")
                                                + ["MODEL.TEACHER.WEIGHTS", ""])
        XCTAssertNotEqual(teacherless.status, 0)
        XCTAssertTrue(teacherless.err.contains("MODEL.TEACHER.WEIGHTS"), teacherless.err)
        let dropout = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("baseline.yaml")] + small("d")
                                            + ["MODEL.DROPOUT_RATIO", "1"])
        XCTAssertNotEqual(dropout.status, 0)
        XCTAssertTrue(dropout.err.contains("MODEL.DROPOUT_RATIO") && dropout.err.contains("[0, 1)"), dropout.err)
        let typo = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("baseline.yaml"), "INPUT.CROP_SIZ", "[32, 32]"])
        XCTAssertNotEqual(typo.status, 0)
        XCTAssertTrue(typo.err.contains("INPUT.CROP_SIZE"), typo.err)
        // The one-hot ablation needs no teacher.
        let gt = try ProcessRunner.run(ProcessRunner.percepDist, ["train-seg", "--config", config("baseline.yaml")] + small("gt", iterations: 2)
                                       + ["LOSS.PERCEPTUAL.ENABLED", "true", "LOSS.PERCEPTUAL.TARGET", "ground_truth"])
        XCTAssertEqual(gt.status, 0, gt.err)
        XCTAssertTrue(gt.out.contains("loss_perceptual"), gt.out)
    }

    func lastJSON(_ text: String) throws -> [String: Any] {
        let line = text.split(separator: "\n").last { $0.hasPrefix("{") }.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], text)
    }

    func datasets(_ path: String) throws -> [String: [Float]] {
        let file = try HDF5File(reading: path)
        var out: [String: [Float]] = [:]
        for group in ["model", "optimizer/momentum"] {
            for name in try file.datasetNames(in: group) { out["\(group)/\(name)"] = try file.readTensor(at: "\(group)/\(name)").values }
        }
        return out
    }
}
