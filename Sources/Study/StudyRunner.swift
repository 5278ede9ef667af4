import Foundation

/// Sizes of the synthetic sets a study writes (one per task).
public struct StudyDataSizes: Sendable {
    /// `synth seg`: training and validation scenes, side.
    public var segmentation: (train: Int, val: Int, side: Int)
    /// `synth coco`: training and validation images, side.
    public var instance: (train: Int, val: Int, side: Int)
    /// `synth depth --tiny`: rooms (every 5th a test frame).
    public var depthImages: Int

    /// The sizes the study's configs were made for.
    public init(segmentation: (train: Int, val: Int, side: Int) = (400, 100, 96), instance: (train: Int, val: Int, side: Int) = (400, 50, 128),
                depthImages: Int = 240) {
        self.segmentation = segmentation; self.instance = instance; self.depthImages = depthImages
    }
}

/// Runs a study's grid through the ordinary commands (`percep-dist synth seg|coco|depth`,
/// `train-seg`, `train-inst`, `train-depth`), one training job at a time, so each run is exactly
/// what a user would run by hand (a multi-rank task through launch/mpirun-local.sh). Finished
/// runs (with `study_result.json`) are skipped; interrupted ones resume from their last
/// checkpoint (`--resume`), or start again when they never wrote one.
///
/// Layout under `out`: `data/`, `data-coco/`, `data-depth/` (the synthetic sets), `teacher/`,
/// `runs/<row>/seed<s>/` (each a training OUTPUT_DIR plus `study_result.json`),
/// `logs/<row>-seed<s>.log`.
public struct StudyRunner {
    /// The percep-dist executable to run.
    public let executable: String
    /// The script that launches a multi-rank run on this machine (launch/mpirun-local.sh).
    public let launcher: String
    /// The study's folder.
    public let out: String
    /// configs/study (student.yaml, teacher.yaml, condinst.yaml, depth.yaml).
    public let configDirectory: String
    /// Extra `KEY VALUE` overrides for every training run (tests shrink the recipe with them).
    public let extraOverrides: [String]
    /// Whether runs use their task's `--quick` schedule (`StudyTask.quickIterations`).
    public let quick: Bool
    /// The synthetic sets' sizes.
    public let data: StudyDataSizes
    /// Where progress lines go.
    public let log: (String) -> Void

    /// A runner; see the properties.
    public init(executable: String, launcher: String = "launch/mpirun-local.sh", out: String, configDirectory: String,
                extraOverrides: [String] = [], quick: Bool = false, data: StudyDataSizes = StudyDataSizes(), log: @escaping (String) -> Void) {
        self.executable = executable; self.launcher = launcher; self.out = out; self.configDirectory = configDirectory
        self.extraOverrides = extraOverrides; self.quick = quick; self.data = data; self.log = log
    }

    /// The schedule override of `--quick` for a run of `task`; it goes before the command line's
    /// own overrides, so that theirs win.
    func schedule(_ task: StudyTask) -> [String] { quick ? task.quickSchedule : [] }

    /// The DATASETS.ROOT of a task's runs.
    func dataRoot(_ task: StudyTask) -> String {
        switch task {
        case .segmentation: return out + "/data/ADEChallengeData2016"
        case .instance: return out + "/data-coco"
        case .depth: return out + "/data-depth"
        }
    }
    var teacherDirectory: String { out + "/teacher" }
    /// The run folder of `row` and `seed`.
    public func runDirectory(_ row: String, seed: Int) -> String { "\(out)/runs/\(row)/seed\(seed)" }

    /// Runs `percep-dist args`, output to `logFile`; returns the exit status, the seconds it took
    /// and the CPU seconds (user + system, all threads) it used.
    /// With `ranks` above one it runs them through `launcher` (CPU time then counts every rank).
    func spawn(_ args: [String], logFile: String, ranks: Int = 1) throws -> (status: Int32, seconds: Double, cpuSeconds: Double) {
        try FileManager.default.createDirectory(atPath: (logFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: logFile, contents: nil), let handle = FileHandle(forWritingAtPath: logFile) else {
            throw StudyError(logFile, "cannot create the log file")
        }
        defer { try? handle.close() }
        let process = Process()
        if ranks > 1 {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [launcher, "\(ranks)"] + args
            process.environment = ProcessInfo.processInfo.environment.merging(["PERCEP_BIN": executable]) { _, new in new }
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = args
        }
        process.standardOutput = handle
        process.standardError = handle
        let began = Date(), cpuBefore = Self.childrenCPUSeconds()
        do { try process.run() } catch { throw StudyError(executable, "cannot start: \(error.localizedDescription)") }
        process.waitUntilExit()
        return (process.terminationStatus, Date().timeIntervalSince(began), Self.childrenCPUSeconds() - cpuBefore)
    }

    /// User + system CPU seconds of this process's children that have exited (one run at a time,
    /// so the difference around a run is that run's).
    static func childrenCPUSeconds() -> Double {
        var usage = rusage()
        guard getrusage(RUSAGE_CHILDREN.rawValue, &usage) == 0 else { return 0 }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// A stable fingerprint (FNV-1a, 64 bits, hex) of a config file's text and the overrides a run
    /// gets: a finished run or teacher is reused only when it matches, so a folder once used with
    /// other settings (a shortened test recipe) cannot leak into a study. It does not cover the
    /// files the config inherits (`_BASE_`) or the synthetic sets' sizes (a set once written is
    /// kept): after changing those, study in another `--out`.
    func recipe(config: String, overrides: [String], task: StudyTask = .segmentation) throws -> String {
        guard let text = FileManager.default.contents(atPath: config) else { throw StudyError(config, "cannot read") }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text + Data(("\u{0}" + (overrides + schedule(task) + extraOverrides).joined(separator: "\u{0}")).utf8) {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(format: "%016llx", hash)
    }

    /// The last lines of a log, for error messages.
    func tail(_ logFile: String, lines: Int = 5) -> String {
        let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Writes the synthetic set `task` trains on unless it is there.
    public func prepareData(for task: StudyTask) throws {
        let root = dataRoot(task), logFile = "\(out)/logs/data-\(task.rawValue).log"
        // The file each set's writer makes last: its presence means the set is whole.
        let written: String, steps: [[String]], what: String
        switch task {
        case .segmentation:
            let d = data.segmentation
            written = root + "/classes.txt"; what = "\(d.train) training, \(d.val) validation scenes of \(d.side)²"
            steps = [["synth", "seg", "--out", out + "/data", "--train", "\(d.train)", "--val", "\(d.val)", "--size", "\(d.side),\(d.side)", "--seed", "0"]]
        case .instance:
            let d = data.instance
            written = root + "/annotations/instances_val.json"; what = "\(d.train) training, \(d.val) validation images of \(d.side)²"
            steps = [("train", d.train, 0), ("val", d.val, 1)].map { split, images, seed in
                ["synth", "coco", "--out", root, "--images", "\(images)", "--seed", "\(seed)", "--size", "\(d.side),\(d.side)", "--split", split]
            }
        case .depth:
            written = root + "/splits.mat"; what = "\(data.depthImages) rooms of 120 × 160"
            steps = [["synth", "depth", "--out", root, "--seed", "0", "--tiny", "--images", "\(data.depthImages)"]]
        }
        if FileManager.default.fileExists(atPath: written) { return }
        log("writing the synthetic \(task.rawValue) set (\(what)) to \(root)")
        for step in steps {
            let r = try spawn(step, logFile: logFile)
            guard r.status == 0 else { throw StudyError(logFile, "\(step[0]) \(step[1]) failed (status \(r.status)):\n\(tail(logFile))") }
        }
    }

    /// Trains the teacher unless its final checkpoint exists; returns its model_best.h5.
    public func prepareTeacher() throws -> String {
        let best = teacherDirectory + "/model_best.h5", marker = teacherDirectory + "/study_done"
        let fingerprint = try recipe(config: configDirectory + "/teacher.yaml", overrides: ["SEED", "0"])
        if let done = FileManager.default.contents(atPath: marker) {
            let stored = String(decoding: done, as: UTF8.self)
            guard stored.isEmpty || stored == fingerprint else {
                throw StudyError(marker, "the teacher was trained with another recipe (\(stored), now \(fingerprint)); use another --out or delete \(teacherDirectory)")
            }
            return best
        }
        log("training the teacher (\(configDirectory)/teacher.yaml)")
        let r = try train(.segmentation, config: configDirectory + "/teacher.yaml", directory: teacherDirectory, overrides: ["SEED", "0"],
                          logFile: out + "/logs/teacher.log")
        guard r.status == 0 else { throw StudyError(out + "/logs/teacher.log", "the teacher failed (status \(r.status)):\n\(tail(out + "/logs/teacher.log"))") }
        guard FileManager.default.createFile(atPath: marker, contents: Data(fingerprint.utf8)) else { throw StudyError(marker, "cannot write") }
        return best
    }

    /// One training run of `task` into `directory`: resumed when it holds a checkpoint, started
    /// afresh otherwise.
    func train(_ task: StudyTask, config: String, directory: String, overrides: [String], logFile: String) throws -> (status: Int32, seconds: Double, cpuSeconds: Double) {
        let fm = FileManager.default
        var resume: [String] = []
        if fm.fileExists(atPath: directory + "/last_checkpoint") {
            resume = ["--resume"]
        } else if fm.fileExists(atPath: directory) {
            try fm.removeItem(atPath: directory)   // interrupted before its first checkpoint: nothing to keep
        }
        let args = [task.command, "--config", config] + resume + ["DATASETS.ROOT", dataRoot(task), "OUTPUT_DIR", directory]
            + overrides + schedule(task) + extraOverrides
        return try spawn(args, logFile: logFile, ranks: task.ranks)
    }

    /// The result of `row` at `seed`, training it first unless it finished before.
    public func run(_ row: StudyRow, seed: Int, teacherWeights: String?) throws -> StudyRunResult {
        let directory = runDirectory(row.id, seed: seed), resultFile = directory + "/study_result.json"
        var overrides = row.overrides + ["SEED", "\(seed)", "LOSS.PERCEPTUAL.SEED", "\(seed)"]
        if row.usesTeacher {
            guard let teacherWeights else { throw StudyError(row.id, "needs the teacher, which was not trained") }
            overrides += StudyGrid.teacherOverrides(weights: teacherWeights)
        }
        let config = configDirectory + "/" + row.task.config
        let fingerprint = try recipe(config: config, overrides: overrides, task: row.task)
        if let data = FileManager.default.contents(atPath: resultFile), let done = try? JSONDecoder().decode(StudyRunResult.self, from: data) {
            guard done.recipe == nil || done.recipe == fingerprint else {
                throw StudyError(resultFile, "was trained with another recipe (\(done.recipe!), now \(fingerprint)); use another --out or delete \(directory)")
            }
            return done
        }
        let logFile = "\(out)/logs/\(row.id)-seed\(seed).log"
        log("run \(row.id) seed \(seed)")
        let elapsedFile = directory + "/study_elapsed", cpuFile = directory + "/study_cpu"
        // Time already spent counts only when the run resumes; a restart discards it.
        let resumes = FileManager.default.fileExists(atPath: directory + "/last_checkpoint")
        func spent(_ file: String) -> Double? { resumes ? (try? String(contentsOfFile: file, encoding: .utf8)).flatMap { Double($0) } : 0 }
        let before = spent(elapsedFile) ?? 0
        // A part run by a study that did not count CPU time leaves the total unknown.
        let cpuBefore = FileManager.default.fileExists(atPath: elapsedFile) && resumes ? spent(cpuFile) : 0
        let r = try train(row.task, config: config, directory: directory, overrides: overrides, logFile: logFile)
        let seconds = before + r.seconds, cpuSeconds = cpuBefore.map { $0 + r.cpuSeconds }
        try? "\(seconds)".write(toFile: elapsedFile, atomically: true, encoding: .utf8)
        if let cpuSeconds { try? "\(cpuSeconds)".write(toFile: cpuFile, atomically: true, encoding: .utf8) }
        let result: StudyRunResult
        if r.status == 0 {
            let e = try finalEvaluation(metricsFile: directory + "/metrics.jsonl", primary: row.task.metrics[0].key)
            // Segmentation keeps its numbers in the fields results.json always had.
            let segmentation = row.task == .segmentation
            result = StudyRunResult(row: row.id, seed: seed, status: "finished", mIoU: segmentation ? e.metrics["mIoU"] : nil,
                                    aAcc: segmentation ? e.metrics["aAcc"] : nil, metrics: segmentation ? nil : e.metrics,
                                    perClassIoU: e.perClass, wallSeconds: seconds, cpuSeconds: cpuSeconds, iterations: e.iteration + 1,
                                    recipe: fingerprint)
        } else if let line = tail(logFile, lines: 40).split(separator: "\n").last(where: {
            $0.contains("non-finite") && $0.contains("the last good checkpoint is kept")
        }) {
            // The trainer's stop on a non-finite loss or weights (the paper's "does not converge");
            // any other failure (a kill, a bad file) is an error and the run resumes next time.
            let iteration = line.range(of: "iteration ").flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) } ?? 0
            result = StudyRunResult(row: row.id, seed: seed, status: "diverged", mIoU: nil, aAcc: nil, perClassIoU: [:],
                                    wallSeconds: seconds, cpuSeconds: cpuSeconds, iterations: iteration, message: String(line.prefix(240)).trimmingCharacters(in: .whitespaces),
                                    recipe: fingerprint)
        } else {
            throw StudyError(logFile, "\(row.task.command) failed (status \(r.status)); run the study again to resume it:\n\(tail(logFile))")
        }
        try studyJSONEncoder().encode(result).write(to: URL(fileURLWithPath: resultFile))
        let primary = row.task.metrics[0]
        log(String(format: "  %@ seed %d: %@ in %.0f s", row.id, seed,
                   result.value(primary).map { String(format: "%@ %.2f", primary.name, primary.scale * $0) } ?? result.status, seconds))
        return result
    }
}
