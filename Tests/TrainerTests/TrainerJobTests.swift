import Checkpoint
import Foundation
import ImageCodecs
import PercepHDF5
import TestSupport
import XCTest

/// The shared training loop, driven through `percep-dist train-demo` on one rank (no launcher):
/// evaluation hooks and the best checkpoint, non-finite losses, and a real kill -9 in the
/// middle of a checkpoint write.
final class TrainerJobTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let config = repo.appendingPathComponent("configs/demo/tiny-synthetic.yaml").path
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// A fast demo run: tiny batch, no perceptual term unless asked.
    func demo(_ extra: [String], output: String = "run") throws -> (status: Int32, out: String, err: String) {
        try ProcessRunner.run(ProcessRunner.percepDist, ["train-demo", "--config", Self.config, "OUTPUT_DIR", dir.appendingPathComponent(output).path,
                                                         "SOLVER.IMS_PER_BATCH", "2", "LOSS.PERCEPTUAL.ENABLED", "false", "LOG_PERIOD", "1"] + extra)
    }

    /// Resuming under a changed config stops before any work and names each differing key.
    func testResumeUnderAnotherConfigNamesTheKeys() throws {
        let first = try demo(["SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "2"])
        XCTAssertEqual(first.status, 0, first.err)
        let changed = try demo(["SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.BASE_LR", "0.5", "--resume"])
        XCTAssertNotEqual(changed.status, 0)
        XCTAssertTrue(changed.err.contains("was written with another config: SOLVER.BASE_LR:"), changed.err)
        XCTAssertTrue(changed.err.contains("0.5 now"), changed.err)
    }

    /// A fresh run into a directory holding another run is refused (it would append to that
    /// run's metrics and prune its checkpoints); nothing there changes.
    func testFreshRunIntoAnExistingRunIsRefused() throws {
        let first = try demo(["SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "2"])
        XCTAssertEqual(first.status, 0, first.err)
        let metrics = try Data(contentsOf: dir.appendingPathComponent("run/metrics.jsonl"))
        let again = try demo(["SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.err.contains("already holds a run") && again.err.contains("--resume"), again.err)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("run/metrics.jsonl")), metrics)
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("run/last_checkpoint"), encoding: .utf8), "model_0000002.h5\n")
    }

    /// A run directory moved elsewhere resumes with new logging and checkpoint periods (a
    /// warning names them); a change to the maths still stops it.
    func testResumeAfterMovingTheRunWithOtherPeriods() throws {
        let first = try demo(["SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2", "--stop-at", "2"])
        XCTAssertEqual(first.status, 0, first.err)
        try FileManager.default.moveItem(at: dir.appendingPathComponent("run"), to: dir.appendingPathComponent("moved"))
        let resumed = try demo(["SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "1", "LOG_PERIOD", "2", "--resume"], output: "moved")
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("other paths or periods") && resumed.err.contains("OUTPUT_DIR"), resumed.err)
        XCTAssertTrue(resumed.out.contains("resumed from"), resumed.out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("moved/model_0000004.h5").path))
        let maths = try demo(["SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.MOMENTUM", "0.5", "--resume"], output: "moved")
        XCTAssertNotEqual(maths.status, 0)
        XCTAssertTrue(maths.err.contains("SOLVER.MOMENTUM"), maths.err)
    }

    func records(_ output: String = "run") throws -> [[String: Any]] {
        let text = try String(contentsOf: dir.appendingPathComponent("\(output)/metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    func testEvaluatesEveryPeriodAndAtTheEndAndKeepsTheBestCheckpoint() throws {
        let r = try demo(["SOLVER.MAX_ITER", "10", "TEST.EVAL_PERIOD", "4", "SOLVER.CHECKPOINT_PERIOD", "100"])
        XCTAssertEqual(r.status, 0, r.err)
        let evals = try records().filter { $0["eval/pixel_accuracy"] != nil }
        // After iterations 4, 8 and the last (10): records carry the 0-based iteration.
        XCTAssertEqual(evals.map { $0["iteration"] as! Int }, [3, 7, 9])
        let best = evals.map { $0["eval/pixel_accuracy"] as! Double }.max()!
        let file = try CheckpointFile.read(dir.appendingPathComponent("run/\(CheckpointWriter.bestName)").path)
        XCTAssertEqual(file.state.bestMetric, best, accuracy: 1e-12)
        XCTAssertTrue(r.out.contains("evaluation on 64 samples"), r.out)
        // The periodic checkpoint at the end carries the best metric too, for resumes.
        let last = try CheckpointFile.read(dir.appendingPathComponent("run/model_0000010.h5").path)
        XCTAssertEqual(last.state.bestMetric, best, accuracy: 1e-12)
        XCTAssertEqual(last.state.rngState.count, 6, "the trainer's RNG state is saved")

        // `percep-dist plot` turns the same metrics.jsonl into SVG and PNG curves.
        let plot = try ProcessRunner.run(ProcessRunner.percepDist, ["plot", dir.appendingPathComponent("run").path, "--size", "640,360"])
        XCTAssertEqual(plot.status, 0, plot.err)
        for stem in ["loss", "eval", "lr", "time"] {
            let svg = try String(contentsOf: dir.appendingPathComponent("run/\(stem).svg"), encoding: .utf8)
            XCTAssertTrue(svg.contains("<polyline"), stem)
            let png = try PNG.info(Array(try Data(contentsOf: dir.appendingPathComponent("run/\(stem).png"))))
            XCTAssertEqual([png.width, png.height], [640, 360])
        }
        let bad = try ProcessRunner.run(ProcessRunner.percepDist, ["plot", dir.appendingPathComponent("missing").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("metrics.jsonl"), bad.err)
    }

    func testNonFiniteLossStopsNamingIterationAndTermAndKeepsTheLastCheckpoint() throws {
        let r = try demo(["SOLVER.MAX_ITER", "10", "SOLVER.CHECKPOINT_PERIOD", "1", "--inject-nan-at", "4"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("non-finite loss_ce (nan on rank 0 or another) at iteration 4; the last good checkpoint is kept"), r.err)
        let (checkpoint, source) = try CheckpointLoader.latest(in: dir.appendingPathComponent("run").path)
        XCTAssertEqual(source, .pointer)
        XCTAssertEqual(checkpoint.state.iteration, 4, "iterations 0…3 completed; nothing written after the NaN")
    }

    func testWeightsAnUpdateBlewUpAreNeverCheckpointed() throws {
        // A huge learning rate overflows the weights within a few steps, before or after the
        // loss itself turns non-finite.
        let r = try demo(["SOLVER.MAX_ITER", "60", "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.BASE_LR", "1e6", "SOLVER.WARMUP_ITERS", "0"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("the last good checkpoint is kept"), r.err)
        let (checkpoint, _) = try CheckpointLoader.latest(in: dir.appendingPathComponent("run").path)
        XCTAssertTrue(checkpoint.model.allSatisfy { $0.tensor.values.allSatisfy(\.isFinite) }, "a checkpoint holds non-finite weights")
    }

    func testNonFiniteLossCanSkipTheStep() throws {
        let r = try demo(["SOLVER.MAX_ITER", "8", "SOLVER.CHECKPOINT_PERIOD", "100", "SOLVER.NONFINITE_LOSS", "skip",
                          "TEST.EVAL_PERIOD", "0", "--inject-nan-at", "3"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("non-finite loss_ce at iteration 3: step skipped on every rank"), r.err)
        XCTAssertTrue(r.err.contains("skipped 1 step(s) with a non-finite loss"), r.err)
        let file = try CheckpointFile.read(dir.appendingPathComponent("run/model_0000008.h5").path)
        XCTAssertTrue(file.model.allSatisfy { $0.tensor.values.allSatisfy(\.isFinite) })
    }

    /// kill -9 while a checkpoint's temp file is being written: the previous checkpoint still
    /// loads through `last_checkpoint`, and `--resume` carries on from it.
    func testKillNineDuringACheckpointWriteLeavesThePreviousCheckpointUsable() throws {
        let run = dir.appendingPathComponent("run")
        var caught = false
        for _ in 0..<20 where !caught {
            let p = Process()
            p.executableURL = ProcessRunner.percepDist
            p.arguments = ["train-demo", "--config", Self.config, "OUTPUT_DIR", run.path, "SOLVER.IMS_PER_BATCH", "2",
                           "LOSS.PERCEPTUAL.ENABLED", "false", "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.MAX_ITER", "100000",
                           "TEST.EVAL_PERIOD", "0"] + (FileManager.default.fileExists(atPath: run.appendingPathComponent("last_checkpoint").path) ? ["--resume"] : [])
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(60)
            while p.isRunning && Date() < deadline {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? []
                if names.contains("last_checkpoint") && names.contains(where: { $0.hasPrefix("model_0") && $0.hasSuffix(".tmp") }) {
                    kill(p.processIdentifier, SIGKILL)
                    break
                }
                usleep(200)
            }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            let names = try FileManager.default.contentsOfDirectory(atPath: run.path)
            // The temp file still being there means the process died inside the write.
            caught = names.contains { $0.hasPrefix("model_0") && $0.hasSuffix(".tmp") }
        }
        XCTAssertTrue(caught, "never killed the trainer inside a checkpoint write in 20 tries")
        let (checkpoint, source) = try CheckpointLoader.latest(in: run.path)
        guard case .pointer = source else { return XCTFail("the pointer's checkpoint did not load: \(source)") }
        let resumed = try ProcessRunner.run(ProcessRunner.percepDist,
                                            ["train-demo", "--config", Self.config, "--resume", "OUTPUT_DIR", run.path, "SOLVER.IMS_PER_BATCH", "2",
                                             "LOSS.PERCEPTUAL.ENABLED", "false", "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.MAX_ITER", "100000",
                                             "TEST.EVAL_PERIOD", "0", "--stop-at", String(checkpoint.state.iteration + 2)])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("resumed from \(checkpoint.path) at iteration \(checkpoint.state.iteration)"), resumed.out)
        let after = try FileManager.default.contentsOfDirectory(atPath: run.path)
        XCTAssertFalse(after.contains { $0.hasSuffix(".tmp") }, "the next write clears the dead write's temp file: \(after)")
    }
}
