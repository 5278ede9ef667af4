import Foundation
import Study
import TestSupport
import Training
import XCTest

/// A finished result with a given mIoU (and one per-class value).
private func result(_ row: String, _ seed: Int, _ mIoU: Double?, pole: Double? = nil) -> StudyRunResult {
    StudyRunResult(row: row, seed: seed, status: mIoU == nil ? "diverged" : "finished", mIoU: mIoU, aAcc: mIoU.map { $0 + 0.5 },
                   perClassIoU: ["pole": pole], wallSeconds: 60, iterations: 600, message: mIoU == nil ? "non-finite loss_perceptual at iteration 3" : nil)
}

/// A finished instance or depth result with named metrics.
private func result(_ row: String, _ seed: Int, metrics: [String: Double]) -> StudyRunResult {
    StudyRunResult(row: row, seed: seed, status: "finished", mIoU: nil, aAcc: nil, metrics: metrics, perClassIoU: [:], wallSeconds: 120, iterations: 400)
}

final class StudyStatisticsTests: XCTestCase {
    /// Mean, sample std (n − 1) and standard error as numpy's mean/std(ddof=1) give them.
    func testSampleSummary() {
        let s = SampleSummary([0.30, 0.32, 0.31, 0.35])
        XCTAssertEqual(s.mean, 0.32, accuracy: 1e-12)
        XCTAssertEqual(s.std, 0.021602468994692866, accuracy: 1e-12)
        XCTAssertEqual(s.standardError, 0.021602468994692866 / 2, accuracy: 1e-12)
        XCTAssertTrue(SampleSummary([0.3]).std.isNaN && SampleSummary([]).mean.isNaN)
    }

    /// Differences pair by seed: unmatched seeds and diverged runs are left out.
    func testPairedDifferencePairsBySeed() {
        let base = [result("baseline", 0, 0.30), result("baseline", 1, 0.28), result("baseline", 2, 0.33)]
        let row = [result("x", 0, 0.31), result("x", 1, 0.30), result("x", 2, nil), result("x", 3, 0.50)]
        let d = pairedDifference(row, baseline: base)
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(d.mean, 0.015, accuracy: 1e-12)
        XCTAssertEqual(d.std, (0.00005 as Double).squareRoot(), accuracy: 1e-12)   // differences 0.01 and 0.02
    }

    /// The final evaluation of a metrics.jsonl: the last record with eval/mIoU, per-class IoU with
    /// null kept as nil; a file without evaluations is an error naming it.
    func testFinalEvaluationReadsTheLastEvalRecord() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("study-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("metrics.jsonl").path
        try """
        {"iteration":199,"eval/mIoU":0.2,"eval/aAcc":0.8,"eval/IoU/pole":0.1}
        {"iteration":599,"total_loss":0.5}
        {"iteration":599,"eval/mIoU":0.3,"eval/aAcc":0.85,"eval/IoU/pole":null,"eval/IoU/sky":0.9}
        {"iteration":599,"total_loss":0.4}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let e = try finalEvaluation(metricsFile: file)
        XCTAssertEqual(e.iteration, 599); XCTAssertEqual(e.metrics, ["mIoU": 0.3, "aAcc": 0.85])
        XCTAssertEqual(e.perClass.count, 2)
        XCTAssertEqual(e.perClass["sky"], 0.9)
        XCTAssertEqual(e.perClass["pole"], .some(nil))
        try "{\"iteration\":3,\"total_loss\":1}\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try finalEvaluation(metricsFile: file)) { XCTAssertTrue("\($0)".contains("metrics.jsonl: no evaluation record")) }
        // Another task's evaluation: found by its primary metric, nulls (AP of an absent size) left out.
        try """
        {"iteration":199,"eval/abs_rel":0.31,"eval/delta1":0.4}
        {"iteration":399,"eval/bbox/APl":null,"eval/abs_rel":0.29,"eval/delta1":0.5}
        {"iteration":399,"total_loss":0.4}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let depth = try finalEvaluation(metricsFile: file, primary: "abs_rel")
        XCTAssertEqual(depth, FinalEvaluation(iteration: 399, metrics: ["abs_rel": 0.29, "delta1": 0.5], perClass: [:]))
        XCTAssertThrowsError(try finalEvaluation(metricsFile: file)) { XCTAssertTrue("\($0)".contains("no evaluation record (eval/mIoU)")) }
    }

    /// Results of instance and depth runs: each row's Δ pairs with its own reference row (Table 7's
    /// WCE + VNL + perceptual with WCE + VNL, not with WCE), metrics print in their units (AP is
    /// already in percent, abs_rel a fraction), a task's runs get their own chart and run table,
    /// and a segmentation-only results.json written before any of this still reads.
    func testInstanceAndDepthTables() throws {
        let runs = [
            result("depth_wce", 0, metrics: ["abs_rel": 0.28, "delta1": 0.50]), result("depth_wce", 1, metrics: ["abs_rel": 0.30, "delta1": 0.48]),
            result("depth_wce_percep", 0, metrics: ["abs_rel": 0.27, "delta1": 0.52]), result("depth_wce_percep", 1, metrics: ["abs_rel": 0.28, "delta1": 0.50]),
            result("depth_vnl", 0, metrics: ["abs_rel": 0.40, "delta1": 0.30]),
            result("depth_vnl_percep", 0, metrics: ["abs_rel": 0.39, "delta1": 0.31]),
            result("inst_baseline", 0, metrics: ["bbox/AP": 66.3, "segm/AP": 61.8]), result("inst_percep", 0, metrics: ["bbox/AP": 65.1, "segm/AP": 61.0]),
        ]
        let report = StudyReport(results: StudyResults(environment: [:], runs: runs), figure: "reproduction/mIoU.svg")
        let md = report.markdown()
        XCTAssertTrue(md.contains("| WCE | 14.5 | 29.00 ± 1.41 (2) |  | not reported | 49.00 ± 1.41 (2) |  | 120 s |"), md)
        XCTAssertTrue(md.contains("| WCE + perceptual | 14.0 | 27.50 ± 0.71 (2) | −1.50 ± 0.50 (2) | not reported | 51.00 ± 1.41 (2) | +2.00 ± 0.00 (2) |"), md)
        XCTAssertTrue(md.contains("| WCE + VNL + perceptual | 13.2 | 39.00 (1 seed) | −1.00 (1 pair) |"), md)
        XCTAssertTrue(md.contains("| CondInst + perceptual | 37.44 | 65.10 (1 seed) | −1.20 (1 pair) | 33.69 | 61.00 (1 seed) | −0.80 (1 pair) | 120 s |"), md)
        XCTAssertTrue(md.contains("](reproduction/depth.svg)") && md.contains("](reproduction/instance.svg)"), md)
        XCTAssertTrue(md.contains("| depth_vnl_percep | 0 | finished | 39.00 | 31.00 | 400 | 120 s | — |"), md)
        XCTAssertTrue(md.contains("| inst_baseline | 0 | finished | 61.80 | 66.30 | 400 | 120 s | — |"), md)
        XCTAssertTrue(md.contains("| CE only | 69.60 | not run |  |"), "segmentation tables still listed: \(md)")
        XCTAssertNil(report.chart(.segmentation), "no segmentation runs, no segmentation chart")
        for (task, expected) in [(StudyTask.depth, [29, 27.5, 40, 39] as [Double]), (.instance, [61.8, 61.0])] {
            let values = try XCTUnwrap(report.chart(task)).bars.map(\.value)
            XCTAssertEqual(values.count, expected.count, "\(task)")
            for (v, e) in zip(values, expected) { XCTAssertEqual(v, e, accuracy: 1e-9, "\(task)") }
        }
        XCTAssertEqual(StudyReport.figure(for: .depth, beside: "docs/reproduction/mIoU.svg"), "docs/reproduction/depth.svg")

        let committed = try StudyResults.load(StudyGridTests.repo.appendingPathComponent("docs/reproduction/results.json").path)
        for run in committed.runs where StudyGrid.row(run.row)?.task == .segmentation {
            XCTAssertEqual(run.value(.mIoU), run.finished ? run.mIoU : nil, "\(run.row) seed \(run.seed)")
            XCTAssertNotNil(run.finished ? run.value(.mIoU) : 0, "\(run.row) seed \(run.seed)")
        }
    }

    /// The report shows each table's rows with mean ± std, the paired Δ with its standard error,
    /// the paper's number, diverged runs, per-class IoU and every run; the chart has a bar per row
    /// with runs and the baseline line.
    func testReportAndChart() throws {
        var timed = result("baseline", 1, 0.28, pole: 0.12)
        timed.cpuSeconds = 118.4
        let runs = [result("baseline", 0, 0.30, pole: 0.10), timed,
                    result("percep_teacher", 0, 0.31, pole: 0.15), result("percep_teacher", 1, 0.30, pole: 0.13),
                    result("normal1", 0, nil)]
        let report = StudyReport(results: StudyResults(environment: ["machine": "test"], runs: runs), notes: "Hand notes.", figure: "reproduction/mIoU.svg")
        let md = report.markdown()
        XCTAssertTrue(md.contains("| CE only | 69.60 | 29.00 ± 1.41 (2) |  |"), md)
        XCTAssertTrue(md.contains("| + perceptual vs teacher | 70.68 | 30.50 ± 0.71 (2) | +1.50 ± 0.50 (2) |"), md)
        XCTAssertTrue(md.contains("| N(0, 1) | does not converge | —, 1 diverged | — |"), md)
        XCTAssertTrue(md.contains("| normal1 | 0 | non-finite loss_perceptual at iteration 3 |"), md)
        XCTAssertTrue(md.contains("| pole | 11.00 | 14.00 | +3.00 ± 2.00 |"), md)
        XCTAssertTrue(md.contains("Hand notes.") && md.contains("![mIoU per row"), md)
        XCTAssertTrue(md.contains("| GoogLeNet | 68.91 | not run |"), md)
        XCTAssertTrue(md.contains("| baseline | 0 | finished | 30.00 | 80.00 | 600 | 60 s | — |"), md)
        XCTAssertTrue(md.contains("| baseline | 1 | finished | 28.00 | 78.00 | 600 | 60 s | 118 s |"), md)
        let chart = try XCTUnwrap(report.chart())
        let svg = chart.svg()
        XCTAssertNil(report.chart(.depth), "no depth runs, no depth chart")
        XCTAssertEqual(chart.bars.map(\.label), ["CE only", "+ perceptual vs teacher (VGG16)", "N(0, 1) (1 of 1 diverged)"])
        XCTAssertEqual(svg.components(separatedBy: "<rect x=").count - 1, 2, "a bar per row with a finite mean")
        XCTAssertTrue(svg.contains("stroke-dasharray"), "the baseline line")
    }
}

final class StudyGridTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Every row's overrides are KEY VALUE pairs the config accepts on top of its task's study
    /// config (with the teacher's), row ids are unique, every table names existing rows of one
    /// task with a paper number per metric, every reference row is of the same task, the quick
    /// grid is the three target rows, and the teacher the rows distil from is the one
    /// configs/study/teacher.yaml trains.
    func testRowsAreValidConfigs() throws {
        XCTAssertEqual(Set(StudyGrid.rows.map(\.id)).count, StudyGrid.rows.count)
        for row in StudyGrid.rows {
            XCTAssertEqual(row.overrides.count % 2, 0, row.id)
            let extra = row.usesTeacher ? StudyGrid.teacherOverrides(weights: "/nonexistent/model_best.h5") : []
            let config = Self.repo.appendingPathComponent("configs/study/" + row.task.config).path
            let loaded = try TrainingConfig.load(file: config, overrides: row.overrides + extra + ["SEED", "1"])
            XCTAssertEqual(loaded.bool("LOSS.PERCEPTUAL.ENABLED"), row.id != "baseline" && !["depth_wce", "depth_vnl", "inst_baseline"].contains(row.id), row.id)
            if let reference = row.pairedWith { XCTAssertEqual(StudyGrid.row(reference)?.task, row.task, row.id) }
            // --quick shortens the whole schedule: learning-rate steps fall inside the shorter run.
            let quick = try TrainingConfig.load(file: config, overrides: row.overrides + extra + row.task.quickSchedule)
            XCTAssertEqual(quick.int("SOLVER.MAX_ITER"), row.task.quickIterations, row.id)
            XCTAssertEqual(4 * row.task.quickIterations, loaded.int("SOLVER.MAX_ITER"), "\(row.id): --quick is a quarter of the schedule")
            if quick.string("SOLVER.LR_SCHEDULER_NAME") != "poly" {   // poly decays towards MAX_ITER by itself
                XCTAssertTrue(quick.ints("SOLVER.STEPS").allSatisfy { $0 < row.task.quickIterations }, "\(row.id): \(quick.ints("SOLVER.STEPS"))")
            }
        }
        XCTAssertEqual(try TrainingConfig.load(file: Self.repo.appendingPathComponent("configs/study/depth.yaml").path,
                                               overrides: StudyGrid.row("depth_wce")!.overrides).double("LOSS.VNL.WEIGHT"), 0)
        for table in StudyGrid.tables {
            XCTAssertEqual(Set(table.entries.compactMap { StudyGrid.row($0.row)?.task }).count, 1, table.title)
            for e in table.entries {
                XCTAssertNotNil(StudyGrid.row(e.row), "\(table.title): \(e.row)")
                XCTAssertEqual(e.paper.count, table.metrics.count, "\(table.title): \(e.row)")
            }
        }
        // The default and quick grids are the target rows; --ablations adds the rest; --only
        // picks any row by name, except from the quick grid without --ablations.
        let target = ["baseline", "percep_teacher", "percep_gt"]
        for quick in [false, true] { XCTAssertEqual(try StudyGrid.select(quick: quick, ablations: false, only: []).map(\.id), target) }
        XCTAssertEqual(try StudyGrid.select(quick: false, ablations: true, only: []).map(\.id), StudyGrid.rows.filter { $0.task == .segmentation }.map(\.id))
        XCTAssertEqual(try StudyGrid.select(quick: false, ablations: false, only: ["k7", "baseline"]).map(\.id), ["baseline", "k7"])
        XCTAssertEqual(try StudyGrid.select(quick: true, ablations: false, only: ["k7", "baseline"]).map(\.id), ["baseline"])
        XCTAssertEqual(try StudyGrid.select(quick: true, ablations: true, only: ["k7"]).map(\.id), ["k7"])
        // --tasks picks the target rows of other tasks; --only names rows of any task.
        XCTAssertEqual(try StudyGrid.select(quick: true, ablations: false, only: [], tasks: [.instance, .depth]).map(\.id),
                       ["depth_wce", "depth_wce_percep", "depth_vnl", "depth_vnl_percep", "inst_baseline", "inst_percep"])
        XCTAssertEqual(try StudyGrid.select(quick: false, ablations: false, only: ["inst_percep", "k7"]).map(\.id), ["k7", "inst_percep"])
        XCTAssertThrowsError(try StudyGrid.select(quick: false, ablations: false, only: ["vgg17"])) { XCTAssertTrue("\($0)".contains("vgg17") && "\($0)".contains("vgg19")) }
        let teacher = try TrainingConfig.load(file: Self.repo.appendingPathComponent("configs/study/teacher.yaml").path)
        XCTAssertEqual(teacher.string("MODEL.NAME"), StudyGrid.teacherName)
        XCTAssertEqual(teacher.int("MODEL.BASE_CHANNELS"), StudyGrid.teacherBaseChannels)
    }
}

/// `launch/reproduce.sh --quick --only baseline --seeds 1` on a tiny grid (8 training scenes of
/// 48², 4 iterations): the run finishes, results.json, the report and the figure are written; a
/// second invocation keeps the finished run instead of training it again.
final class ReproduceScriptTests: XCTestCase {
    func testQuickBaselineOnATinyGrid() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reproduce-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = StudyGridTests.repo.appendingPathComponent("launch/reproduce.sh")
        var env = ProcessInfo.processInfo.environment
        env["PERCEP_BIN"] = ProcessRunner.percepDist.path
        // --quick writes its report into its own folder (never over docs/), and the command line's
        // SOLVER.MAX_ITER wins over the quick schedule's.
        let study = dir.appendingPathComponent("study")
        let args = [script.path, "--quick", "--only", "baseline", "--seeds", "1", "--headline-seeds", "1", "--out", study.path,
                    "--data-size", "8,4,48", "--notes", dir.appendingPathComponent("none.md").path,
                    "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "INPUT.CROP_SIZE", "[32, 32]",
                    "INPUT.SCALE", "[96, 48]", "TEST.SCALE", "[96, 48]", "LOG_PERIOD", "1"]
        let first = try ProcessRunner.runCombined(URL(fileURLWithPath: "/bin/bash"), args, environment: env, limit: 300)
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.output.contains("run baseline seed 0"), first.output)
        let results = try StudyResults.load(study.appendingPathComponent("reproduction/results.json").path)
        XCTAssertEqual(results.runs.count, 1)
        let run = try XCTUnwrap(results.runs.first)
        XCTAssertEqual([run.row, run.status], ["baseline", "finished"])
        XCTAssertEqual(run.iterations, 4)
        XCTAssertNotNil(run.mIoU)
        // The training process's CPU time is its own: more than nothing, at most its threads × wall.
        let cpu = try XCTUnwrap(run.cpuSeconds, "CPU time recorded")
        XCTAssertGreaterThan(cpu, 0)
        XCTAssertLessThanOrEqual(cpu, Double(ProcessInfo.processInfo.activeProcessorCount) * run.wallSeconds + 1)
        XCTAssertEqual(run.perClassIoU.count, 10, "one IoU per synthetic class")
        let doc = try String(contentsOf: study.appendingPathComponent("reproduction.md"), encoding: .utf8)
        XCTAssertTrue(doc.contains("| CE only | 69.60 |") && doc.contains("reproduction/mIoU.svg"), doc)
        XCTAssertTrue(FileManager.default.fileExists(atPath: study.appendingPathComponent("reproduction/mIoU.svg").path))

        let again = try ProcessRunner.runCombined(URL(fileURLWithPath: "/bin/bash"), args, environment: env, limit: 120)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertFalse(again.output.contains("run baseline seed 0"), "a finished run is kept: \(again.output)")
        XCTAssertEqual(try StudyResults.load(study.appendingPathComponent("reproduction/results.json").path).runs, results.runs)

        // Another recipe in the same folder is refused instead of mixing results.
        let longer = args.map { $0 == "4" ? "6" : $0 }
        let other = try ProcessRunner.runCombined(URL(fileURLWithPath: "/bin/bash"), longer, environment: env, limit: 120)
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.output.contains("was trained with another recipe"), other.output)
        // Bad arguments are refused with the reason.
        for (bad, reason) in [(["--data-size", "8,0,48"], "three positive integers"), (["--only", "vgg17"], "unknown row 'vgg17'"),
                              (["--quick", "--only", "vgg19"], "names no row of the quick grid")] {
            let r = try ProcessRunner.runCombined(ProcessRunner.percepDist, ["study", "run", "--out", dir.appendingPathComponent("bad").path] + bad,
                                                  environment: env, limit: 30)
            XCTAssertNotEqual(r.status, 0, "\(bad)")
            XCTAssertTrue(r.output.contains(reason), "\(bad): \(r.output)")
        }
        let empty = try ProcessRunner.runCombined(ProcessRunner.percepDist, ["study", "report", "--from-runs", dir.appendingPathComponent("nothing").path,
                                                                             "--doc", dir.appendingPathComponent("x.md").path], environment: env, limit: 30)
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.output.contains("not a study's --out"), empty.output)
    }

    /// The instance and depth rows on tiny sets (`--quick --tasks instance,depth`, 8 COCO images of
    /// 64², 10 rooms, 4 iterations): CondInst runs on 2 ranks through launch/mpirun-local.sh, each
    /// run's final box/mask AP or abs_rel/δ1 lands in results.json, and the report shows Table 7's
    /// perceptual row paired with its row without the term, with a chart per task.
    func testQuickInstanceAndDepthRowsOnTinySets() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reproduce-tasks-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var env = ProcessInfo.processInfo.environment
        env["PERCEP_BIN"] = ProcessRunner.percepDist.path
        let study = dir.appendingPathComponent("study")
        let args = [StudyGridTests.repo.appendingPathComponent("launch/reproduce.sh").path, "--quick", "--tasks", "instance,depth",
                    "--only", "inst_baseline,depth_wce,depth_wce_percep", "--seeds", "1", "--out", study.path,
                    "--coco-size", "8,4,64", "--depth-images", "10", "--notes", dir.appendingPathComponent("none.md").path,
                    "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2", "LOG_PERIOD", "1"]
        let run = try ProcessRunner.runCombined(URL(fileURLWithPath: "/bin/bash"), args, environment: env, limit: 300)
        XCTAssertEqual(run.status, 0, run.output)
        let results = try StudyResults.load(study.appendingPathComponent("reproduction/results.json").path)
        XCTAssertEqual(results.runs.map(\.row), ["depth_wce", "depth_wce_percep", "inst_baseline"])
        for r in results.runs {
            XCTAssertEqual([r.status, "\(r.iterations)"], ["finished", "4"], r.row)
            XCTAssertNil(r.mIoU, r.row)
            let task = try XCTUnwrap(StudyGrid.row(r.row)).task
            for metric in task.metrics { XCTAssertNotNil(r.value(metric), "\(r.row) \(metric.key)") }
        }
        let log = try String(contentsOf: study.appendingPathComponent("logs/inst_baseline-seed0.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("local rank 1 of 2"), "CondInst on 2 ranks: \(log.prefix(2000))")
        let doc = try String(contentsOf: study.appendingPathComponent("reproduction.md"), encoding: .utf8)
        XCTAssertTrue(doc.contains("| WCE + perceptual | 14.0 |") && doc.contains("(1 pair)"), doc)
        XCTAssertTrue(doc.contains("| CondInst | 36.91 |"), doc)
        for figure in ["depth.svg", "instance.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: study.appendingPathComponent("reproduction/" + figure).path), figure)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: study.appendingPathComponent("reproduction/mIoU.svg").path), "no segmentation runs")
        XCTAssertFalse(doc.contains("mIoU.svg"), "no link to a segmentation chart that was not drawn: \(doc)")
        // Bad arguments are refused with the reason.
        for (bad, reason) in [(["--tasks", "detection"], "--tasks must name tasks of segmentation, instance, depth"),
                              (["--tasks", "depth", "--ablations"], "--ablations adds segmentation rows"),
                              (["--coco-size", "8,4,8"], "the side must be 16…4096"), (["--depth-images", "3"], "--depth-images must be 5…100000")] {
            let r = try ProcessRunner.runCombined(ProcessRunner.percepDist, ["study", "run", "--out", dir.appendingPathComponent("bad").path] + bad,
                                                  environment: env, limit: 30)
            XCTAssertNotEqual(r.status, 0, "\(bad)")
            XCTAssertTrue(r.output.contains(reason), "\(bad): \(r.output)")
        }
    }
}
