import ArgumentParser
import BuildInfo
import Distributed
import Foundation
import Study

/// `percep-dist study`: the reproduction study of the paper's claims at CPU scale: segmentation
/// (Tables 1–4), instance segmentation (Table 5) and depth (Table 7) (launch/reproduce.sh runs
/// `study run`).
struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Run the reproduction study's grid (baseline, perceptual rows, the paper's ablations, instance and depth rows) over seeds and report it.",
        subcommands: [StudyRun.self, StudyReportCommand.self])
}

/// Where a study writes its report; shared by `study run` and `study report`. Unset paths are
/// the committed study's (docs/), or the quick study's folder for `study run --quick`.
struct StudyReportOptions: ParsableArguments {
    @Option(help: "The Markdown report (default: docs/reproduction.md; <out>/reproduction.md with --quick).") var doc: String?
    @Option(help: "Every run's result as JSON, from which the report can be regenerated (default: docs/reproduction/results.json; under <out> with --quick).")
    var results: String?
    @Option(help: "The segmentation bar chart, SVG (default: docs/reproduction/mIoU.svg; under <out> with --quick); the instance and depth charts go beside it (instance.svg, depth.svg).")
    var figure: String?
    @Option(help: "Hand-written interpretation included in the report, if the file exists.") var notes = "docs/reproduction/notes.md"

    /// The report's paths, with unset ones under `folder` (`folder/reproduction.md`,
    /// `folder/reproduction/…`).
    func paths(under folder: String) -> (doc: String, results: String, figure: String) {
        (doc ?? folder + "/reproduction.md", results ?? folder + "/reproduction/results.json", figure ?? folder + "/reproduction/mIoU.svg")
    }

    /// Writes the report, its figures (one per task with runs) and, when `saveResults`, results.json.
    func write(_ results: StudyResults, saveResults: Bool, under folder: String = "docs") throws {
        let (doc, resultsFile, figure) = paths(under: folder)
        for path in [doc, resultsFile, figure] {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
        }
        if saveResults { try results.save(resultsFile) }
        let docFolder = (doc as NSString).deletingLastPathComponent
        let relativeFigure = !docFolder.isEmpty && figure.hasPrefix(docFolder + "/") ? String(figure.dropFirst(docFolder.count + 1)) : figure
        let notesText = (try? String(contentsOfFile: notes, encoding: .utf8)) ?? ""
        let report = StudyReport(results: results, notes: notesText, figure: relativeFigure)
        for (path, chart) in report.charts(beside: figure) {
            guard FileManager.default.createFile(atPath: path, contents: Data(chart.svg().utf8)) else { throw ValidationError("cannot write \(path)") }
            print(path)
        }
        guard FileManager.default.createFile(atPath: doc, contents: Data(report.markdown().utf8)) else { throw ValidationError("cannot write \(doc)") }
        print(doc)
    }
}

/// `percep-dist study run`: trains what is missing of the grid, then writes the report.
struct StudyRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Train the study's missing runs (finished ones are kept, interrupted ones resume), then write the report.")

    @Flag(help: """
        A first look in about 15 minutes on two cores: the target rows (baseline, + perceptual vs \
        teacher, vs one-hot GT), 2 seeds each, teacher and students trained for a quarter of the \
        study's schedule (\(StudyTask.segmentation.quickIterations) iterations: undertrained), in \
        output/study-quick with the report there. With --tasks, a quarter of each task's schedule.
        """) var quick = false
    @Flag(help: """
        Also the ablation rows (Tables 1–4, the level weights): about 8–10 more hours on two cores \
        at the study's schedule. Without it the study is the target rows, about 2 hours.
        """) var ablations = false
    @Option(help: """
        Comma-separated tasks whose rows run: segmentation (Tables 1–4, the default), instance \
        (Table 5: CondInst ± perceptual, 2 ranks, about 10–14 minutes a run), depth (Table 7: WCE \
        and WCE + VNL, each ± perceptual, about 8 minutes a run).
        """) var tasks = "segmentation"
    @Option(help: "Comma-separated rows to run, of any task (default: the target rows of --tasks, every row with --ablations; any row by name, but only target rows with --quick unless --ablations).") var only: String?
    @Option(help: "Seeds per row that is not a headline row: the ablations, the instance and depth rows (default 2).") var seeds: Int?
    @Option(help: "Seeds for the headline rows, the baseline and + perceptual vs teacher (default \(StudyGrid.headlineSeeds); 2 with --quick); at least --seeds.")
    var headlineSeeds: Int?
    @Option(name: .customLong("out"), help: "The study's folder: data, teacher, runs, logs (default: output/study; output/study-quick with --quick).")
    var outFolder: String?
    @Option(help: "Folder with the tasks' configs (student.yaml, teacher.yaml, condinst.yaml, depth.yaml).") var configDir = "configs/study"
    @Option(help: "Synthetic segmentation set: training images, validation images, side.") var dataSize = "400,100,96"
    @Option(help: "Synthetic COCO set of the instance rows: training images, validation images, side.") var cocoSize = "400,50,128"
    @Option(help: "Synthetic rooms of the depth rows (every 5th a test frame).") var depthImages = 240
    @OptionGroup var report: StudyReportOptions
    @Argument(help: "KEY VALUE overrides for every training run (e.g. SOLVER.MAX_ITER 10).") var overrides: [String] = []

    func validate() throws {
        guard (seeds ?? 1) > 0, (headlineSeeds ?? 1) > 0 else { throw ValidationError("--seeds and --headline-seeds must be positive") }
        guard overrides.count % 2 == 0 else { throw ValidationError("overrides come in KEY VALUE pairs, got \(overrides.count) words") }
        for (option, value) in [("--data-size", dataSize), ("--coco-size", cocoSize)] where Self.sizes(value) == nil {
            throw ValidationError("\(option) must be TRAIN,VAL,SIDE, three positive integers, got '\(value)'")
        }
        for (option, value) in [("--data-size", dataSize), ("--coco-size", cocoSize)] where !(16...4096).contains(Self.sizes(value)!.side) {
            throw ValidationError("\(option): the side must be 16…4096 pixels, got \(Self.sizes(value)!.side)")
        }
        guard (5...100_000).contains(depthImages) else {
            throw ValidationError("--depth-images must be 5…100000 (every 5th room is a test frame), got \(depthImages)")
        }
        guard selectedTasks != nil else {
            throw ValidationError("--tasks must name tasks of \(StudyTask.allCases.map(\.rawValue).joined(separator: ", ")), got '\(tasks)'")
        }
        if let only, only.split(separator: ",").isEmpty { throw ValidationError("--only needs at least one row name") }
        if ablations, only == nil, selectedTasks?.contains(.segmentation) == false {
            throw ValidationError("--ablations adds segmentation rows (Tables 1–4), but --tasks \(tasks) has no segmentation")
        }
    }

    /// (training images, validation images, side) of a `TRAIN,VAL,SIDE` option, or nil unless three positive integers.
    static func sizes(_ text: String) -> (train: Int, val: Int, side: Int)? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return (parts[0]!, parts[1]!, parts[2]!)
    }

    /// The tasks of `--tasks`, or nil when one is unknown or none is named.
    var selectedTasks: Set<StudyTask>? {
        let names = tasks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let found = names.compactMap(StudyTask.init(rawValue:))
        return found.isEmpty || found.count != names.count ? nil : Set(found)
    }

    func run() throws {
        let rows: [StudyRow]
        do {
            rows = try StudyGrid.select(quick: quick, ablations: ablations, only: only?.split(separator: ",").map(String.init) ?? [], tasks: selectedTasks!)
        } catch {
            throw ValidationError("\(error)")
        }
        guard !rows.isEmpty else {
            throw ValidationError("--only \(only ?? "") names no row of the \(quick ? "quick " : "")grid (its ablation rows run with --ablations)")
        }
        let needed = Set(rows.map(\.task.config) + (rows.contains(where: \.usesTeacher) ? ["teacher.yaml"] : []))
        for file in needed.sorted() where !FileManager.default.fileExists(atPath: configDir + "/" + file) {
            throw ValidationError("\(configDir)/\(file) does not exist (run from the repository root or pass --config-dir)")
        }
        let launcher = "launch/mpirun-local.sh"
        if rows.contains(where: { $0.task.ranks > 1 }), !FileManager.default.fileExists(atPath: launcher) {
            throw ValidationError("\(launcher) does not exist: the instance rows run on 2 ranks through it (run from the repository root)")
        }
        let out = outFolder ?? (quick ? "output/study-quick" : "output/study")
        let data = StudyDataSizes(segmentation: Self.sizes(dataSize)!, instance: Self.sizes(cocoSize)!, depthImages: depthImages)
        let runner = StudyRunner(executable: try percepDistExecutable(), launcher: launcher, out: out, configDirectory: configDir,
                                 extraOverrides: overrides, quick: quick, data: data, log: { Log.info($0) })
        for task in StudyTask.allCases where rows.contains(where: { $0.task == task }) { try runner.prepareData(for: task) }
        let teacher = rows.contains(where: \.usesTeacher) ? try runner.prepareTeacher() : nil
        let seeds = self.seeds ?? 2, headlineSeeds = self.headlineSeeds ?? (quick ? 2 : StudyGrid.headlineSeeds)
        for row in rows {
            let count = row.headline ? max(seeds, headlineSeeds) : seeds
            for seed in 0..<count { _ = try runner.run(row, seed: seed, teacherWeights: teacher) }
        }
        var results = try StudyResults(environment: studyEnvironment(), runs: collectRuns(in: out))
        results.environment["command"] = (["launch/reproduce.sh"] + CommandLine.arguments.dropFirst(3)).joined(separator: " ")
        try report.write(results, saveResults: true, under: quick ? out : "docs")
    }
}

/// `percep-dist study report`: the report again from results.json (or from a study folder's runs).
struct StudyReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write docs/reproduction.md and its figures from results.json, or from the runs of a study folder (--from-runs).")

    @Option(help: "Collect the runs of this study folder (writing results.json) instead of reading results.json.") var fromRuns: String?
    @OptionGroup var report: StudyReportOptions

    func run() throws {
        if let fromRuns {
            var environment = studyEnvironment()
            environment["command"] = "the finished runs in \(fromRuns), collected by percep-dist study report --from-runs"
            try report.write(StudyResults(environment: environment, runs: collectRuns(in: fromRuns)), saveResults: true)
        } else {
            let results: StudyResults
            do { results = try StudyResults.load(report.paths(under: "docs").results) } catch { throw ValidationError("\(error)") }
            try report.write(results, saveResults: false)
        }
    }
}

/// Every `study_result.json` under `out/runs`; an error when there is none (a wrong folder must
/// not overwrite a report with an empty study).
func collectRuns(in out: String) throws -> [StudyRunResult] {
    let root = out + "/runs"
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isFolder), isFolder.boolValue,
          let enumerator = FileManager.default.enumerator(atPath: root) else { throw ValidationError("\(root): no such folder (not a study's --out)") }
    var runs: [StudyRunResult] = []
    for case let path as String in enumerator where path.hasSuffix("/study_result.json") {
        let file = root + "/" + path
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        do { runs.append(try JSONDecoder().decode(StudyRunResult.self, from: data)) } catch {
            throw ValidationError("\(file): not a study result: \(error)")
        }
    }
    guard !runs.isEmpty else { throw ValidationError("\(root): no finished run (no study_result.json)") }
    return runs.sorted { ($0.row, $0.seed) < ($1.row, $1.seed) }
}

/// The machine and build the study ran on, for the report's header.
func studyEnvironment() -> [String: String] {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }.map { String($0.drop { $0 != ":" }.dropFirst()).trimmingCharacters(in: .whitespaces) } ?? "unknown"
    let avx512 = cpuinfo.contains(" avx512f") ? "AVX-512" : "AVX2 (no AVX-512)"
    let formatter = ISO8601DateFormatter()
    return ["machine": "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(avx512)",
            "report written": formatter.string(from: Date()), "percep-dist": BuildInfo.description]
}

/// This process's own executable, to run the study's commands with.
func percepDistExecutable() throws -> String {
    if let path = Bundle.main.executablePath, FileManager.default.isExecutableFile(atPath: path) { return path }
    let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    guard FileManager.default.isExecutableFile(atPath: link) else { throw ValidationError("cannot find the percep-dist executable to run the study with") }
    return link
}
