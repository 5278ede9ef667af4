import Foundation
import XCTest

/// `percep-dist coco-eval` on the golden COCO excerpt (`<repo>/../shared/data/coco-val2014-100`).
final class COCOEvalCommandTests: XCTestCase {
    /// Tests/PercepDistCLITests/<file> → repository root three levels up; shared/ sits beside it.
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data/coco-val2014-100")

    func goldenPath(_ name: String) throws -> String {
        let url = Self.golden.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("golden COCO data missing: \(url.path) (a copy of shared/ must sit beside the repository)")
            throw CocoCLIError.missing
        }
        return url.path
    }

    func testBBoxSummaryLinesAndJSON() throws {
        let gt = try goldenPath("instances_val2014_100.json"), res = try goldenPath("instances_val2014_fakebbox100_results.json")
        let text = try CLI.run(["coco-eval", "--gt", gt, "--results", res, "--iou-type", "bbox"])
        XCTAssertEqual(text.status, 0, text.err)
        let lines = text.out.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 12)
        XCTAssertEqual(lines.first, " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505")
        XCTAssertEqual(lines.last, " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.564")

        let json = try CLI.run(["coco-eval", "--gt", gt, "--results", res, "--iou-type", "bbox", "--json"])
        XCTAssertEqual(json.status, 0, json.err)
        let object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as! [String: Any]
        let stats = (object["stats"] as! [NSNumber]).map { Double($0.stringValue)! }
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: try goldenPath("expected_stats.json")))) as! [String: Any]
        XCTAssertEqual(stats, (expected["bbox"] as! [NSNumber]).map { Double($0.stringValue)! })
        let perCategory = object["per_category"] as! [String: NSNumber]
        XCTAssertEqual(perCategory.count, 80)
        XCTAssertNotNil(perCategory["person"])
    }

    func testErrorsAreMessagesNotCrashes() throws {
        let gt = try goldenPath("instances_val2014_100.json")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("coco-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.json"), unknown = dir.appendingPathComponent("unknown.json")
        try Data(#"[{"image_id": 42, "category_id": 5, "bbox": [1, 2, 3"#.utf8).write(to: bad)
        try Data(#"[{"image_id": 42, "category_id": 12, "bbox": [1, 2, 3, 4], "score": 0.5}]"#.utf8).write(to: unknown)
        for (args, words) in [
            (["--gt", "/nonexistent/gt.json", "--results", bad.path, "--iou-type", "bbox"], "/nonexistent/gt.json"),
            (["--gt", gt, "--results", bad.path, "--iou-type", "bbox"], "malformed JSON"),
            (["--gt", gt, "--results", unknown.path, "--iou-type", "bbox"], "category id 12"),
            (["--gt", gt, "--results", unknown.path, "--iou-type", "keypoints"], "bbox or segm"),
        ] {
            let r = try CLI.run(["coco-eval"] + args)
            XCTAssertNotEqual(r.status, 0, "expected failure for \(args)")
            XCTAssertTrue(r.err.contains(words), "stderr was: \(r.err)")
            for trace in ["Fatal error", "Stack dump", "Current stack trace"] { XCTAssertFalse(r.err.contains(trace), r.err) }
        }
    }
}

enum CocoCLIError: Error { case missing }
