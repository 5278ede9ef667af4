import PercepNN

/// A checkpoint that could not be written, found, read or applied, naming the file (and the
/// dataset, where one is to blame) so the user knows which file to delete or investigate.
public struct CheckpointError: Error, CustomStringConvertible {
    /// What went wrong.
    public enum Kind {
        /// The stored checksum of one or more datasets does not match their data (bit rot, a
        /// partial copy, a bad disk): the datasets' full HDF5 paths.
        case checksumMismatch(datasets: [String])
        /// A dataset carries no checksum attribute, so its data cannot be trusted.
        case missingChecksum(dataset: String)
        /// HDF5 could not open or read the file (truncated, not HDF5, damaged metadata).
        case unreadable(underlying: String)
        /// A root attribute every checkpoint has is absent or has the wrong type.
        case missingAttribute(String)
        /// A root attribute whose value cannot be right (a negative counter).
        case invalidAttribute(String, problem: String)
        /// The file was written by a newer format than this build understands.
        case unsupportedVersion(found: Int64, supported: Int64)
        /// The model's state dict does not match the checkpoint's names or shapes.
        case stateDict(StateDictError)
        /// Momentum buffers name parameters the model does not have, or have the wrong shape.
        case momentum(String)
        /// No checkpoint in the directory could be loaded: the reason each candidate failed.
        case noValidCheckpoint(failures: [String])
        /// A file-system operation (fsync, rename, write of the pointer) failed.
        case io(String)
    }

    /// The checkpoint file (or, for `noValidCheckpoint`, the directory) concerned.
    public let file: String
    /// What went wrong.
    public let kind: Kind

    /// Creates an error about `file`.
    public init(file: String, _ kind: Kind) {
        self.file = file
        self.kind = kind
    }

    /// One message naming the file and, where known, the dataset.
    public var description: String {
        switch kind {
        case .checksumMismatch(let datasets):
            return "checkpoint '\(file)' is corrupted: checksum mismatch in dataset(s) \(datasets.map { "'\($0)'" }.joined(separator: ", "))"
        case .missingChecksum(let dataset):
            return "checkpoint '\(file)' is damaged: dataset '\(dataset)' has no checksum attribute"
        case .unreadable(let underlying):
            return "checkpoint '\(file)' cannot be read (truncated or damaged?): \(underlying)"
        case .missingAttribute(let name):
            return "checkpoint '\(file)' is missing root attribute '\(name)' (or it has the wrong type)"
        case .invalidAttribute(let name, let problem):
            return "checkpoint '\(file)' is damaged: root attribute '\(name)' \(problem)"
        case .unsupportedVersion(let found, let supported):
            return "checkpoint '\(file)' has format version \(found); this build reads up to \(supported)"
        case .stateDict(let error):
            return "checkpoint '\(file)' does not fit the model: \(error)"
        case .momentum(let message):
            return "checkpoint '\(file)': optimizer momentum does not fit the model: \(message)"
        case .noValidCheckpoint(let failures):
            let detail = failures.isEmpty ? "no model_*.h5 files" : failures.joined(separator: "; ")
            return "no loadable checkpoint in '\(file)': \(detail)"
        case .io(let message):
            return "checkpoint '\(file)': \(message)"
        }
    }
}
