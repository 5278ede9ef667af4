import FuzzDriver
import PretrainedWeights

// libFuzzer target: PyTorch .pth (zip and legacy) and pickled NumPy .pkl files as MODEL.WEIGHTS
// and `weights inspect` read them: zip directory and members, the restricted unpickler, storages.

/// The executable's entry (SwiftPM links `main` to `FuzzWeights_main`): libFuzzer's loop.
@_cdecl("FuzzWeights_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        if let weights = try? WeightsReader.read(bytes: [UInt8](input), file: "fuzz.pth") {
            _ = weights.tensors.reduce(0) { $0 + $1.values.count }
        }
    }
}
