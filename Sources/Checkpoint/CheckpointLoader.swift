import Foundation
import PercepCore
import PercepHDF5
import PercepNN
import PretrainedWeights

/// A rewrite of state-dict names for weights-only loads: returns the name in the target model, or
/// nil to drop the tensor (e.g. a classifier head the backbone does not have).
public struct NameRemap: Sendable {
    /// The rewrite itself.
    public let map: @Sendable (String) -> String?

    /// A remap from a closure.
    public init(_ map: @escaping @Sendable (String) -> String?) { self.map = map }

    /// Names unchanged.
    public static let identity = NameRemap { $0 }

    /// The segmentation models: mmseg names kept, a torchvision ResNet under `backbone.`.
    public static let segmentation = NameRemap { WeightNames.segmentation($0) }

    /// CondInst: AdelaiDet names kept; detectron2's `R-50.pkl` (Caffe2), detectron2 ImageNet
    /// `.pkl` files and torchvision ResNets under `backbone.bottom_up.` in detectron2's names.
    public static let condInst = NameRemap { WeightNames.condInst($0) }

    /// Pretrained loss networks: torchvision names, classifiers dropped.
    public static let lossNetwork = NameRemap { WeightNames.lossNetwork($0) }

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
    /// fine-tuning from a checkpoint, teachers and pretrained backbones.
    ///
    /// `path` is one of our HDF5 files (the `/model` group of a checkpoint, else the root group of
    /// a plain weight file; checksums verified where present) or a PyTorch `.pth` / pickled
    /// `.pkl` file, read by the restricted reader of `PretrainedWeights` (the format is
    /// recognised by content, not by extension). `strict` loads need every name on both sides and
    /// every shape to match, and change nothing otherwise. Non-strict loads (an ImageNet backbone
    /// into a detector) copy what matches and, like detectron2, skip misshapen tensors; the
    /// returned report names what was loaded, missing, unused and skipped. A file that shares no
    /// name with the model is an error either way.
    @discardableResult
    public static func loadWeights(from path: String, into model: Module, remap: NameRemap = .identity,
                                   strict: Bool = true) throws -> WeightLoadReport {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CheckpointError(file: path, .io("no such file (for pretrained ImageNet weights, docs/weights.md says where to get each file)"))
        }
        let expected = Dictionary(model.stateDict().map { ($0.0, $0.1.shape) }, uniquingKeysWith: { a, _ in a })
        var tensors: [String: Tensor] = [:], fileShapes: [String: [Int]] = [:], order: [String] = [], dropped = 0
        let format: String
        if WeightsReader.isPickleOrZip(path) {
            let imported = try WeightsReader.read(path)
            format = imported.format.rawValue + (imported.renamedFromCaffe2 ? " (Caffe2 names renamed as detectron2 does)" : "")
            for t in imported.tensors {
                guard let mapped = remap.map(t.name) else { dropped += 1; continue }
                guard fileShapes[mapped] == nil else {
                    throw CheckpointError(file: path, .io("two tensors map to '\(mapped)' (the second is '\(t.name)')"))
                }
                fileShapes[mapped] = t.shape; order.append(mapped)
                if let want = expected[mapped], want == t.shape { tensors[mapped] = Tensor(shape: t.shape, values: t.values) }
            }
        } else {
            format = "HDF5"
            do {
                let file = try HDF5File.openChecked(reading: path)
                defer { try? file.close() }
                let group = try file.exists(CheckpointFile.modelGroup) ? CheckpointFile.modelGroup : "/"
                // Shapes first, from the headers: a dataset the model would refuse is named before
                // anything is read (a hostile file may claim billions of elements).
                for name in try file.datasetNames(in: group) {
                    guard let mapped = remap.map(name) else { dropped += 1; continue }
                    guard fileShapes[mapped] == nil else {
                        throw CheckpointError(file: path, .io("two datasets map to '\(mapped)' (the second is '\(name)')"))
                    }
                    fileShapes[mapped] = try file.shape(at: group == "/" ? "/" + name : group + "/" + name); order.append(mapped)
                }
                if !strict || fileShapes.allSatisfy({ expected[$0.key] == $0.value }) {
                    var bad: [String] = []
                    let all = try CheckpointFile.readGroup(file, group, path: path, requireChecksums: false, bad: &bad)
                    if !bad.isEmpty { throw CheckpointError(file: path, .checksumMismatch(datasets: bad)) }
                    for (name, tensor) in all {
                        if let mapped = remap.map(name), expected[mapped] == tensor.shape { tensors[mapped] = tensor }
                    }
                }
            } catch let error as HDF5Error {
                throw CheckpointError(file: path, .unreadable(underlying: error.description))
            }
        }
        let modelNames = model.stateDict().map(\.0)
        let report = WeightLoadReport(
            file: path, format: format, loaded: tensors.count, modelTotal: modelNames.count,
            missing: modelNames.filter { fileShapes[$0] == nil },
            unused: order.filter { expected[$0] == nil },
            misshapen: order.compactMap { name in
                guard let want = expected[name], let have = fileShapes[name], have != want else { return nil }
                return "\(name): checkpoint \(have), model \(want)"
            },
            dropped: dropped)
        if strict && (!report.missing.isEmpty || !report.unused.isEmpty || !report.misshapen.isEmpty) {
            throw CheckpointError(file: path, .stateDict(StateDictError(missing: report.missing, unexpected: report.unused, mismatched: report.misshapen)))
        }
        // Non-strict loads may leave names out, but a file that shares no name with the model is
        // a wrong file, not a partial one.
        if !strict && !fileShapes.keys.contains(where: { expected[$0] != nil }) {
            let theirs = order.prefix(3).joined(separator: ", "), ours = modelNames.prefix(3).joined(separator: ", ")
            throw CheckpointError(file: path, .io("shares no tensor name with the model (the file has \(theirs), …; the model \(ours), …)"))
        }
        do { try model.loadStateDict(tensors, strict: false) } catch let error as StateDictError {
            throw CheckpointError(file: path, .stateDict(error))
        }
        return report
    }
}

/// What a weights-only load did, as detectron2's checkpointer reports it: how many of the
/// model's tensors came from the file, and every name that did not match.
public struct WeightLoadReport: CustomStringConvertible, Sendable {
    /// The file loaded.
    public let file: String
    /// Its format (HDF5, PyTorch zip, …).
    public let format: String
    /// Model tensors assigned from the file.
    public let loaded: Int
    /// Tensors (parameters and buffers) the model has.
    public let modelTotal: Int
    /// Model names the file lacks: they keep their initialisation.
    public let missing: [String]
    /// File names (after the rename) the model does not have.
    public let unused: [String]
    /// Names in both with other shapes (`name: checkpoint [..], model [..]`), not loaded.
    public let misshapen: [String]
    /// File tensors the rename drops on purpose (ImageNet classifiers).
    public let dropped: Int

    /// A summary line, then one line per list that is not empty.
    public var description: String {
        var lines = ["loaded \(loaded) of \(modelTotal) model tensors from \(file) (\(format))" +
                     (dropped > 0 ? "; \(dropped) classifier tensor(s) of the file dropped" : "")]
        func list(_ title: String, _ names: [String]) {
            guard !names.isEmpty else { return }
            lines.append("  \(title) (\(names.count)): " + Self.grouped(names).joined(separator: ", "))
        }
        list("not in the file, left at their initialisation", missing)
        list("in the file but not in the model, unused", unused)
        list("shapes differ, skipped", misshapen)
        return lines.joined(separator: "\n")
    }

    /// Names sharing everything before their last dot written once, as detectron2 groups them:
    /// `a.conv.norm.{weight, bias}`. Order of first appearance is kept.
    static func grouped(_ names: [String]) -> [String] {
        var order: [String] = [], leaves: [String: [String]] = [:]
        for name in names {
            // Misshapen entries carry ": checkpoint …": never grouped.
            guard !name.contains(":"), let dot = name.lastIndex(of: ".") else { order.append(name); leaves[name] = []; continue }
            let stem = String(name[..<dot]), leaf = String(name[name.index(after: dot)...])
            if leaves[stem] == nil { order.append(stem); leaves[stem] = [] }
            leaves[stem]!.append(leaf)
        }
        return order.map { stem in
            let l = leaves[stem] ?? []
            return l.isEmpty ? stem : l.count == 1 ? stem + "." + l[0] : stem + ".{" + l.joined(separator: ", ") + "}"
        }
    }
}
