import Foundation

/// What one finished run left: its final evaluation, or why it has none.
public struct StudyRunResult: Codable, Sendable, Equatable {
    /// The grid row (`StudyRow.id`).
    public var row: String
    /// `SEED` of the run (and of its loss network).
    public var seed: Int
    /// "finished", or "diverged" (the trainer stopped on a non-finite loss or weights).
    public var status: String
    /// Final mIoU (0…1) at the last iteration of a segmentation run; nil when the run diverged
    /// or is of another task.
    public var mIoU: Double?
    /// Final aAcc (0…1) of a segmentation run; nil when the run diverged or is of another task.
    public var aAcc: Double?
    /// Every number of the final evaluation of an instance or depth run (`segm/AP`, `abs_rel`, …:
    /// the names metrics.jsonl gives after `eval/`); nil for segmentation runs, which keep theirs in
    /// `mIoU`, `aAcc` and `perClassIoU` as results.json always had them.
    public var metrics: [String: Double]?
    /// Final IoU per class (0…1; nil for a class absent from prediction and labels).
    public var perClassIoU: [String: Double?]
    /// Seconds the training process ran: every invocation that ended (a resumed run adds its
    /// parts; an invocation killed with the study itself is not counted).
    public var wallSeconds: Double
    /// CPU seconds (user + system, every thread) of the same invocations. Unlike the wall time it
    /// does not grow while the run is stopped or waits for cores another program holds, so it
    /// compares runs that shared the machine. Nil in results written before it was recorded, or
    /// when part of the run was.
    public var cpuSeconds: Double?
    /// Iterations trained.
    public var iterations: Int
    /// The trainer's last error line for a diverged run.
    public var message: String?
    /// Fingerprint of what the run was trained with (`StudyRunner.recipe`); nil in results
    /// written before it existed.
    public var recipe: String?

    /// A result; see the properties.
    public init(row: String, seed: Int, status: String, mIoU: Double?, aAcc: Double?, metrics: [String: Double]? = nil,
                perClassIoU: [String: Double?], wallSeconds: Double, cpuSeconds: Double? = nil, iterations: Int,
                message: String? = nil, recipe: String? = nil) {
        self.row = row; self.seed = seed; self.status = status; self.mIoU = mIoU; self.aAcc = aAcc; self.metrics = metrics
        self.perClassIoU = perClassIoU; self.wallSeconds = wallSeconds; self.cpuSeconds = cpuSeconds
        self.iterations = iterations; self.message = message
        self.recipe = recipe
    }

    /// Whether the run trained to its end (and has its final evaluation).
    public var finished: Bool { status == "finished" }

    /// The final value of `metric`, nil when the run diverged or its evaluation has no such number.
    public func value(_ metric: StudyMetric) -> Double? {
        guard finished else { return nil }
        switch metric.key {
        case StudyMetric.mIoU.key where metrics == nil: return mIoU
        case StudyMetric.aAcc.key where metrics == nil: return aAcc
        default: return metrics?[metric.key]
        }
    }
}

/// Why a run's files could not be read.
public struct StudyError: Error, CustomStringConvertible {
    /// The file and what is wrong with it.
    public let description: String
    /// An error naming `path` and the problem.
    public init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
}

/// The last evaluation of a run, as its metrics.jsonl records it.
public struct FinalEvaluation: Equatable {
    /// The iteration it was made at (0-based, as the trainer writes it).
    public var iteration: Int
    /// Its numbers by name without the `eval/` prefix (`mIoU`, `segm/AP`, `abs_rel`); a null
    /// (a metric without data, such as AP of an absent size) is left out.
    public var metrics: [String: Double]
    /// Per-class IoU of a segmentation evaluation (`eval/IoU/<class>`; nil for a class absent
    /// from prediction and labels).
    public var perClass: [String: Double?]

    /// An evaluation; see the properties.
    public init(iteration: Int, metrics: [String: Double], perClass: [String: Double?]) {
        self.iteration = iteration; self.metrics = metrics; self.perClass = perClass
    }
}

/// The final evaluation in a run's metrics.jsonl: the last record with `eval/<primary>` (the
/// task's first metric), which must be a number. Throws, naming the file, when it is missing or
/// holds no such evaluation.
public func finalEvaluation(metricsFile path: String, primary: String = StudyMetric.mIoU.key) throws -> FinalEvaluation {
    guard let data = FileManager.default.contents(atPath: path) else { throw StudyError(path, "cannot read") }
    var last: [String: Any]?
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.isEmpty {
        guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw StudyError(path, "a line is not a JSON object: \(line.prefix(80))")
        }
        if record["eval/" + primary] != nil { last = record }
    }
    guard let record = last, let iteration = record["iteration"] as? Int else { throw StudyError(path, "no evaluation record (eval/\(primary))") }
    guard (record["eval/" + primary] as? Double) != nil else { throw StudyError(path, "eval/\(primary) is not a number (null: nothing was evaluated)") }
    var result = FinalEvaluation(iteration: iteration, metrics: [:], perClass: [:])
    for (key, value) in record where key.hasPrefix("eval/") {
        let name = String(key.dropFirst("eval/".count))
        if name.hasPrefix("IoU/") { result.perClass[String(name.dropFirst("IoU/".count))] = value as? Double }
        else if let number = value as? Double { result.metrics[name] = number }
    }
    return result
}

/// Every result of a study, as written to results.json (sorted by row order, then seed).
public struct StudyResults: Codable, Sendable {
    /// Where and when the runs were made, and with what (free text lines for the report).
    public var environment: [String: String]
    /// The runs.
    public var runs: [StudyRunResult]

    /// Results with `environment` facts.
    public init(environment: [String: String], runs: [StudyRunResult]) {
        self.environment = environment
        self.runs = runs
    }

    /// Reads results.json.
    public static func load(_ path: String) throws -> StudyResults {
        guard let data = FileManager.default.contents(atPath: path) else { throw StudyError(path, "cannot read") }
        do { return try JSONDecoder().decode(StudyResults.self, from: data) } catch {
            throw StudyError(path, "not a study results file: \(error)")
        }
    }

    /// Writes results.json (pretty, keys sorted, so diffs between studies stay readable).
    public func save(_ path: String) throws {
        try studyJSONEncoder().encode(self).write(to: URL(fileURLWithPath: path))
    }
}

/// The encoder of the study's JSON files: pretty, keys sorted and slashes plain, so diffs
/// between studies stay readable.
func studyJSONEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return encoder
}
