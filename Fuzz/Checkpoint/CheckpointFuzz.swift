import Checkpoint
import Foundation
import FuzzDriver
import PercepHDF5

// libFuzzer target: checkpoint files as `checkpoint inspect` and `--resume` read them (HDF5
// parsing, state attributes, checksums, resource limits).
let path = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-checkpoint-\(getpid()).h5").path

/// The executable's entry (SwiftPM links `main` to `FuzzCheckpoint_main`): libFuzzer's loop.
@_cdecl("FuzzCheckpoint_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        guard (try? Data(input).write(to: URL(fileURLWithPath: path))) != nil else { return }
        // Re-seal mutated sealed files, so that the reader gets past the checksum and the HDF5
        // parsing and our readers behind it are what gets fuzzed.
        if input.count > HDF5Seal.userBlockSize, input.starts(with: Array("percep-dist sealed".utf8)) { try? HDF5Seal.seal(path) }
        _ = try? CheckpointFile.read(path)
    }
}
