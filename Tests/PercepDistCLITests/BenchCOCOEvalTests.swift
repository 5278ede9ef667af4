import Foundation
import XCTest

/// `percep-dist bench coco-eval` at a small scale: its JSON, the synthetic files it can keep, errors.
final class BenchCOCOEvalTests: XCTestCase {
    func testJSONAndSyntheticFiles() throws {
        let golden = COCOEvalCommandTests.golden.path
        guard FileManager.default.fileExists(atPath: golden) else {
            return XCTFail("golden COCO data missing: \(golden) (a copy of shared/ must sit beside the repository)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-coco-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["bench", "coco-eval", "--json", "--images", "150", "--repeats", "1", "--golden", golden,
                             "--write-synthetic", dir.path])
        XCTAssertEqual(r.status, 0, r.err)
        let object = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let synthetic = object["synthetic"] as! [String: Any], goldenTimes = object["golden"] as! [String: Any]
        XCTAssertEqual((synthetic["images"] as! NSNumber).intValue, 200)  // ⌈150 / 100⌉ copies of 100 images
        for key in ["bbox_seconds", "segm_seconds"] {
            XCTAssertGreaterThan((synthetic[key] as! NSNumber).doubleValue, 0)
            XCTAssertGreaterThan((goldenTimes[key] as! NSNumber).doubleValue, 0)
        }
        // The kept files evaluate with the ordinary command.
        let e = try CLI.run(["coco-eval", "--gt", dir.appendingPathComponent("instances.json").path,
                             "--results", dir.appendingPathComponent("results_segm.json").path, "--iou-type", "segm"])
        XCTAssertEqual(e.status, 0, e.err)
        XCTAssertEqual(e.out.split(separator: "\n").count, 12)
    }

    func testMissingGoldenIsAMessage() throws {
        let r = try CLI.run(["bench", "coco-eval", "--golden", "/nonexistent/golden", "--images", "100"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("/nonexistent/golden"), r.err)
        for trace in ["Fatal error", "Stack dump", "Current stack trace"] { XCTAssertFalse(r.err.contains(trace), r.err) }
    }
}
