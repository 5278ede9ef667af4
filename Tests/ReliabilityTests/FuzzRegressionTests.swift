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

    /// The probe itself, without relying on a file that happens to crash this build of libhdf5:
    /// a child that dies on a signal, or never finishes, refuses the file and the command ends
    /// with an error (PERCEP_FAULT_HDF5_PROBE makes the child do either).
    func testProbeContainsACrashingOrHangingReader() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("vgg.h5").path
        let export = try ProcessRunner.run(ProcessRunner.percepDist, ["lossnet", "export", "--structure", "1,1", "--widths", "4,4",
                                                                      "--in-channels", "3", "--out", file])
        XCTAssertEqual(export.status, 0, export.err)
        let eval = ["lossnet", "eval", "--lossnet", file, "--pred", "p.h5", "--target", "t.h5"]
        setenv("PERCEP_FAULT_HDF5_PROBE", "signal", 1)
        defer { unsetenv("PERCEP_FAULT_HDF5_PROBE") }
        try assertCleanError(eval, mentions: "reading it crashed the HDF5 library (signal 11)")
        setenv("PERCEP_FAULT_HDF5_PROBE", "hang", 1)
        setenv("PERCEP_HDF5_PROBE_TIMEOUT", "2", 1)
        defer { unsetenv("PERCEP_HDF5_PROBE_TIMEOUT") }
        try assertCleanError(eval, mentions: "reading it took longer than 2 s")
        // Without the fault the same file passes the probe (and the command stops later, at p.h5).
        unsetenv("PERCEP_FAULT_HDF5_PROBE")
        try assertCleanError(eval, mentions: "p.h5")
    }

    /// A loss-network file whose structure attribute asks for 1 099 511 625 985 convolutions in
    /// one block: building it hung. Now the description is refused before anything is built.
    func testLossNetworkFileAskingForATrillionLayers() throws {
        try assertCleanError(["lossnet", "eval", "--lossnet", try fixture("fuzz_lossnet_huge_structure"), "--pred", "p.h5", "--target", "t.h5"],
                             mentions: "structure")
    }

    /// A loss-network file whose `init` attribute is empty (the fuzzer's file had a damaged
    /// string there): parsing it indexed the first ':'-separated part of nothing and trapped, in
    /// `lossnet eval` and in `lossnet export --init ""` alike. Both are now errors naming `init`.
    func testLossNetworkWithAnEmptyInitScheme() throws {
        try assertCleanError(["lossnet", "eval", "--lossnet", try fixture("fuzz_lossnet_empty_init"), "--pred", "p.h5", "--target", "t.h5"],
                             mentions: "init")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("empty-init-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try assertCleanError(["lossnet", "export", "--structure", "1,1", "--widths", "4,4", "--init", "", "--out", out], mentions: "init")
    }

    /// Review findings of the same kind: a loss-network attribute holding 2⁶³ as an unsigned
    /// integer trapped converting to Int64, and a checkpoint whose iteration is −1 trapped when a
    /// resume turned it into a sampler position. Both files are unsealed, as hand-edited ones are.
    func testOutOfRangeCountersInFiles() throws {
        try assertCleanError(["lossnet", "eval", "--lossnet", try fixture("lossnet_huge_unsigned_channels"), "--pred", "p.h5", "--target", "t.h5"],
                             mentions: "in_channels")
        try assertCleanError(["checkpoint", "inspect", try fixture("checkpoint_negative_iteration")], mentions: "'iteration' is negative")
    }

    /// A polygon with a coordinate of 3.06·10⁶ on a 48×64 image: rasterising walked its whole
    /// boundary (43 s under the fuzzer). Coordinates are now bounded relative to the image.
    func testPolygonFarOutsideItsImage() throws {
        let gt = try XCTUnwrap(Bundle.module.url(forResource: "fuzz_coco_far_polygon", withExtension: "json", subdirectory: "Fixtures")).path
        let results = FileManager.default.temporaryDirectory.appendingPathComponent("far-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: results) }
        try Data(#"[{"image_id": 2, "category_id": 1, "score": 0.5, "segmentation": {"size": [48, 64], "counts": "nn05[1000001OO10000O100Sb1"}}]"#.utf8).write(to: results)
        try assertCleanError(["coco-eval", "--gt", gt, "--results", results.path, "--iou-type", "segm"], mentions: "beyond")
    }
}
