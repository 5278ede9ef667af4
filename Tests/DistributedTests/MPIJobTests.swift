import Distributed
import Foundation
import PercepHDF5
import TestSupport
import XCTest

/// The runtime's contract, checked with real MPI jobs of 1, 2 and 3 ranks.
final class MPIJobTests: XCTestCase {
    func testAllreduceIsExactForOddSizesAndSeveralBuckets() throws {
        for ranks in [2, 3] {
            for overlap in [[], ["--no-overlap"]] {
                let r = try MPIJob.run(ranks: ranks, ["--scenario", "allreduce"] + overlap)
                XCTAssertEqual(r.status, 0, r.output)
                XCTAssertTrue(r.output.contains("exact for sizes 1, 7, 1000, 65537"), r.output)
                XCTAssertTrue(r.output.contains("on \(ranks) ranks"), r.output)
            }
        }
    }

    /// Buckets reach the communication thread during backward, not after it: with a backward
    /// that leaves the CPU free (it sleeps), every bucket but the last is reduced before the
    /// walk ends; the debugging mode reduces nothing until the walk is over.
    func testBucketsAreReducedWhileBackwardRuns() throws {
        for ranks in [2, 3] {
            let r = try MPIJob.run(ranks: ranks, ["--scenario", "overlap"])
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("ran during backward on \(ranks) ranks"), r.output)
        }
        let plain = try MPIJob.run(ranks: 2, ["--scenario", "overlap", "--no-overlap"])
        XCTAssertEqual(plain.status, 0, plain.output)
        XCTAssertTrue(plain.output.contains("0 % of the all-reduce time ran during backward"), plain.output)
    }

    func testOneRankWithBatchFourEqualsTwoRanksWithBatchTwoEach() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var results: [[Float]] = []
        for ranks in [1, 2] {
            let out = dir.appendingPathComponent("params\(ranks).bin").path
            let r = try MPIJob.run(ranks: ranks, ["--scenario", "train", "--global-batch", "4", "--steps", "5", "--out", out])
            XCTAssertEqual(r.status, 0, r.output)
            let data = try Data(contentsOf: URL(fileURLWithPath: out))
            results.append(data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) })
        }
        XCTAssertEqual(results[0].count, results[1].count)
        XCTAssertGreaterThan(results[0].count, 1000)
        var worst = 0.0, norm = 0.0, diff = 0.0
        for (a, b) in zip(results[0], results[1]) {
            let d = Double(abs(a - b))
            worst = max(worst, d - 1e-5 * Double(max(abs(a), abs(b))) - 1e-6)
            norm += Double(a * a); diff += d * d
        }
        XCTAssertLessThanOrEqual(worst, 0, "a parameter differs by more than 1e-5 relative (+1e-6)")
        XCTAssertLessThan((diff / norm).squareRoot(), 1e-5)
        XCTAssertNotEqual(results[0], Array(repeating: 0, count: results[0].count))
    }

    func testARankWithADifferentLossNetworkIsCaughtAtStartUp() throws {
        let good = try MPIJob.run(ranks: 2, ["--scenario", "replicas"])
        XCTAssertEqual(good.status, 0, good.output)
        let bad = try MPIJob.run(ranks: 2, ["--scenario", "replicas", "--mismatch-rank", "1"])
        XCTAssertNotEqual(bad.status, 0, bad.output)
        XCTAssertTrue(bad.output.contains("loss-network fingerprint differs"), bad.output)
        XCTAssertTrue(bad.output.contains("rank 0:") && bad.output.contains("rank 1:"), bad.output)
    }

    func testARankThatThrowsEndsTheJobQuickly() throws {
        let r = try MPIJob.run(ranks: 2, ["--scenario", "train", "--steps", "6", "--fail-rank", "1", "--at-step", "3"], limit: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.seconds, 30, "the job must end within 30 s")
        XCTAssertTrue(r.output.contains("[rank 1] error: injected failure at step 3"), r.output)
    }

    func testAStoppedRankIsCaughtByTheWatchdog() throws {
        let r = try MPIJob.run(ranks: 2, ["--scenario", "train", "--steps", "6", "--stop-rank", "1", "--at-step", "2", "--timeout", "3"], limit: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.seconds, 30, "the watchdog must end the job")
        XCTAssertTrue(r.output.contains("longer than the 3 s timeout"), r.output)
    }
}

/// Checkpoint and resume through the training loop: 2N steps equal N steps + resume + N steps,
/// every parameter and momentum buffer bit for bit, on one rank and on two.
final class ResumeTests: XCTestCase {
    func testResumedRunIsBitIdentical() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = repo.appendingPathComponent("configs/demo/tiny-synthetic.yaml").path
        for ranks in [1, 2] {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let common = ["--config", config]
            func overrides(_ name: String) -> [String] {
                ["OUTPUT_DIR", dir.appendingPathComponent(name).path, "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "3",
                 "SOLVER.IMS_PER_BATCH", "4", "MODEL.SYNC_BN", "true"]
            }
            let straight = try MPIJob.run(ranks: ranks, common + overrides("straight"), command: ["train-demo"])
            XCTAssertEqual(straight.status, 0, straight.output)
            let first = try MPIJob.run(ranks: ranks, common + ["--stop-at", "3"] + overrides("resumed"), command: ["train-demo"])
            XCTAssertEqual(first.status, 0, first.output)
            let second = try MPIJob.run(ranks: ranks, common + ["--resume"] + overrides("resumed"), command: ["train-demo"])
            XCTAssertEqual(second.status, 0, second.output)
            XCTAssertTrue(second.output.contains("resumed from"), second.output)
            let a = try Data(contentsOf: dir.appendingPathComponent("straight/model_0000006.h5"))
            let b = try Data(contentsOf: dir.appendingPathComponent("resumed/model_0000006.h5"))
            XCTAssertFalse(a.isEmpty)
            XCTAssertEqual(try datasets(a), try datasets(b), "\(ranks) rank(s): resumed parameters differ")
        }
    }

    /// Every model and momentum dataset's values (the files' bytes also hold run-specific
    /// attributes, so the datasets are compared, not the files).
    func datasets(_ data: Data) throws -> [String: [Float]] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString).h5")
        try data.write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let file = try HDF5File(reading: path.path)
        var out: [String: [Float]] = [:]
        for group in ["model", "optimizer/momentum"] {
            for name in try file.datasetNames(in: group) { out["\(group)/\(name)"] = try file.readTensor(at: "\(group)/\(name)").values }
        }
        return out
    }
}

/// The sampler's guarantees, in one process.
final class SamplerTests: XCTestCase {
    func testGlobalBatchIsTheSameAtAnyWorldSize() throws {
        for cursor in stride(from: 0, to: 200, by: 8) {
            let one = try DistributedSampler(datasetSize: 50, globalBatch: 8, seed: 3, worldSize: 1, rank: 0).batch(atCursor: cursor)
            var union: [Int] = []
            for rank in 0..<4 {
                let part = try DistributedSampler(datasetSize: 50, globalBatch: 8, seed: 3, worldSize: 4, rank: rank).batch(atCursor: cursor)
                XCTAssertEqual(part.epoch, one.epoch)
                XCTAssertEqual(part.indices.count, 2)
                union += part.indices
            }
            XCTAssertEqual(union.sorted(), one.indices.sorted())
        }
    }

    func testEpochsArePermutationsAndDiffer() throws {
        let s = try DistributedSampler(datasetSize: 40, globalBatch: 8, seed: 3, worldSize: 1, rank: 0)
        XCTAssertEqual(s.stepsPerEpoch, 5)
        let epoch0 = (0..<5).flatMap { s.batch(atCursor: $0 * 8).indices }
        let epoch1 = (5..<10).flatMap { s.batch(atCursor: $0 * 8).indices }
        XCTAssertEqual(epoch0.sorted(), Array(0..<40))
        XCTAssertEqual(epoch1.sorted(), Array(0..<40))
        XCTAssertNotEqual(epoch0, epoch1)
        XCTAssertEqual(s.batch(atCursor: 40).epoch, 1)
    }

    func testBadBatchesAreRejected() {
        XCTAssertThrowsError(try DistributedSampler(datasetSize: 40, globalBatch: 6, seed: 0, worldSize: 4, rank: 0))
        XCTAssertThrowsError(try DistributedSampler(datasetSize: 4, globalBatch: 8, seed: 0, worldSize: 2, rank: 0))
    }
}

/// `bench allreduce` under mpirun at a tiny size: the JSON the benchmark docs are built from.
final class BenchAllreduceTests: XCTestCase {
    func testJSONReportsSyncRatiosAndTheStepBreakdown() throws {
        let r = try MPIJob.run(ranks: 2, ["--mb", "1,3", "--repeats", "1", "--batch", "1", "--size", "32",
                                          "--single-rank-step", "0.5", "--json"], command: ["bench", "allreduce"])
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.output.split(separator: "\n").last { $0.hasPrefix("{") }, r.output)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let results = try XCTUnwrap(o["results"] as? [[String: Double]])
        XCTAssertEqual(results.map { $0["mb"] }, [1, 3])
        for row in results {
            XCTAssertGreaterThan(row["project_ms"]!, 0)
            XCTAssertEqual(row["ratio"]!, row["project_ms"]! / row["raw_ms"]!, accuracy: 1e-9)
        }
        func number(_ key: String) -> Double { (o[key] as? NSNumber)?.doubleValue ?? -1 }
        XCTAssertEqual(number("ranks"), 2)
        XCTAssertEqual(number("parameters"), 11_176_512)
        for key in ["step_seconds", "step_without_overlap_seconds", "compute_seconds", "communication_seconds"] {
            XCTAssertGreaterThan(number(key), 0, key)
        }
        for key in ["hidden_communication_share", "communication_cpu_share", "communication_during_backward_share"] {
            XCTAssertTrue((0...1.05).contains(number(key)), "\(key) = \(number(key))")
        }
        XCTAssertEqual(number("weak_scaling_efficiency"), 0.5 / number("step_seconds"), accuracy: 1e-9)
    }
}
