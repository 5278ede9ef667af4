import Foundation

/// A folder that could not be listed or paired, naming the file or folder at fault.
public struct FileListingError: Error, CustomStringConvertible, Sendable {
    /// The file or folder.
    public let path: String
    /// What is wrong with it.
    public let problem: String
    /// "`path`: `problem`".
    public var description: String { "\(path): \(problem)" }
}

/// Files matched by stem: how predictions are paired with ground truth (`eval-seg --pred-dir`,
/// `eval-depth --pred-dir`) and images with annotations.
public enum FileListing {
    /// The files of `dir` ending in `suffix` (hidden files skipped), by stem; `recursive` walks
    /// sub-folders too (the stem is then the relative path without the suffix).
    public static func byStem(_ dir: String, suffix: String, recursive: Bool) throws(FileListingError) -> [String: String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FileListingError(path: dir, problem: "folder does not exist")
        }
        let names: [String]
        if recursive {
            guard let e = FileManager.default.enumerator(atPath: dir) else { throw FileListingError(path: dir, problem: "cannot list the folder") }
            names = e.compactMap { $0 as? String }
        } else {
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                throw FileListingError(path: dir, problem: "cannot list the folder")
            }
        }
        var out = [String: String]()
        for name in names where name.hasSuffix(suffix) && !name.hasPrefix(".") {
            out[String(name.dropLast(suffix.count))] = dir + "/" + name
        }
        return out
    }

    /// Every `*suffix` file of `predDir` with the file of the same stem in `truthDir`, sorted by
    /// stem. A stem on one side only, or no files at all, is an error naming the file; `what`
    /// names the two sides in messages (e.g. ("prediction", "annotation")).
    public static func pairByStem(predDir: String, truthDir: String, suffix: String,
                                  what: (prediction: String, truth: String)) throws(FileListingError) -> [(stem: String, prediction: String, truth: String)] {
        let preds = try byStem(predDir, suffix: suffix, recursive: false)
        let truths = try byStem(truthDir, suffix: suffix, recursive: false)
        if let stem = preds.keys.sorted().first(where: { truths[$0] == nil }) {
            throw FileListingError(path: preds[stem]!, problem: "\(what.prediction) has no \(what.truth) \(truthDir)/\(stem)\(suffix)")
        }
        if let stem = truths.keys.sorted().first(where: { preds[$0] == nil }) {
            throw FileListingError(path: truths[stem]!, problem: "\(what.truth) has no \(what.prediction) \(predDir)/\(stem)\(suffix)")
        }
        guard !preds.isEmpty else { throw FileListingError(path: predDir, problem: "no *\(suffix) \(what.prediction)s") }
        return preds.keys.sorted().map { ($0, preds[$0]!, truths[$0]!) }
    }
}
