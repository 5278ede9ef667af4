import Foundation
import PercepCore
import PercepHDF5

/// The training state a checkpoint stores besides tensors: everything needed to resume a run
/// exactly where it stopped, and to notice a resume with a different config or loss network.
public struct CheckpointState: Equatable, Sendable {
    /// Optimizer steps completed.
    public var iteration: Int
    /// Epochs completed (or the current epoch, as the trainer counts).
    public var epoch: Int
    /// Global position in the sample stream, so the sampler resumes mid-epoch.
    public var sampleCursor: Int64
    /// Opaque RNG state words (e.g. every generator's state, concatenated).
    public var rngState: [UInt64]
    /// Learning rate of the next step, as the schedule left it.
    public var learningRate: Double
    /// The schedule's own iteration counter (may differ from `iteration` after a warm restart).
    public var scheduleIteration: Int
    /// Number of ranks that wrote the run; bit-identical resumes need the same world size.
    public var worldSize: Int
    /// The resolved config, as text.
    public var configText: String
    /// Hash of the resolved config, computed by the caller.
    public var configHash: UInt64
    /// Fingerprint of the loss network the run trains against.
    public var lossNetworkFingerprint: UInt64
    /// Best value so far of the task's evaluation metric (NaN before the first evaluation), so a
    /// resumed run keeps `model_best.h5` only when it beats the run's real best.
    public var bestMetric: Double
    /// The task's fingerprints of files the config only names by path (a teacher's weights), so
    /// a resume can tell a moved file from a different one. Empty in files written before them.
    public var taskFacts: [String: Int64] = [:]

    /// A state; every field is required so a checkpoint never silently lacks one.
    public init(iteration: Int, epoch: Int, sampleCursor: Int64, rngState: [UInt64], learningRate: Double,
                scheduleIteration: Int, worldSize: Int, configText: String, configHash: UInt64,
                lossNetworkFingerprint: UInt64, bestMetric: Double = .nan, taskFacts: [String: Int64] = [:]) {
        self.iteration = iteration
        self.epoch = epoch
        self.sampleCursor = sampleCursor
        self.rngState = rngState
        self.learningRate = learningRate
        self.scheduleIteration = scheduleIteration
        self.worldSize = worldSize
        self.configText = configText
        self.configHash = configHash
        self.lossNetworkFingerprint = lossNetworkFingerprint
        self.bestMetric = bestMetric
        self.taskFacts = taskFacts
    }

    /// Equal field by field, with NaN best metrics (no evaluation yet) equal to each other.
    public static func == (a: CheckpointState, b: CheckpointState) -> Bool {
        a.iteration == b.iteration && a.epoch == b.epoch && a.sampleCursor == b.sampleCursor && a.rngState == b.rngState
            && a.learningRate == b.learningRate && a.scheduleIteration == b.scheduleIteration && a.worldSize == b.worldSize
            && a.configText == b.configText && a.configHash == b.configHash
            && a.lossNetworkFingerprint == b.lossNetworkFingerprint
            && (a.bestMetric == b.bestMetric || (a.bestMetric.isNaN && b.bestMetric.isNaN)) && a.taskFacts == b.taskFacts
    }
}

/// A checkpoint read from disk with every dataset's checksum verified.
public struct CheckpointFile {
    /// The file format version this build writes (root attribute `format_version`).
    public static let formatVersion: Int64 = 1
    /// HDF5 group holding the model's state dict.
    public static let modelGroup = "/model"
    /// HDF5 group holding SGD momentum buffers, by parameter name.
    public static let momentumGroup = "/optimizer/momentum"
    /// Dataset attribute holding the FNV-1a 64 checksum of the dataset's float32 bytes.
    public static let checksumAttribute = "fnv1a64"

    /// Path of the file read.
    public let path: String
    /// Counters, RNG, schedule and config state.
    public let state: CheckpointState
    /// The model's state dict in the file's (name-sorted) order.
    public let model: [(name: String, tensor: Tensor)]
    /// SGD momentum buffers by parameter name (empty when the optimizer had none).
    public let momentum: [String: Tensor]

    /// The model tensors as a dictionary, for `Module.loadStateDict`.
    public var modelStateDict: [String: Tensor] { Dictionary(model.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a }) }

    /// Reads and verifies the checkpoint at `path`.
    ///
    /// Every dataset's checksum is checked before anything is returned, and all mismatches are
    /// reported in one `CheckpointError`, so a damaged file is never half-applied to a model.
    public static func read(_ path: String) throws -> CheckpointFile {
        do {
            let file = try HDF5File.openChecked(reading: path)
            defer { try? file.close() }
            let state = try readState(file, path: path)
            var bad: [String] = []
            let model = try readGroup(file, modelGroup, path: path, requireChecksums: true, bad: &bad)
            let momentum = try file.exists(momentumGroup)
                ? try readGroup(file, momentumGroup, path: path, requireChecksums: true, bad: &bad) : []
            if !bad.isEmpty { throw CheckpointError(file: path, .checksumMismatch(datasets: bad)) }
            return CheckpointFile(path: path, state: state, model: model,
                                  momentum: Dictionary(momentum.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a }))
        } catch let error as HDF5Error {
            throw CheckpointError(file: path, .unreadable(underlying: error.description))
        }
    }

    /// Reads every dataset in `group`, appending the full paths of those whose checksum does not
    /// match to `bad`. Without `requireChecksums`, a dataset lacking the attribute is accepted
    /// (weights written by h5py or another tool have none).
    static func readGroup(_ file: HDF5File, _ group: String, path: String, requireChecksums: Bool,
                          bad: inout [String]) throws -> [(name: String, tensor: Tensor)] {
        var out: [(name: String, tensor: Tensor)] = []
        for name in try file.datasetNames(in: group) {
            let dataset = group == "/" ? "/" + name : group + "/" + name
            let tensor = try file.readTensor(at: dataset)
            if let stored = try file.attribute(checksumAttribute, on: dataset) {
                if stored.uintValue != fnv1a64(tensor) { bad.append(dataset) }
            } else if requireChecksums {
                throw CheckpointError(file: path, .missingChecksum(dataset: dataset))
            }
            out.append((name, tensor))
        }
        return out
    }

    private static func readState(_ file: HDF5File, path: String) throws -> CheckpointState {
        func value(_ name: String) throws -> HDF5AttributeValue {
            guard let v = try file.attribute(name) else { throw CheckpointError(file: path, .missingAttribute(name)) }
            return v
        }
        func int(_ name: String) throws -> Int64 {
            guard let v = try value(name).intValue else { throw CheckpointError(file: path, .missingAttribute(name)) }
            return v
        }
        // A hash written as uint64 reads back as `.uint`; accept `.int` too for files from tools
        // that store it signed.
        func uint(_ name: String) throws -> UInt64 {
            let v = try value(name)
            if let u = v.uintValue { return u }
            if let i = v.intValue { return UInt64(bitPattern: i) }
            throw CheckpointError(file: path, .missingAttribute(name))
        }
        let version = try int("format_version")
        guard version <= formatVersion else {
            throw CheckpointError(file: path, .unsupportedVersion(found: version, supported: formatVersion))
        }
        guard let rng = try value("rng_state").intsValue, let lr = try value("schedule_lr").doubleValue,
              let config = try value("config").stringValue
        else { throw CheckpointError(file: path, .missingAttribute("rng_state, schedule_lr or config")) }
        var state = CheckpointState(
            iteration: Int(try int("iteration")), epoch: Int(try int("epoch")), sampleCursor: try int("sample_cursor"),
            rngState: rng.map { UInt64(bitPattern: $0) }, learningRate: lr,
            scheduleIteration: Int(try int("schedule_iteration")), worldSize: Int(try int("world_size")),
            configText: config, configHash: try uint("config_hash"),
            lossNetworkFingerprint: try uint("loss_network_fingerprint"),
            // Optional: files written before evaluation hooks existed have no best metric.
            bestMetric: try file.attribute("best_metric")?.doubleValue ?? .nan)
        // Optional too: "name=value" lines.
        if let facts = try file.attribute("task_facts")?.stringValue {
            for line in facts.split(separator: "\n") {
                guard let eq = line.lastIndex(of: "="), let v = Int64(line[line.index(after: eq)...]) else {
                    throw CheckpointError(file: path, .missingAttribute("task_facts (malformed line '\(line)')"))
                }
                state.taskFacts[String(line[..<eq])] = v
            }
        }
        // Counters become loop bounds and sampler positions: a negative one (or a world of no
        // ranks) is damage, refused here rather than trapping where it is used.
        let counters: [(String, Int64)] = [("iteration", Int64(state.iteration)), ("epoch", Int64(state.epoch)),
                                           ("sample_cursor", Int64(state.sampleCursor)), ("schedule_iteration", Int64(state.scheduleIteration)),
                                           ("world_size", Int64(state.worldSize) - 1)]
        if let (name, _) = counters.first(where: { $0.1 < 0 }) {
            throw CheckpointError(file: path, .invalidAttribute(name, problem: "is negative"))
        }
        return state
    }

    /// Writes the root attributes of `state` (the writer's half of `readState`).
    static func writeState(_ state: CheckpointState, to file: HDF5File) throws {
        try file.setAttribute("format_version", .int(formatVersion))
        try file.setAttribute("iteration", .int(Int64(state.iteration)))
        try file.setAttribute("epoch", .int(Int64(state.epoch)))
        try file.setAttribute("sample_cursor", .int(state.sampleCursor))
        // Stored as int64 bit patterns: HDF5AttributeValue has no unsigned array case, and the
        // words are opaque anyway (h5py shows them as int64; `.view('uint64')` recovers them).
        try file.setAttribute("rng_state", .ints(state.rngState.map { Int64(bitPattern: $0) }))
        try file.setAttribute("schedule_lr", .double(state.learningRate))
        try file.setAttribute("schedule_iteration", .int(Int64(state.scheduleIteration)))
        try file.setAttribute("world_size", .int(Int64(state.worldSize)))
        try file.setAttribute("config", .string(state.configText))
        try file.setAttribute("config_hash", .uint(state.configHash))
        try file.setAttribute("loss_network_fingerprint", .uint(state.lossNetworkFingerprint))
        try file.setAttribute("best_metric", .double(state.bestMetric))
        if !state.taskFacts.isEmpty {
            try file.setAttribute("task_facts", .string(state.taskFacts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")))
        }
    }
}

/// FNV-1a 64 over a tensor's float32 bytes in memory order (little-endian on every platform the
/// project runs on): cheap, dependency-free, and enough to catch corruption, not tampering.
public func fnv1a64(_ tensor: Tensor) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    let bytes = UnsafeRawBufferPointer(start: tensor.data, count: tensor.count * MemoryLayout<Float>.size)
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
}
