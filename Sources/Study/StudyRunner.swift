import Foundation

/// Runs a study's grid through the ordinary commands (`percep-dist synth seg`, `train-seg`), one
/// training process at a time, so each run is exactly what a user would run by hand. Finished
/// runs (with `study_result.json`) are skipped; interrupted ones resume from their last
/// checkpoint (`--resume`), or start again when they never wrote one.
///
/// Layout under `out`: `data/` (the synthetic set), `teacher/`, `runs/<row>/seed<s>/` (each a
/// train-seg OUTPUT_DIR plus `study_result.json`), `logs/<row>-seed<s>.log`.
public struct StudyRunner {
    /// The percep-dist executable to run.
    public let executable: String
    /// The study's folder.
    public let out: String
    /// configs/study (student.yaml, teacher.yaml).
    public let configDirectory: String
    /// Extra `KEY VALUE` overrides for every training run (tests shrink the recipe with them).
    public let extraOverrides: [String]
    /// `synth seg` sizes: training and validation images, side.
    public let data: (train: Int, val: Int, side: Int)
    /// Where progress lines go.
    public let log: (String) -> Void

    /// A runner; see the properties.
    public init(executable: String, out: String, configDirectory: String, extraOverrides: [String] = [],
                data: (train: Int, val: Int, side: Int) = (400, 100, 96), log: @escaping (String) -> Void) {
        self.executable = executable; self.out = out; self.configDirectory = configDirectory
        self.extraOverrides = extraOverrides; self.data = data; self.log = log
    }

    var dataRoot: String { out + "/data/ADEChallengeData2016" }
    var teacherDirectory: String { out + "/teacher" }
    /// The run folder of `row` and `seed`.
    public func runDirectory(_ row: String, seed: Int) -> String { "\(out)/runs/\(row)/seed\(seed)" }

    /// Runs `percep-dist args`, output to `logFile`; returns the exit status, the seconds it took
    /// and the CPU seconds (user + system, all threads) it used.
    func spawn(_ args: [String], logFile: String) throws -> (status: Int32, seconds: Double, cpuSeconds: Double) {
        try FileManager.default.createDirectory(atPath: (logFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: logFile, contents: nil), let handle = FileHandle(forWritingAtPath: logFile) else {
            throw StudyError(logFile, "cannot create the log file")
        }
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
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
    /// other settings (a shortened test recipe) cannot leak into a study.
    func recipe(config: String, overrides: [String]) throws -> String {
        guard let text = FileManager.default.contents(atPath: config) else { throw StudyError(config, "cannot read") }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text + Data(("\u{0}" + (overrides + extraOverrides).joined(separator: "\u{0}")).utf8) {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(format: "%016llx", hash)
    }

    /// The last lines of a log, for error messages.
    func tail(_ logFile: String, lines: Int = 5) -> String {
        let text = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Writes the synthetic set unless it is there.
    public func prepareData() throws {
        if FileManager.default.fileExists(atPath: dataRoot + "/classes.txt") { return }
        log("writing the synthetic set (\(data.train) training, \(data.val) validation scenes of \(data.side)²) to \(out)/data")
        let logFile = out + "/logs/data.log"
        let r = try spawn(["synth", "seg", "--out", out + "/data", "--train", "\(data.train)", "--val", "\(data.val)",
                           "--size", "\(data.side),\(data.side)", "--seed", "0"], logFile: logFile)
        guard r.status == 0 else { throw StudyError(logFile, "synth seg failed (status \(r.status)):\n\(tail(logFile))") }
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
        let r = try train(config: configDirectory + "/teacher.yaml", directory: teacherDirectory, overrides: ["SEED", "0"],
                          logFile: out + "/logs/teacher.log")
        guard r.status == 0 else { throw StudyError(out + "/logs/teacher.log", "the teacher failed (status \(r.status)):\n\(tail(out + "/logs/teacher.log"))") }
        guard FileManager.default.createFile(atPath: marker, contents: Data(fingerprint.utf8)) else { throw StudyError(marker, "cannot write") }
        return best
    }

    /// One train-seg run into `directory`: resumed when it holds a checkpoint, started afresh otherwise.
    func train(config: String, directory: String, overrides: [String], logFile: String) throws -> (status: Int32, seconds: Double, cpuSeconds: Double) {
        let fm = FileManager.default
        var resume: [String] = []
        if fm.fileExists(atPath: directory + "/last_checkpoint") {
            resume = ["--resume"]
        } else if fm.fileExists(atPath: directory) {
            try fm.removeItem(atPath: directory)   // interrupted before its first checkpoint: nothing to keep
        }
        let args = ["train-seg", "--config", config] + resume + ["DATASETS.ROOT", dataRoot, "OUTPUT_DIR", directory] + overrides + extraOverrides
        return try spawn(args, logFile: logFile)
    }

    /// The result of `row` at `seed`, training it first unless it finished before.
    public func run(_ row: StudyRow, seed: Int, teacherWeights: String?) throws -> StudyRunResult {
        let directory = runDirectory(row.id, seed: seed), resultFile = directory + "/study_result.json"
        var overrides = row.overrides + ["SEED", "\(seed)", "LOSS.PERCEPTUAL.SEED", "\(seed)"]
        if row.usesTeacher {
            guard let teacherWeights else { throw StudyError(row.id, "needs the teacher, which was not trained") }
            overrides += StudyGrid.teacherOverrides(weights: teacherWeights)
        }
        let fingerprint = try recipe(config: configDirectory + "/student.yaml", overrides: overrides)
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
        let r = try train(config: configDirectory + "/student.yaml", directory: directory, overrides: overrides, logFile: logFile)
        let seconds = before + r.seconds, cpuSeconds = cpuBefore.map { $0 + r.cpuSeconds }
        try? "\(seconds)".write(toFile: elapsedFile, atomically: true, encoding: .utf8)
        if let cpuSeconds { try? "\(cpuSeconds)".write(toFile: cpuFile, atomically: true, encoding: .utf8) }
        let result: StudyRunResult
        if r.status == 0 {
            let e = try finalEvaluation(metricsFile: directory + "/metrics.jsonl")
            result = StudyRunResult(row: row.id, seed: seed, status: "finished", mIoU: e.mIoU, aAcc: e.aAcc, perClassIoU: e.perClass,
                                    wallSeconds: seconds, cpuSeconds: cpuSeconds, iterations: e.iteration + 1, recipe: fingerprint)
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
            throw StudyError(logFile, "train-seg failed (status \(r.status)); run the study again to resume it:\n\(tail(logFile))")
        }
        try studyJSONEncoder().encode(result).write(to: URL(fileURLWithPath: resultFile))
        log(String(format: "  %@ seed %d: %@ in %.0f s", row.id, seed, result.mIoU.map { String(format: "mIoU %.2f", 100 * $0) } ?? result.status, seconds))
        return result
    }
}
