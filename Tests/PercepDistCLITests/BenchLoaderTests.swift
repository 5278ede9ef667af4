import Foundation
import XCTest

/// `percep-dist bench loader` on a small synthetic set: every planned image is delivered and the
/// rate is reported; a missing dataset is named.
final class BenchLoaderTests: XCTestCase {
    func testReportsImagesPerSecond() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("benchloader-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let synth = try CLI.run(["synth", "seg", "--out", dir.path, "--train", "6", "--val", "1", "--size", "80,120", "--seed", "1"])
        XCTAssertEqual(synth.status, 0, synth.err)
        let r = try CLI.run(["bench", "loader", "--root", dir.appendingPathComponent("ADEChallengeData2016").path, "--crop", "64",
                             "--batch", "2", "--steps", "5", "--workers", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(o["images"] as? Int, 10)
        XCTAssertGreaterThan((o["images_per_second"] as! NSNumber).doubleValue, 0)
        let missing = try CLI.run(["bench", "loader", "--root", dir.appendingPathComponent("nowhere").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("nowhere"), missing.err)
    }

    /// The instance pipeline (COCO layout) through the same loader.
    func testInstanceLoaderReportsImagesPerSecond() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("benchloader-inst-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let synth = try CLI.run(["synth", "coco", "--out", dir.path, "--images", "6", "--seed", "1", "--size", "64,80"])
        XCTAssertEqual(synth.status, 0, synth.err)
        let r = try CLI.run(["bench", "loader", "--task", "inst", "--root", dir.path, "--short-sides", "96,128", "--max-size", "256",
                             "--batch", "2", "--steps", "4", "--workers", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(o["images"] as? Int, 8)
        XCTAssertGreaterThan((o["images_per_second"] as! NSNumber).doubleValue, 0)
    }
}
