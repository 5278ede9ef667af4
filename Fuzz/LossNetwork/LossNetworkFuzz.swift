import Foundation
import FuzzDriver
import PercepHDF5
import Perceptual

// libFuzzer target: loss-network files as `lossnet eval --lossnet` and `--pretrained` read them.
let path = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-lossnet-\(getpid()).h5").path

/// The executable's entry (SwiftPM links `main` to `FuzzLossNetwork_main`): libFuzzer's loop.
@_cdecl("FuzzLossNetwork_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        guard (try? Data(input).write(to: URL(fileURLWithPath: path))) != nil else { return }
        // Re-seal mutated sealed files, so that the reader gets past the checksum and the HDF5
        // parsing and our readers behind it are what gets fuzzed.
        if input.count > HDF5Seal.userBlockSize, input.starts(with: Array("percep-dist sealed".utf8)) { try? HDF5Seal.seal(path) }
        _ = try? LossNetworkFile.load(path)
    }
}
