import Foundation

/// What one finished run left: its final evaluation, or why it has none.
public struct StudyRunResult: Codable, Sendable, Equatable {
    /// The grid row (`StudyRow.id`).
    public var row: String
    /// `SEED` of the run (and of its loss network).
    public var seed: Int
    /// "finished", or "diverged" (the trainer stopped on a non-finite loss or weights).
    public var status: String
    /// Final mIoU (0…1) at the last iteration; nil when the run diverged.
    public var mIoU: Double?
    /// Final aAcc (0…1); nil when the run diverged.
    public var aAcc: Double?
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
    public init(row: String, seed: Int, status: String, mIoU: Double?, aAcc: Double?, perClassIoU: [String: Double?],
                wallSeconds: Double, cpuSeconds: Double? = nil, iterations: Int, message: String? = nil, recipe: String? = nil) {
        self.row = row; self.seed = seed; self.status = status; self.mIoU = mIoU; self.aAcc = aAcc
        self.perClassIoU = perClassIoU; self.wallSeconds = wallSeconds; self.cpuSeconds = cpuSeconds
        self.iterations = iterations; self.message = message
        self.recipe = recipe
    }
}

/// Why a run's files could not be read.
public struct StudyError: Error, CustomStringConvertible {
    /// The file and what is wrong with it.
    public let description: String
    /// An error naming `path` and the problem.
    public init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
}

/// The final evaluation in a run's metrics.jsonl: the last record with `eval/mIoU`, its
/// iteration (0-based, as the trainer writes it), aAcc and the per-class details
/// (`eval/IoU/<class>`). Throws when the file is missing or holds no evaluation.
public func finalEvaluation(metricsFile path: String) throws -> (iteration: Int, mIoU: Double, aAcc: Double?, perClass: [String: Double?]) {
    guard let data = FileManager.default.contents(atPath: path) else { throw StudyError(path, "cannot read") }
    var last: [String: Any]?
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.isEmpty {
        guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw StudyError(path, "a line is not a JSON object: \(line.prefix(80))")
        }
        if record["eval/mIoU"] != nil { last = record }
    }
    guard let record = last, let iteration = record["iteration"] as? Int else { throw StudyError(path, "no evaluation record") }
    guard let mIoU = record["eval/mIoU"] as? Double else { throw StudyError(path, "eval/mIoU is not a number (null: no class was ever seen)") }
    var perClass: [String: Double?] = [:]
    for (key, value) in record where key.hasPrefix("eval/IoU/") {
        perClass[String(key.dropFirst("eval/IoU/".count))] = value as? Double
    }
    return (iteration, mIoU, record["eval/aAcc"] as? Double, perClass)
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
