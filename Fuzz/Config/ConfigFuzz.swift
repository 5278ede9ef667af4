import Foundation
import FuzzDriver
import Training

// libFuzzer target: YAML configs as `--config` reads them, `_BASE_` included: the input is written
// as cfg.yaml beside a fixed base.yaml it may inherit from (and itself, for cycles).
let directory: String = {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-config-\(getpid())").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try! Data("SOLVER:\n  BASE_LR: 0.01\n  STEPS: [10, 20]\nOUTPUT_DIR: out\n".utf8).write(to: URL(fileURLWithPath: dir + "/base.yaml"))
    return dir
}()

/// The executable's entry (SwiftPM links `main` to `FuzzConfig_main`): libFuzzer's loop.
@_cdecl("FuzzConfig_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        let path = directory + "/cfg.yaml"
        guard (try? Data(input).write(to: URL(fileURLWithPath: path))) != nil else { return }
        if let cfg = try? TrainingConfig.load(file: path, overrides: ["SEED", "3"]) {
            _ = cfg.resolvedYAML
            _ = cfg.difference(fromStored: String(decoding: input, as: UTF8.self))
        }
    }
}
