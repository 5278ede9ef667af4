import ArgumentParser
import Checkpoint
import Foundation

/// `percep-dist checkpoint …`: look into training checkpoints.
///
/// Named `CheckpointCommand` because `Checkpoint` is the module it uses.
struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Inspect training checkpoints.", subcommands: [Inspect.self])

    /// `checkpoint inspect FILE`: counters, config hash, the parameter table and the checksums.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a checkpoint's iteration, config hash and parameters, and verify its checksums.")
        @Argument(help: "Checkpoint file (model_<iter>.h5).") var file: String

        func run() throws {
            // CheckpointFile.read verifies every checksum first: a damaged file throws a
            // CheckpointError naming the file and dataset, which ArgumentParser prints as one
            // "Error: …" line with exit status 1 (no crash trace).
            let checkpoint = try CheckpointFile.read(file)
            let s = checkpoint.state
            print("file: \(file)")
            print("iteration: \(s.iteration)  epoch: \(s.epoch)  sample cursor: \(s.sampleCursor)  world size: \(s.worldSize)")
            print(String(format: "config hash: %016llx  loss network fingerprint: %016llx", s.configHash, s.lossNetworkFingerprint))
            print("schedule: lr \(s.learningRate) at schedule iteration \(s.scheduleIteration)")
            let rows = checkpoint.model.map { ($0.name, "[" + $0.tensor.shape.map(String.init).joined(separator: ", ") + "]",
                                               String($0.tensor.count)) }
            let w0 = max(4, rows.map(\.0.count).max() ?? 0), w1 = max(5, rows.map(\.1.count).max() ?? 0)
            func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
            print(pad("name", w0) + "  " + pad("shape", w1) + "  count")
            for (name, shape, count) in rows { print(pad(name, w0) + "  " + pad(shape, w1) + "  " + count) }
            let total = checkpoint.model.reduce(0) { $0 + $1.tensor.count }
            print("\(rows.count) tensors, \(total) values; \(checkpoint.momentum.count) momentum buffers")
            print("checksums: OK (\(rows.count + checkpoint.momentum.count) datasets verified)")
        }
    }
}
