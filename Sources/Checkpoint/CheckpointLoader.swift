import Foundation
import PercepCore
import PercepHDF5
import PercepNN

/// A rewrite of state-dict names for weights-only loads: returns the name in the target model, or
/// nil to drop the tensor (e.g. a classifier head the backbone does not have).
public struct NameRemap: Sendable {
    /// The rewrite itself.
    public let map: @Sendable (String) -> String?

    /// A remap from a closure.
    public init(_ map: @escaping @Sendable (String) -> String?) { self.map = map }

    /// Names unchanged.
    public static let identity = NameRemap { $0 }

    /// Replaces a leading `prefix` by `replacement` (`backbone.` → `` loads a detector's backbone
    /// into a bare network). Names without the prefix are dropped when `dropOthers`, else kept.
    public static func replacingPrefix(_ prefix: String, with replacement: String, dropOthers: Bool = true) -> NameRemap {
        NameRemap { name in
            if name.hasPrefix(prefix) { return replacement + name.dropFirst(prefix.count) }
            return dropOthers ? nil : name
        }
    }
}

/// Finds, verifies and applies checkpoints.
public enum CheckpointLoader {
    /// Where `latest(in:)` found its checkpoint.
    public enum Source: Equatable, Sendable {
        /// The file `last_checkpoint` names.
        case pointer
        /// The newest `model_*.h5` that verified, because the pointer was missing or its file was
        /// damaged; the reason says which.
        case fallback(reason: String)
    }

    /// Checkpoint file names among `names`, newest (highest iteration) first; temp files and
    /// anything else are ignored.
    public static func checkpointNames(_ names: [String]) -> [String] {
        names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("model_"), name.hasSuffix(".h5") else { return nil }
            let digits = name.dropFirst("model_".count).dropLast(".h5".count)
            guard digits.count >= 7, digits.allSatisfy(\.isASCII), let iteration = Int(digits) else { return nil }
            return (iteration, name)
        }
        .sorted { $0.0 > $1.0 }
        .map(\.1)
    }

    /// The newest complete checkpoint in `directory`: the one `last_checkpoint` names if it
    /// verifies, else the newest `model_*.h5` that does.
    public static func latest(in directory: String) throws -> (checkpoint: CheckpointFile, source: Source) {
        var failures: [String] = []
        let pointerPath = directory + "/" + CheckpointWriter.pointerName
        let reason: String
        if let text = try? String(contentsOfFile: pointerPath, encoding: .utf8) {
            let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if name.isEmpty || name.contains("/") {
                reason = "'\(pointerPath)' does not hold a file name"
            } else {
                do { return (try CheckpointFile.read(directory + "/" + name), .pointer) } catch {
                    reason = "'\(pointerPath)' names a checkpoint that does not load (\(error))"
                    failures.append("\(error)")
                }
            }
        } else {
            reason = "'\(pointerPath)' is missing"
        }
        let names = checkpointNames((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        for name in names {
            let path = directory + "/" + name
            do { return (try CheckpointFile.read(path), .fallback(reason: reason + "; using '\(path)'")) } catch {
                failures.append("\(error)")
            }
        }
        throw CheckpointError(file: directory, .noValidCheckpoint(failures: [reason] + failures))
    }

    /// Applies `checkpoint` to `model` strictly (every missing, unexpected and misshapen name in
    /// one error) and, if given, restores `optimizer`'s momentum buffers by parameter name.
    ///
    /// Everything is checked before anything is changed, so a mismatch leaves model and optimizer
    /// untouched.
    public static func restore(_ checkpoint: CheckpointFile, into model: Module, optimizer: SGD? = nil) throws {
        let parameters = Dictionary(model.namedParameters(), uniquingKeysWith: { a, _ in a })
        var problems: [String] = []
        for (name, buffer) in checkpoint.momentum.sorted(by: { $0.key < $1.key }) {
            guard let p = parameters[name] else { problems.append("unexpected '\(name)'"); continue }
            if p.shape != buffer.shape { problems.append("'\(name)': checkpoint \(buffer.shape), model \(p.shape)") }
        }
        do {
            // loadStateDict checks everything before assigning, so throwing here changes nothing.
            try model.loadStateDict(checkpoint.modelStateDict, strict: true)
        } catch let error as StateDictError {
            throw CheckpointError(file: checkpoint.path, .stateDict(error))
        }
        guard problems.isEmpty else {
            throw CheckpointError(file: checkpoint.path, .momentum(problems.joined(separator: "; ")))
        }
        if let optimizer {
            for (name, p) in parameters { optimizer.setMomentumBuffer(checkpoint.momentum[name], for: p) }
        }
    }

    /// Loads only weights from `path` into `model` after renaming them with `remap`: for
    /// fine-tuning from a checkpoint, teachers and imported backbones.
    ///
    /// Reads the `/model` group when the file has one (a checkpoint) and the root group otherwise
    /// (plain weight files). Checksums are verified where present; files from other tools have
    /// none, which is accepted. `strict` is `Module.loadStateDict`'s.
    public static func loadWeights(from path: String, into model: Module, remap: NameRemap = .identity,
                                   strict: Bool = true) throws {
        var tensors: [String: Tensor] = [:]
        do {
            let file = try HDF5File.openChecked(reading: path)
            defer { try? file.close() }
            let group = try file.exists(CheckpointFile.modelGroup) ? CheckpointFile.modelGroup : "/"
            // Shapes first, from the headers: a dataset the model would refuse is named before
            // anything is read (a hostile file may claim billions of elements).
            let expected = Dictionary(model.stateDict().map { ($0.0, $0.1.shape) }, uniquingKeysWith: { a, _ in a })
            // A strict load names the missing and unexpected ones in the same message.
            var misshapen: [String] = [], unexpected: [String] = [], present = Set<String>()
            for name in try file.datasetNames(in: group) {
                guard let mapped = remap.map(name) else { continue }
                guard let want = expected[mapped] else { unexpected.append(mapped); continue }
                present.insert(mapped)
                let have = try file.shape(at: group == "/" ? "/" + name : group + "/" + name)
                if have != want { misshapen.append("\(mapped): checkpoint \(have), model \(want)") }
            }
            if !misshapen.isEmpty {
                let missing = strict ? model.stateDict().map(\.0).filter { !present.contains($0) } : []
                throw CheckpointError(file: path, .stateDict(StateDictError(missing: missing, unexpected: strict ? unexpected : [],
                                                                            mismatched: misshapen)))
            }
            var bad: [String] = []
            let all = try CheckpointFile.readGroup(file, group, path: path, requireChecksums: false, bad: &bad)
            if !bad.isEmpty { throw CheckpointError(file: path, .checksumMismatch(datasets: bad)) }
            for (name, tensor) in all { if let mapped = remap.map(name) { tensors[mapped] = tensor } }
        } catch let error as HDF5Error {
            throw CheckpointError(file: path, .unreadable(underlying: error.description))
        }
        // Non-strict loads (an ImageNet backbone into a segmentation network) may leave names out,
        // but a file that shares no name with the model is a wrong file, not a partial one.
        let known = Set(model.stateDict().map(\.0))
        if !strict && !tensors.keys.contains(where: known.contains) {
            let theirs = tensors.keys.sorted().prefix(3).joined(separator: ", "), ours = model.stateDict().prefix(3).map(\.0).joined(separator: ", ")
            throw CheckpointError(file: path, .io("shares no tensor name with the model (the file has \(theirs), …; the model \(ours), …)"))
        }
        do { try model.loadStateDict(tensors, strict: strict) } catch let error as StateDictError {
            throw CheckpointError(file: path, .stateDict(error))
        }
    }
}
