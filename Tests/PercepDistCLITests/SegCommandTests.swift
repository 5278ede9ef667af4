import Foundation
import ImageCodecs
import XCTest

/// `percep-dist eval-seg --pred-dir … --gt-dir …` and `percep-dist synth seg`.
final class SegCommandTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("segcli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("pred"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("gt"), withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ relative: String, _ values: [UInt8], height: Int = 2, width: Int = 2, palette: Bool = false) throws {
        let png = try PNG.encode(GreyImage(height: height, width: width, pixels: values), palette: palette ? PNG.vocPalette : nil)
        try Data(png).write(to: dir.appendingPathComponent(relative))
    }

    func args(_ extra: [String]) -> [String] {
        ["eval-seg", "--pred-dir", dir.appendingPathComponent("pred").path, "--gt-dir", dir.appendingPathComponent("gt").path] + extra
    }

    func testJSONMatchesHandComputedIoU() throws {
        try write("gt/a.png", [0, 1, 1, 2]); try write("pred/a.png", [0, 1, 2, 2])
        try write("gt/b.png", [2, 255, 0, 0], palette: true); try write("pred/b.png", [2, 0, 0, 1])
        let r = try CLI.run(args(["--num-classes", "4", "--json"]))
        XCTAssertEqual(r.status, 0, r.err)
        let object = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let iou = object["IoU"] as! [Any]
        XCTAssertEqual(iou.count, 4)
        // Class 0: I 2, U 3; class 1: I 1, U 3; class 2: I 2, U 3; class 3 absent everywhere: null.
        XCTAssertEqual((iou[0] as! NSNumber).doubleValue, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual((iou[1] as! NSNumber).doubleValue, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual((iou[2] as! NSNumber).doubleValue, 2.0 / 3, accuracy: 1e-12)
        XCTAssertTrue(iou[3] is NSNull)
        XCTAssertEqual((object["mIoU"] as! NSNumber).doubleValue, 5.0 / 9, accuracy: 1e-12)
        XCTAssertEqual((object["aAcc"] as! NSNumber).doubleValue, 5.0 / 7, accuracy: 1e-12)

        // reduce_zero_label on the annotations only: gt 0 and 255 ignored, 1 → 0, 2 → 1.
        let reduced = try CLI.run(args(["--num-classes", "2", "--reduce-zero-label", "--json"]))
        XCTAssertEqual(reduced.status, 0, reduced.err)
        let o2 = try JSONSerialization.jsonObject(with: Data(reduced.out.utf8)) as! [String: Any]
        // Scored pixels (gt → pred): a: 1→1 (label 0, pred 1), 1→2, 2→2 (label 1, pred 2 dropped); b: 2→2.
        // Class 0: I 0, P 0, L 2 → IoU 0; class 1: I 0, P 0, L 2 → 0. aAcc 0.
        XCTAssertEqual((o2["IoU"] as! [NSNumber]).map(\.doubleValue), [0, 0])
        XCTAssertEqual((o2["aAcc"] as! NSNumber).doubleValue, 0)

        let table = try CLI.run(args(["--num-classes", "4"]))
        XCTAssertEqual(table.status, 0, table.err)
        XCTAssertTrue(table.out.contains("mIoU 55.56"), table.out)
        XCTAssertTrue(table.out.contains("nan"), table.out)
    }

    func testMismatchedStemsAndSizesNameTheFiles() throws {
        try write("gt/a.png", [0, 1, 1, 2]); try write("pred/a.png", [0, 1, 2, 2])
        try write("gt/b.png", [0, 1, 1, 2])
        let missing = try CLI.run(args(["--num-classes", "3", "--json"]))
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains(dir.appendingPathComponent("gt/b.png").path) && missing.err.contains("no prediction"), missing.err)

        try write("pred/b.png", [0, 1, 1, 2, 0, 0], height: 2, width: 3)
        let size = try CLI.run(args(["--num-classes", "3", "--json"]))
        XCTAssertNotEqual(size.status, 0)
        XCTAssertTrue(size.err.contains(dir.appendingPathComponent("pred/b.png").path) && size.err.contains("2×3"), size.err)
        for trace in ["Fatal error", "Stack dump"] { XCTAssertFalse(size.err.contains(trace), size.err) }

        let noDirs = try CLI.run(["eval-seg", "--num-classes", "3"])
        XCTAssertNotEqual(noDirs.status, 0)
        XCTAssertTrue(noDirs.err.contains("--pred-dir"), noDirs.err)
    }

    func testSynthSegWritesADELayout() throws {
        let out = dir.appendingPathComponent("synth").path
        let r = try CLI.run(["synth", "seg", "--out", out, "--train", "3", "--val", "2", "--size", "48,64", "--seed", "9"])
        XCTAssertEqual(r.status, 0, r.err)
        let root = out + "/ADEChallengeData2016"
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: root + "/images/training/ADE_train_00000003.jpg"))
        XCTAssertEqual(try JPEG.decode([UInt8](jpeg)).width, 64)
        let png = try Data(contentsOf: URL(fileURLWithPath: root + "/annotations/validation/ADE_val_00000002.png"))
        XCTAssertEqual(try PNG.decodeIndices([UInt8](png)).height, 48)
        let classes = try String(contentsOfFile: root + "/classes.txt", encoding: .utf8)
        XCTAssertEqual(classes.split(separator: "\n").first, "sky")
        // The written annotations score perfectly against themselves.
        let self_ = try CLI.run(["eval-seg", "--pred-dir", root + "/annotations/training", "--gt-dir", root + "/annotations/training",
                                 "--num-classes", "11", "--json"])
        XCTAssertEqual(self_.status, 0, self_.err)
        XCTAssertEqual(((try JSONSerialization.jsonObject(with: Data(self_.out.utf8)) as! [String: Any])["aAcc"] as! NSNumber).doubleValue, 1)
    }
}
