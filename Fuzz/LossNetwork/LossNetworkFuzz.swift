import Foundation
import FuzzDriver
import Perceptual

// libFuzzer target: loss-network files as `lossnet eval --lossnet` and `--pretrained` read them.
let path = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-lossnet-\(getpid()).h5").path

/// The executable's entry (SwiftPM links `main` to `FuzzLossNetwork_main`): libFuzzer's loop.
@_cdecl("FuzzLossNetwork_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        guard (try? Data(input).write(to: URL(fileURLWithPath: path))) != nil else { return }
        _ = try? LossNetworkFile.load(path)
    }
}
