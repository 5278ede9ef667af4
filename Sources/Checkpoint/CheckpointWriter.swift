import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PercepCore
import PercepHDF5
import PercepNN

/// Writes checkpoints into a directory so that a crash at any moment leaves the previous one
/// loadable: temp file → flush/close → fsync → rename to `model_<iter:07d>.h5`, then the
/// `last_checkpoint` pointer the same way, and only then are old checkpoints deleted.
public struct CheckpointWriter {
    /// Name of the pointer file holding the newest checkpoint's file name.
    public static let pointerName = "last_checkpoint"

    /// Directory the checkpoints live in (created if missing).
    public let directory: String
    /// How many checkpoints to keep; older ones are deleted after the pointer has moved.
    public let keepLast: Int

    /// A writer for `directory` keeping the newest `keepLast` checkpoints (at least 1).
    public init(directory: String, keepLast: Int = 3) {
        self.directory = directory
        self.keepLast = max(1, keepLast)
    }

    /// The file name for iteration `iteration`, e.g. `model_0000100.h5`.
    public static func fileName(iteration: Int) -> String {
        let digits = String(iteration)
        return "model_" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits + ".h5"
    }

    /// Name of the best-metric checkpoint, written beside the periodic ones and never pruned.
    public static let bestName = "model_best.h5"

    /// Writes `model`'s state dict, `optimizer`'s momentum buffers (by parameter name) and
    /// `state`, moves the pointer to it and prunes old checkpoints; returns the new file's path.
    @discardableResult
    public func write(model: Module, optimizer: SGD?, state: CheckpointState) throws -> String {
        let name = Self.fileName(iteration: state.iteration)
        let final = try writeAtomically(model: model, optimizer: optimizer, state: state, name: name)
        try Self.writePointer(name, directory: directory)
        // Pruning only after the pointer moved: until then the old checkpoint is the one a
        // resume would load.
        try prune(keeping: name)
        return final
    }

    /// Replaces `model_best.h5` with `model` and `state` (whose `bestMetric` is the new best),
    /// atomically; the resume pointer and the periodic checkpoints are untouched.
    @discardableResult
    public func writeBest(model: Module, state: CheckpointState) throws -> String {
        try writeAtomically(model: model, optimizer: nil, state: state, name: Self.bestName)
    }

    /// temp file → close → fsync → rename onto `directory/name`; returns the final path.
    private func writeAtomically(model: Module, optimizer: SGD?, state: CheckpointState, name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let final = directory + "/" + name
        try Self.writeAtomically(to: final) { file in
            for (key, tensor) in model.stateDict() {
                try Self.writeDataset(tensor, at: CheckpointFile.modelGroup + "/" + key, in: file)
            }
            if let optimizer {
                for (key, parameter) in model.namedParameters() {
                    guard let buffer = optimizer.momentumBuffer(parameter) else { continue }
                    try Self.writeDataset(buffer, at: CheckpointFile.momentumGroup + "/" + key, in: file)
                }
            }
            try CheckpointFile.writeState(state, to: file)
        }
        return final
    }

    /// A plain weight file (what `weights import` writes): one checksummed float32 dataset per
    /// tensor at the root, a `source` attribute, sealed and written atomically, so an existing
    /// file at `path` is replaced only by a complete one.
    public static func writeWeights(_ tensors: [(name: String, tensor: Tensor)], source: String, to path: String) throws {
        try writeAtomically(to: path) { file in
            for (name, tensor) in tensors { try writeDataset(tensor, at: "/" + name, in: file) }
            try file.setAttribute("source", .string(source))
        }
    }

    private static func writeAtomically(to final: String, _ body: (HDF5File) throws -> Void) throws {
        // The pid keeps two writers (which should not happen: only rank 0 writes) from sharing a
        // temp file; the `.tmp` suffix keeps the loader from ever taking it for a checkpoint.
        let temp = final + ".\(getpid()).tmp"
        do {
            let file = try HDF5File(creating: temp, sealable: true)
            try body(file)
            try file.flush()
            try file.close()
            // A whole-file checksum in the user block: a damaged checkpoint is refused before the
            // HDF5 library parses it.
            try HDF5Seal.seal(temp)
            // HDF5 has no fsync of its own: without this a power loss after the rename could leave
            // a final name on a file whose data never reached the disk.
            try fsync(path: temp)
            try rename(temp, to: final)
            // The rename itself is durable only once the directory entry is on disk.
            try fsync(path: (final as NSString).deletingLastPathComponent.isEmpty ? "." : (final as NSString).deletingLastPathComponent)
        } catch {
            try? FileManager.default.removeItem(atPath: temp)
            if let error = error as? HDF5Error { throw CheckpointError(file: final, .io(error.description)) }
            throw error
        }
    }

    private static func writeDataset(_ tensor: Tensor, at path: String, in file: HDF5File) throws {
        try file.write(tensor, at: path)
        try file.setAttribute(CheckpointFile.checksumAttribute, .uint(fnv1a64(tensor)), on: path)
    }

    /// Deletes all but the newest `keepLast` checkpoints (never `current`), and stray temp files
    /// (checkpoints' and the pointer's) left by a crashed write.
    private func prune(keeping current: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for stray in names where (stray.hasPrefix("model_") || stray.hasPrefix(Self.pointerName + ".")) && stray.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(atPath: directory + "/" + stray)
        }
        let others = CheckpointLoader.checkpointNames(names).filter { $0 != current }
        for old in others.dropFirst(keepLast - 1) {
            do { try FileManager.default.removeItem(atPath: directory + "/" + old) } catch {
                throw CheckpointError(file: directory + "/" + old, .io("cannot delete old checkpoint: \(error)"))
            }
        }
    }

    /// Writes the pointer file atomically (temp + fsync + rename), then fsyncs the directory so
    /// both renames are durable.
    static func writePointer(_ name: String, directory: String) throws {
        let pointer = directory + "/" + pointerName
        let temp = pointer + ".\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: temp, contents: Data((name + "\n").utf8)) else {
            throw CheckpointError(file: pointer, .io("cannot write '\(temp)'"))
        }
        do {
            try fsync(path: temp)
            try rename(temp, to: pointer)
            try fsync(path: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: temp)
            throw error
        }
    }

    /// Opens `path` (a file or a directory) read-only and fsyncs it.
    static func fsync(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw CheckpointError(file: path, .io("open for fsync failed: \(String(cString: strerror(errno)))")) }
        defer { _ = close(fd) }
        guard Glibc.fsync(fd) == 0 else { throw CheckpointError(file: path, .io("fsync failed: \(String(cString: strerror(errno)))")) }
    }

    /// rename(2): atomic replacement within one directory, unlike FileManager.moveItem, which
    /// refuses to replace an existing file.
    static func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else {
            throw CheckpointError(file: to, .io("rename from '\(from)' failed: \(String(cString: strerror(errno)))"))
        }
    }
}
