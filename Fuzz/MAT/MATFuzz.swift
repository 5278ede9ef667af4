import DepthData
import FuzzDriver

// libFuzzer target: MATLAB level-5 files as the NYU split reader reads them (`splits.mat`): the
// header, element tags, small elements, compressed (zlib) elements and numeric arrays.

/// The executable's entry (SwiftPM links `main` to `FuzzMAT_main`): libFuzzer's loop.
@_cdecl("FuzzMAT_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        if let arrays = try? MATv5.read(bytes: [UInt8](input), file: "fuzz.mat") {
            _ = arrays.values.reduce(0) { $0 + $1.values.count }
        }
    }
}
