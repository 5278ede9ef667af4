import Foundation
import XCTest

/// `percep-dist synth coco`: the COCO layout on disk and the ordinary evaluator reading it.
final class SynthCommandTests: XCTestCase {
    func testWritesCOCOLayout() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synth-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try CLI.run(["synth", "coco", "--out", dir.path, "--images", "3", "--seed", "4", "--size", "64,80"])
        XCTAssertEqual(r.status, 0, r.err)
        let annotations = dir.appendingPathComponent("annotations/instances_train.json")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: annotations)) as! [String: Any]
        let images = object["images"] as! [[String: Any]]
        XCTAssertEqual(images.count, 3)
        for image in images {
            XCTAssertEqual((image["height"] as! NSNumber).intValue, 64)
            XCTAssertEqual((image["width"] as! NSNumber).intValue, 80)
            let jpeg = try Data(contentsOf: dir.appendingPathComponent("train").appendingPathComponent(image["file_name"] as! String))
            XCTAssertEqual(Array(jpeg.prefix(2)), [0xFF, 0xD8])
        }
        XCTAssertFalse((object["annotations"] as! [Any]).isEmpty)
    }

    func testBadSizeIsAMessage() throws {
        let r = try CLI.run(["synth", "coco", "--out", "/tmp/unused", "--images", "1", "--seed", "1", "--size", "64x80"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--size"), r.err)
        for trace in ["Fatal error", "Stack dump", "Current stack trace"] { XCTAssertFalse(r.err.contains(trace), r.err) }
    }
}
