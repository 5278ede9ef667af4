import Foundation
import TestSupport
import XCTest

/// Inputs libFuzzer found (tools/fuzz.sh, docs/reliability.md), kept as regression tests: each
/// must end in a clear error, quickly, without a signal.
final class FuzzRegressionTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "h5", subdirectory: "Fixtures")).path
    }

    func assertCleanError(_ arguments: [String], mentions text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try ProcessRunner.runReportingSignals(ProcessRunner.percepDist, arguments, timeout: 60)
        XCTAssertFalse(r.signalled, "\(arguments): signal \(r.status)\n\(r.err)", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "\(arguments)", file: file, line: line)
        XCTAssertLessThan(r.seconds, 30, "\(arguments) took \(r.seconds) s", file: file, line: line)
        XCTAssertTrue(r.err.contains(text), "\(arguments): \(r.err)", file: file, line: line)
    }

    /// A checkpoint whose dense link table is corrupted: under AddressSanitizer libhdf5 1.10 frees
    /// a wild pointer in H5G__link_release_table while listing /model. percep-dist refuses it.
    func testCheckpointWithACorruptedLinkTable() throws {
        try assertCleanError(["checkpoint", "inspect", try fixture("fuzz_checkpoint_link_table")], mentions: "fuzz_checkpoint_link_table.h5")
    }

    /// A loss-network file whose structure attribute asks for 1 099 511 625 985 convolutions in
    /// one block: building it hung. Now the description is refused before anything is built.
    func testLossNetworkFileAskingForATrillionLayers() throws {
        try assertCleanError(["lossnet", "eval", "--lossnet", try fixture("fuzz_lossnet_huge_structure"), "--pred", "p.h5", "--target", "t.h5"],
                             mentions: "structure")
    }
}
