import Foundation
import TestSupport
import XCTest

/// Every command's `--json` prints JSON and nothing else on stdout (progress lines go to stderr),
/// so its output can be piped into a parser.
final class JSONOutputTests: XCTestCase {
    func assertJSONOnly(_ arguments: [String], mpi: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        let out: String, status: Int32, err: String
        if mpi {
            // mpirun merges the streams; run the binary through a shell that keeps stdout apart.
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["mpirun", "-np", "1", "--oversubscribe", ProcessRunner.percepDist.path] + arguments
            var env = ProcessInfo.processInfo.environment
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"; env["OMP_NUM_THREADS"] = "1"
            p.environment = env
            let o = Pipe(), e = Pipe()
            p.standardOutput = o; p.standardError = e
            try p.run()
            let od = o.fileHandleForReading.readDataToEndOfFile(), ed = e.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            (out, err, status) = (String(decoding: od, as: UTF8.self), String(decoding: ed, as: UTF8.self), p.terminationStatus)
        } else {
            let r = try ProcessRunner.run(ProcessRunner.percepDist, arguments)
            (out, err, status) = (r.out, r.err, r.status)
        }
        XCTAssertEqual(status, 0, "\(arguments): \(err)", file: file, line: line)
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(out.utf8)), "\(arguments): stdout is not JSON only: \(out)", file: file, line: line)
    }

    func testBenchAndLossNetCommandsPrintOnlyJSON() throws {
        try assertJSONOnly(["bench", "allreduce", "--json", "--mb", "1", "--repeats", "1", "--batch", "0"], mpi: true)
        try assertJSONOnly(["bench", "conv", "--json", "--repeats", "1", "--filter", "c1.conv1_1@128"])
        try assertJSONOnly(["bench", "lossnet", "--json", "--structure", "1,1", "--widths", "4,4", "--size", "32", "--batch", "1", "--iters", "1"])
        try assertJSONOnly(["bench", "step", "--json", "--model", "pspnet_r18", "--size", "32", "--batch", "2", "--classes", "3", "--steps", "1", "--warmup", "0"])
    }
}
