import Foundation
import TestSupport
import XCTest

/// A cluster of "hosts" made of network namespaces (`launch/netns-cluster.sh`): Open MPI launches
/// through a hostfile and a remote-shell agent and the ranks talk over TCP across a bridge, with
/// no shared memory between hosts. Skipped, with the reason, where namespaces cannot be created.
final class NetnsClusterTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repo.appendingPathComponent("launch/netns-cluster.sh").path

    var prefix = ""
    var dir: URL!

    override func setUpWithError() throws {
        let check = try Self.cluster(prefix: "pdchk", ["check"])
        guard check.status == 0 else { throw XCTSkip("network namespaces are not available: \(check.output)") }
        // Short and unique: interface names carry the prefix and are limited to 15 bytes.
        prefix = "pt" + String(UUID().uuidString.lowercased().filter(\.isLetter).prefix(4))
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("netns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if !prefix.isEmpty { _ = try? Self.cluster(prefix: prefix, ["down"]) }
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// Runs `launch/netns-cluster.sh args` for cluster `prefix` with the test's binary; output
    /// is stdout and stderr together.
    static func cluster(prefix: String, _ args: [String], environment: [String: String] = [:], limit: Double = 180) throws
        -> (status: Int32, output: String, seconds: Double) {
        try ProcessRunner.runCombined(URL(fileURLWithPath: "/bin/bash"), [script] + args,
                                      environment: clusterEnvironment(prefix: prefix, environment), limit: limit)
    }

    /// The test's environment for cluster `prefix`, with the test's binary and `extra` on top.
    static func clusterEnvironment(prefix: String, _ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["NETNS_PREFIX"] = prefix
        env["PERCEP_BIN"] = MPIJob.executable
        // Each rank's thread budget comes from its host's share of the cores, not from here.
        env["OMP_NUM_THREADS"] = nil
        env["PERCEP_THREADS"] = nil
        return env.merging(extra) { _, new in new }
    }

    func up(_ hosts: Int) throws {
        let r = try Self.cluster(prefix: prefix, ["up", "\(hosts)"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("\(hosts) hosts on"), r.output)
    }

    func run(_ args: [String], ranksPerHost: Int = 1, keep: Bool = false, environment: [String: String] = [:], limit: Double = 180)
        throws -> (status: Int32, output: String, seconds: Double) {
        try Self.cluster(prefix: prefix, ["run", "-r", "\(ranksPerHost)"] + args,
                         environment: environment.merging(keep ? ["KEEP_CLUSTER": "1"] : [:]) { a, _ in a }, limit: limit)
    }

    /// Exact sums, replica agreement and a rank with another loss network caught, across 2 and 3
    /// hosts; each rank sits on its own host and says so; the cluster is gone after `run`.
    func testAllreduceAndReplicasAcrossHosts() throws {
        for hosts in [2, 3] {
            try up(hosts)
            let sums = try run(["dist", "check", "--scenario", "allreduce"], keep: true)
            XCTAssertEqual(sums.status, 0, sums.output)
            XCTAssertTrue(sums.output.contains("exact for sizes 1, 7, 1000, 65537 and 5 gradient buckets on \(hosts) ranks"), sums.output)
            for h in 0..<hosts {
                XCTAssertTrue(sums.output.contains("[rank \(h)] host \(prefix)-host\(h): local rank 0 of 1"), sums.output)
            }
            let replicas = try run(["dist", "check", "--scenario", "replicas"], keep: true)
            XCTAssertEqual(replicas.status, 0, replicas.output)
            let bad = try run(["dist", "check", "--scenario", "replicas", "--mismatch-rank", "\(hosts - 1)"])
            XCTAssertNotEqual(bad.status, 0, bad.output)
            XCTAssertTrue(bad.output.contains("loss-network fingerprint differs"), bad.output)
            let left = try Self.cluster(prefix: prefix, ["run", "dist", "check"])
            XCTAssertNotEqual(left.status, 0, "the cluster must be down after run")
            XCTAssertTrue(left.output.contains("no cluster '\(prefix)' is up"), left.output)
        }
    }

    /// Training across 2 and 3 hosts ends with the parameters one rank reaches on the same global
    /// batch; with 2 ranks per host each rank takes half of its host's cores.
    func testTrainingAcrossHostsEqualsOneRank() throws {
        let single = dir.appendingPathComponent("one.bin").path
        let one = try MPIJob.run(ranks: 1, ["--scenario", "train", "--global-batch", "6", "--steps", "4", "--out", single])
        XCTAssertEqual(one.status, 0, one.output)
        let reference = try floats(single)
        for (hosts, perHost) in [(2, 1), (3, 1), (3, 2)] {
            try up(hosts)
            let out = dir.appendingPathComponent("h\(hosts)x\(perHost).bin").path
            let r = try run(["dist", "check", "--scenario", "train", "--global-batch", "6", "--steps", "4", "--out", out], ranksPerHost: perHost)
            XCTAssertEqual(r.status, 0, r.output)
            if perHost == 2 {
                XCTAssertTrue(r.output.contains("host \(prefix)-host2: local rank 1 of 2"), r.output)
            }
            let params = try floats(out)
            XCTAssertEqual(params.count, reference.count)
            var diff = 0.0, norm = 0.0
            for (a, b) in zip(params, reference) { diff += Double((a - b) * (a - b)); norm += Double(b * b) }
            XCTAssertLessThan((diff / norm).squareRoot(), 1e-5, "\(hosts) hosts × \(perHost) ranks")
        }
    }

    /// Without a fixed budget every rank divides its host's cores (PERCEP_HOST_CORES, here 4 per
    /// emulated host through HOST_CORES) by the ranks on that host, not by the world size (4).
    func testThreadBudgetIsTheHostsShare() throws {
        try up(2)
        let r = try run(["train-demo", "--config", Self.repo.appendingPathComponent("configs/demo/tiny-synthetic.yaml").path,
                         "OUTPUT_DIR", dir.appendingPathComponent("budget").path, "SOLVER.MAX_ITER", "1", "SOLVER.IMS_PER_BATCH", "8",
                         "LOSS.PERCEPTUAL.ENABLED", "false", "TEST.EVAL_PERIOD", "0"],
                        ranksPerHost: 2, environment: ["HOST_CORES": "4"])
        XCTAssertEqual(r.status, 0, r.output)
        for rank in 0..<4 {
            XCTAssertTrue(r.output.contains("[rank \(rank)] host \(prefix)-host\(rank / 2): local rank \(rank % 2) of 2, 2 threads (4 host cores / 2 local ranks)"),
                          r.output)
        }
    }

    /// A host whose cable is pulled mid-run: the watchdog ends the whole job (mpirun included)
    /// within DIST.TIMEOUT_SECONDS + 5 s, naming the collective, and `--resume` continues from
    /// the last checkpoint once the host is back.
    func testALostHostEndsTheJobAndResumeContinues() throws {
        try up(2)
        let output = dir.appendingPathComponent("lost")
        let config = Self.repo.appendingPathComponent("configs/demo/tiny-synthetic.yaml").path
        let common = ["--config", config, "OUTPUT_DIR", output.path, "SOLVER.IMS_PER_BATCH", "4", "LOSS.PERCEPTUAL.ENABLED", "false",
                      "LOG_PERIOD", "50", "SOLVER.CHECKPOINT_PERIOD", "5", "TEST.EVAL_PERIOD", "0", "DIST.TIMEOUT_SECONDS", "4"]
        let job = Process()
        job.executableURL = URL(fileURLWithPath: "/bin/bash")
        job.arguments = [Self.script, "run", "train-demo"] + common + ["SOLVER.MAX_ITER", "100000"]
        job.environment = Self.clusterEnvironment(prefix: prefix, ["KEEP_CLUSTER": "1"])
        // The job's output goes to a file, so nothing has to drain a pipe while the test waits.
        let logPath = dir.appendingPathComponent("lost.log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        job.standardOutput = logHandle
        job.standardError = logHandle
        try job.run()
        let pointer = output.appendingPathComponent("last_checkpoint").path
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: pointer) && job.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        XCTAssertTrue(job.isRunning, "the job ended before its first checkpoint")
        let cut = try Self.cluster(prefix: prefix, ["link", "1", "down"])
        XCTAssertEqual(cut.status, 0, cut.output)
        let cutAt = Date()
        while job.isRunning && Date().timeIntervalSince(cutAt) < 60 { Thread.sleep(forTimeInterval: 0.1) }
        let seconds = Date().timeIntervalSince(cutAt)
        if job.isRunning { job.terminate() }
        job.waitUntilExit()
        try logHandle.close()
        let log = try String(contentsOfFile: logPath, encoding: .utf8)
        XCTAssertNotEqual(job.terminationStatus, 0, log)
        XCTAssertLessThanOrEqual(seconds, 4 + 5, "the job must end within DIST.TIMEOUT_SECONDS + 5 s of the cut:\n\(log)")
        XCTAssertTrue(log.contains("[rank 0] error: collective '") && log.contains("longer than the 4 s timeout"), log)
        print(String(format: "the job ended %.1f s after host 1 lost its link (DIST.TIMEOUT_SECONDS 4)", seconds))
        // Nothing of the job survives on the cut-off host either (its daemon ends its rank).
        var survivors = "?"
        for _ in 0..<50 {
            let pids = try ProcessRunner.run(URL(fileURLWithPath: "/usr/bin/env"), ["ip", "netns", "pids", "\(prefix)-h1"])
            survivors = pids.out.trimmingCharacters(in: .whitespacesAndNewlines)
            if survivors.isEmpty { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(survivors, "", "processes left on the cut-off host 10 s after the job ended")
        let leftovers = try Self.cluster(prefix: prefix, ["down"])
        XCTAssertEqual(leftovers.status, 0, leftovers.output)

        let saved = try String(contentsOfFile: pointer, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let savedIteration = Int(saved.dropFirst("model_".count).prefix(7)) ?? -1
        XCTAssertGreaterThan(savedIteration, 0, saved)
        try up(2)
        let resumed = try run(["train-demo", "--resume", "--stop-at", "\(savedIteration + 5)"] + common + ["SOLVER.MAX_ITER", "100000"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resumed from") && resumed.output.contains(saved), resumed.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output.appendingPathComponent(String(format: "model_%07d.h5", savedIteration + 5)).path),
                      resumed.output)
    }

    /// `train-seg` and `train-inst` across 2 hosts × 1 rank on small synthetic sets, with
    /// checkpoints and evaluation.
    func testTrainSegAndTrainInstAcrossTwoHosts() throws {
        let seg = dir.appendingPathComponent("seg-data"), coco = dir.appendingPathComponent("coco-data")
        let s = try ProcessRunner.run(ProcessRunner.percepDist, ["synth", "seg", "--out", seg.path, "--train", "16", "--val", "4", "--size", "64,64", "--seed", "3"])
        XCTAssertEqual(s.status, 0, s.err)
        for (split, images, seed) in [("train", 16, "5"), ("val", 4, "6")] {
            let c = try ProcessRunner.run(ProcessRunner.percepDist, ["synth", "coco", "--out", coco.path, "--images", "\(images)", "--seed", seed,
                                                                     "--size", "64,64", "--split", split])
            XCTAssertEqual(c.status, 0, c.err)
        }
        let configs = Self.repo.appendingPathComponent("configs/synthetic")
        let segRun = dir.appendingPathComponent("seg"), instRun = dir.appendingPathComponent("inst")
        try up(2)
        let trainSeg = try run(["train-seg", "--config", configs.appendingPathComponent("baseline.yaml").path,
                                "DATASETS.ROOT", seg.appendingPathComponent("ADEChallengeData2016").path, "OUTPUT_DIR", segRun.path,
                                "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "4", "INPUT.CROP_SIZE", "[48, 48]", "INPUT.SCALE", "[256, 64]",
                                "TEST.SCALE", "[256, 64]", "TEST.EVAL_PERIOD", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "LOG_PERIOD", "1"], keep: true)
        XCTAssertEqual(trainSeg.status, 0, trainSeg.output)
        XCTAssertTrue(trainSeg.output.contains("evaluation on 4 samples") && trainSeg.output.contains("mIoU"), trainSeg.output)
        let trainInst = try run(["train-inst", "--config", configs.appendingPathComponent("condinst.yaml").path,
                                 "DATASETS.ROOT", coco.path, "OUTPUT_DIR", instRun.path,
                                 "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "2",
                                 "INPUT.MIN_SIZE_TRAIN", "[56, 64]", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "128",
                                 "TEST.EVAL_PERIOD", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "LOG_PERIOD", "1", "DATALOADER.NUM_WORKERS", "1"])
        XCTAssertEqual(trainInst.status, 0, trainInst.output)
        XCTAssertTrue(trainInst.output.contains("evaluation on 4 samples") && trainInst.output.contains("segm/AP"), trainInst.output)
        for run in [segRun, instRun] {
            for name in ["model_0000002.h5", "model_0000004.h5", "metrics.jsonl"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent(name).path), "\(run.lastPathComponent)/\(name)")
            }
        }
    }

    func floats(_ path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
