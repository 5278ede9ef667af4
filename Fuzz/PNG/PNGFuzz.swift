import FuzzDriver
import ImageCodecs

// libFuzzer target: PNG decoding in every mode the data sets use.
/// The executable's entry (SwiftPM links `main` to `FuzzPNG_main`): libFuzzer's loop.
@_cdecl("FuzzPNG_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        let bytes = [UInt8](input)
        _ = try? PNG.info(bytes)
        _ = try? PNG.decodeRGB(bytes)
        _ = try? PNG.decodeGrey(bytes)
        _ = try? PNG.decodeIndices(bytes)
        _ = try? PNG.decodeGrey16(bytes)
    }
}
