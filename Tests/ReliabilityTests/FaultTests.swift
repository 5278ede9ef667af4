import Foundation
import TestSupport
import XCTest

/// Faults during training (docs/reliability.md): a full disk while a checkpoint is written, rank 0
/// killed at random moments, a rank stopped during evaluation. Every run must end on every rank
/// within a bounded time, and `--resume` must continue from a valid checkpoint: no data lost.
final class FaultTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let config = repo.appendingPathComponent("configs/demo/tiny-synthetic.yaml").path
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("faults-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func demo(_ output: URL, _ extra: [String]) -> [String] {
        ["--config", Self.config, "OUTPUT_DIR", output.path, "SOLVER.IMS_PER_BATCH", "4", "LOSS.PERCEPTUAL.ENABLED", "false", "LOG_PERIOD", "50"] + extra
    }

    /// The newest checkpoint `last_checkpoint` names, checked by `checkpoint inspect`.
    func assertValidPointer(_ run: URL, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let name = try String(contentsOf: run.appendingPathComponent("last_checkpoint"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let inspect = try ProcessRunner.run(ProcessRunner.percepDist, ["checkpoint", "inspect", run.appendingPathComponent(name).path])
        XCTAssertEqual(inspect.status, 0, "\(name): \(inspect.err)", file: file, line: line)
        XCTAssertTrue(inspect.out.contains("checksums: OK"), inspect.out, file: file, line: line)
        return Int(name.dropFirst("model_".count).prefix(7)) ?? -1
    }

    /// OUTPUT_DIR on a 90 KiB tmpfs: two checkpoints fit, the third runs out of space. The job
    /// ends with an error naming the file on both ranks, the pointer still names the second
    /// checkpoint, which loads, and no temp file is left behind.
    func testDiskFullWhileWritingACheckpoint() throws {
        let mountPoint = dir.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        let mount = try ProcessRunner.run(URL(fileURLWithPath: "/usr/bin/env"), ["mount", "-t", "tmpfs", "-o", "size=90k", "tmpfs", mountPoint.path])
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here (needs root): \(mount.err)") }
        defer { _ = try? ProcessRunner.run(URL(fileURLWithPath: "/usr/bin/env"), ["umount", mountPoint.path]) }
        let run = mountPoint.appendingPathComponent("run")
        let r = try MPIJob.run(ranks: 2, demo(run, ["SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.MAX_TO_KEEP", "10"]),
                               command: ["train-demo"], limit: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.seconds, 30, "the job must end on every rank")
        XCTAssertTrue(r.output.contains("model_0000003.h5") && r.output.contains("No space left on device"), r.output)
        XCTAssertEqual(try assertValidPointer(run), 2)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "temp files left on the full disk")
    }

    /// The pid of rank 0 of the job writing to `output` (its environment names the rank).
    func rankZeroPid(of output: URL) -> Int32? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                  String(decoding: cmdline, as: UTF8.self).contains(output.path),
                  let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ") else { continue }
            let vars = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("OMPI_COMM_WORLD_RANK=0") { return pid }
        }
        return nil
    }

    /// Rank 0 of a 2-rank run is killed with SIGKILL at random moments (seeded), 20 times, while
    /// the run checkpoints every 3 iterations and evaluates every 5: the job always ends within
    /// 10 s of the kill, and `--resume` always continues from the checkpoint the pointer names.
    func testRankZeroKilledAtRandomMomentsNeverLosesACheckpoint() throws {
        var generator = SystemRandomNumberGenerator()
        var seed = UInt64.random(in: 0..<1_000_000, using: &generator)
        if let fixed = ProcessInfo.processInfo.environment["PERCEP_FAULT_SEED"].flatMap(UInt64.init) { seed = fixed }
        print("fault seed \(seed) (PERCEP_FAULT_SEED reproduces it)")
        var state = seed
        func nextUnit() -> Double {   // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        var endings: [Double] = [], resumedFrom: [Int] = []
        for trial in 0..<20 {
            let run = dir.appendingPathComponent("kill\(trial)")
            let args = demo(run, ["SOLVER.MAX_ITER", "100000", "SOLVER.CHECKPOINT_PERIOD", "3", "TEST.EVAL_PERIOD", "5"])
            let job = Process()
            job.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            job.arguments = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", MPIJob.executable, "train-demo"] + args
            var env = ProcessInfo.processInfo.environment
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"; env["OMP_NUM_THREADS"] = "1"
            job.environment = env
            job.standardOutput = FileHandle.nullDevice
            job.standardError = FileHandle.nullDevice
            try job.run()
            // Wait for the first checkpoint, then a random 0–1.5 s more: inside checkpoint writes,
            // evaluations and all-reduces alike.
            let start = Date()
            while !FileManager.default.fileExists(atPath: run.appendingPathComponent("last_checkpoint").path) && Date().timeIntervalSince(start) < 60 {
                usleep(10_000)
            }
            usleep(UInt32(nextUnit() * 1_500_000))
            guard let pid = rankZeroPid(of: run) else { job.terminate(); job.waitUntilExit(); XCTFail("trial \(trial): rank 0 not found"); continue }
            kill(pid, SIGKILL)
            let killed = Date()
            while job.isRunning && Date().timeIntervalSince(killed) < 30 { usleep(20_000) }
            let ended = Date().timeIntervalSince(killed)
            if job.isRunning { job.terminate() }
            job.waitUntilExit()
            endings.append(ended)
            XCTAssertLessThan(ended, 10, "trial \(trial): the job took \(ended) s to end after rank 0 was killed")
            let iteration = try assertValidPointer(run)
            let resumed = try MPIJob.run(ranks: 2, demo(run, ["SOLVER.MAX_ITER", "100000", "SOLVER.CHECKPOINT_PERIOD", "3", "TEST.EVAL_PERIOD", "5",
                                                              "--resume", "--stop-at", "\(iteration + 3)"]), command: ["train-demo"], limit: 60)
            XCTAssertEqual(resumed.status, 0, "trial \(trial): \(resumed.output)")
            XCTAssertTrue(resumed.output.contains("resumed from") && resumed.output.contains("model_\(String(format: "%07d", iteration)).h5"),
                          "trial \(trial): \(resumed.output)")
            resumedFrom.append(iteration)
        }
        print(String(format: "20 kills: the job ended %.2f–%.2f s after the kill (mean %.2f); resumed from iterations %@",
                     endings.min() ?? 0, endings.max() ?? 0, endings.reduce(0, +) / Double(max(endings.count, 1)),
                     resumedFrom.map(String.init).joined(separator: ",")))
    }

    /// Rank 1 stops itself (SIGSTOP) as an evaluation begins: the watchdog ends the whole job,
    /// naming the collective that waited, and the checkpoint written before is intact.
    func testRankStoppedDuringEvaluationIsCaughtByTheWatchdog() throws {
        setenv("PERCEP_FAULT_STOP_RANK_IN_EVALUATION", "1", 1)
        defer { unsetenv("PERCEP_FAULT_STOP_RANK_IN_EVALUATION") }
        let run = dir.appendingPathComponent("stop")
        let r = try MPIJob.run(ranks: 2, demo(run, ["SOLVER.MAX_ITER", "10", "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "4",
                                                    "DIST.TIMEOUT_SECONDS", "3"]), command: ["train-demo"], limit: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(r.seconds, 30, "the watchdog must end the job")
        XCTAssertTrue(r.output.contains("longer than the 3 s timeout") && r.output.contains("evaluation sums (lengths)"), r.output)
        XCTAssertEqual(try assertValidPointer(run), 2, "iteration 4 evaluates before it checkpoints")
    }
}
