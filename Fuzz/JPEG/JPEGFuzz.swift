import FuzzDriver
import ImageCodecs

// libFuzzer target: JPEG decoding (every training image goes through it).
/// The executable's entry (SwiftPM links `main` to `FuzzJPEG_main`): libFuzzer's loop.
@_cdecl("FuzzJPEG_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in _ = try? JPEG.decode([UInt8](input)) }
}
