import Checkpoint
import Foundation
import FuzzDriver

// libFuzzer target: checkpoint files as `checkpoint inspect` and `--resume` read them (HDF5
// parsing, state attributes, checksums, resource limits).
let path = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-checkpoint-\(getpid()).h5").path

/// The executable's entry (SwiftPM links `main` to `FuzzCheckpoint_main`): libFuzzer's loop.
@_cdecl("FuzzCheckpoint_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        guard (try? Data(input).write(to: URL(fileURLWithPath: path))) != nil else { return }
        _ = try? CheckpointFile.read(path)
    }
}
