import Foundation
import ImageCodecs
import PercepHDF5
import TestSupport
import XCTest

/// `train-depth` end to end on a `synth depth --tiny` set read through the NYU readers: losses
/// logged, evaluation with VNL's metrics, exact resume, and the same training on 1 rank × 4
/// images as on 2 ranks × 2 with synchronized BatchNorm (the WCE is normalised by the global
/// valid-pixel count; the virtual-normal loss is a per-rank trimmed mean, as under DDP, so it is
/// off for that comparison).
final class TrainDepthJobTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let config = repo.appendingPathComponent("configs/synthetic/depth.yaml").path
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("traindepth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["synth", "depth", "--out", dir.appendingPathComponent("data").path, "--seed", "0", "--tiny", "--images", "10"])
        XCTAssertEqual(r.status, 0, r.err)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func overrides(_ name: String, iterations: Int = 4) -> [String] {
        ["DATASETS.ROOT", dir.appendingPathComponent("data").path, "OUTPUT_DIR", dir.appendingPathComponent(name).path,
         "SOLVER.MAX_ITER", "\(iterations)", "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "0", "LOG_PERIOD", "1"]
    }

    func weights(_ name: String, _ file: String) throws -> [String: [Float]] {
        let h5 = try HDF5File(reading: dir.appendingPathComponent(name).appendingPathComponent(file).path)
        var out: [String: [Float]] = [:]
        for n in try h5.datasetNames(in: "model") where !n.hasSuffix("num_batches_tracked") { out[n] = try h5.readTensor(at: "model/" + n).values }
        return out
    }

    func testTrainEvaluateAndResumeExactly() throws {
        let full = try ProcessRunner.run(ProcessRunner.percepDist, ["train-depth", "--config", Self.config] + overrides("full"))
        XCTAssertEqual(full.status, 0, full.err)
        for key in ["loss_wce", "loss_vnl", "abs_rel", "delta1", "silog"] { XCTAssertTrue(full.out.contains(key), "\(key) in \(full.out)") }
        let first = try ProcessRunner.run(ProcessRunner.percepDist, ["train-depth", "--config", Self.config, "--stop-at", "2"] + overrides("resumed"))
        XCTAssertEqual(first.status, 0, first.err)
        let second = try ProcessRunner.run(ProcessRunner.percepDist, ["train-depth", "--config", Self.config, "--resume"] + overrides("resumed"))
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertEqual(try weights("full", "model_0000004.h5"), try weights("resumed", "model_0000004.h5"), "resume continues bit for bit")
    }

    func testOneRankEqualsTwoRanks() throws {
        var runs: [[String: [Float]]] = []
        for ranks in [1, 2] {
            // The virtual-normal term included: its trim is decided on the whole batch's triplets.
            let r = try MPIJob.run(ranks: ranks, ["--config", Self.config] + overrides("w\(ranks)", iterations: 2)
                                   + ["MODEL.SYNC_BN", "true"], command: ["train-depth"], limit: 300)
            XCTAssertEqual(r.status, 0, r.output)
            runs.append(try weights("w\(ranks)", "model_0000002.h5"))
        }
        var worst = 0.0
        for (name, a) in runs[0] {
            guard let b = runs[1][name] else { XCTFail("\(name) missing"); continue }
            for (x, y) in zip(a, b) { worst = max(worst, Double(abs(x - y)) / max(1e-3, Double(abs(x)))) }
        }
        XCTAssertLessThan(worst, 1e-3, "1 rank × 4 images vs 2 ranks × 2")
    }

    /// `eval-depth --config/--checkpoint` (1 and 2 ranks) and `--save-pred` PNGs read back by the
    /// PNG mode give the same metrics (the PNGs round to millimetres).
    func testEvalDepthModelModeAgreesWithItsSavedPNGs() throws {
        let train = try ProcessRunner.run(ProcessRunner.percepDist, ["train-depth", "--config", Self.config] + overrides("m", iterations: 2))
        XCTAssertEqual(train.status, 0, train.err)
        let checkpoint = dir.appendingPathComponent("m/model_0000002.h5").path, preds = dir.appendingPathComponent("preds").path
        let set = ["--set", "DATASETS.ROOT", dir.appendingPathComponent("data").path]
        func metrics(_ text: String) throws -> [String: Double] {
            let line = try XCTUnwrap(text.split(separator: "\n").last { $0.hasPrefix("{") })
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return object.compactMapValues { $0 as? Double }
        }
        let model = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-depth", "--config", Self.config, "--checkpoint", checkpoint,
                                                                     "--save-pred", preds, "--json"] + set)
        XCTAssertEqual(model.status, 0, model.err)
        // The pictures: frame | ground truth | prediction, three frames wide.
        let vis = try FileManager.default.contentsOfDirectory(atPath: preds + "/vis").sorted()
        XCTAssertEqual(vis.count, 2)
        let picture = try ImageFile.readRGB(preds + "/vis/" + vis[0])
        XCTAssertEqual([picture.height, picture.width], [120, 480])
        let pngs = try ProcessRunner.run(ProcessRunner.percepDist, ["eval-depth", "--pred-dir", preds + "/pred", "--gt-dir", preds + "/gt",
                                                                    "--crop", "11,118,10,150", "--json"])
        XCTAssertEqual(pngs.status, 0, pngs.err)
        let two = try MPIJob.run(ranks: 2, ["--config", Self.config, "--checkpoint", checkpoint, "--json"] + set, command: ["eval-depth"], limit: 120)
        XCTAssertEqual(two.status, 0, two.output)
        let (a, b, c) = (try metrics(model.out), try metrics(pngs.out), try metrics(two.output))
        for key in ["abs_rel", "rms", "delta1", "silog"] {
            let v = try XCTUnwrap(a[key], key)
            XCTAssertEqual(v, try XCTUnwrap(b[key]), accuracy: 2e-3 * max(1, v), "\(key): model vs its PNGs")
            XCTAssertEqual(v, try XCTUnwrap(c[key]), accuracy: 1e-7 * max(1, v), "\(key): 1 vs 2 ranks (summation order)")
        }
    }

    /// --dump-step writes the twin's layout (tools/pytorch/depth_twin.py check): shapes, the
    /// triplet masks, and losses that the depth maths recompute from the dumped inputs.
    func testDumpStepWritesTheTwinsLayout() throws {
        let path = dir.appendingPathComponent("dump.h5").path
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["train-depth", "--config", Self.config, "--dump-step", path] + overrides("dump"))
        XCTAssertEqual(r.status, 0, r.err)
        let file = try HDF5File(reading: path)
        XCTAssertEqual(try file.shape(at: "logits"), [4, 150, 97, 97])
        XCTAssertEqual(try file.shape(at: "gt"), [4, 1, 97, 97])
        XCTAssertEqual(try file.shape(at: "triplets"), [Int(0.15 * 97 * 97), 3])
        XCTAssertEqual(try file.shape(at: "vnl_used"), [4, Int(0.15 * 97 * 97)])
        XCTAssertEqual(try file.shape(at: "grad_logits"), [4, 150, 97, 97])
        for name in ["loss_wce", "loss_vnl", "focal_length"] {
            guard case .double(let v)? = try file.attribute(name) else { return XCTFail("no \(name)") }
            XCTAssertTrue(v.isFinite && v > 0, "\(name) \(v)")
            if name.hasPrefix("loss") { XCTAssertTrue(r.out.contains(String(format: "%@ %.6f", name, v)), r.out) }
        }
    }

    func testBadDataIsANamedError() throws {
        let r = try ProcessRunner.run(ProcessRunner.percepDist, ["train-depth", "--config", Self.config] + overrides("bad")
                                      + ["DATASETS.NYU.SPLITS", "missing.mat"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("missing.mat") && r.err.contains("no such file"), r.err)
        let raw = try ProcessRunner.run(ProcessRunner.percepDist, ["train-depth", "--config", Self.config] + overrides("raw") + ["INPUT.RAW_SIZE", "[480, 640]", "INPUT.TEST_SQUARE_SIZE", "640"])
        XCTAssertTrue(raw.err.contains("frames are 120×160, INPUT.RAW_SIZE says [480, 640]"), raw.err)
    }
}
