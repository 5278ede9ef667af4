import Foundation

/// libFuzzer's driver entry (from the runtime `-sanitize=fuzzer` links): runs the fuzzing loop
/// with the given callback and returns libFuzzer's exit code.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) private var target: ((UnsafeRawBufferPointer) -> Void)?

/// Runs libFuzzer over `body` (one input per call, any error swallowed by the body; crashes,
/// sanitizer reports, hangs and memory blow-ups are what libFuzzer reports), then exits with its
/// code. SwiftPM points `main` at each executable's `<Module>_main`, so libFuzzer's own `main`
/// is never linked: the fuzz targets define that symbol and call this driver.
public func runFuzzer(_ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
    target = body
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    let code = withUnsafeMutablePointer(to: &argv) { argvPointer in
        LLVMFuzzerRunDriver(&argc, argvPointer) { data, size in LLVMFuzzerTestOneInput(data, size) }
    }
    exit(code)
}

/// The symbol libFuzzer's runtime refers to: one input through the registered target.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    target?(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
