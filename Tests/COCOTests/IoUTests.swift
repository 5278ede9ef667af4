import XCTest
@testable import COCO

/// Box and mask IoU, including the crowd rule.
final class IoUTests: XCTestCase {
    func testBoxIoUAndCrowd() {
        let d = BoundingBox(x: 2, y: 2, width: 4, height: 4), g = BoundingBox(x: 0, y: 0, width: 4, height: 4)
        // Intersection 2×2 = 4, union 16 + 16 − 4 = 28; against a crowd the union is the det's 16.
        XCTAssertEqual(d.iou(g, gtIsCrowd: false), 4.0 / 28.0)
        XCTAssertEqual(d.iou(g, gtIsCrowd: true), 0.25)
        // Touching boxes do not overlap.
        XCTAssertEqual(BoundingBox(x: 4, y: 0, width: 2, height: 2).iou(g, gtIsCrowd: false), 0)
        XCTAssertEqual(boxIoU([d, g], [g], isCrowd: [false]), [4.0 / 28.0, 1])
    }

    func testMaskIoUAgreesWithBoxes() throws {
        let d = try RLE(box: BoundingBox(x: 2, y: 2, width: 4, height: 4), height: 10, width: 10)
        let g = try RLE(box: BoundingBox(x: 0, y: 0, width: 4, height: 4), height: 10, width: 10)
        XCTAssertEqual(d.iou(g, gtIsCrowd: false), 4.0 / 28.0)
        XCTAssertEqual(d.iou(g, gtIsCrowd: true), 0.25)
        // Different sizes with overlapping boxes give −1; disjoint masks give 0.
        let other = try RLE(box: BoundingBox(x: 0, y: 0, width: 4, height: 4), height: 10, width: 11)
        XCTAssertEqual(d.iou(other, gtIsCrowd: false), -1)
        let far = try RLE(box: BoundingBox(x: 7, y: 7, width: 2, height: 2), height: 10, width: 10)
        XCTAssertEqual(g.iou(far, gtIsCrowd: false), 0)
    }

    func testIoUAgainstPycocotools() throws {
        let v = try Golden.maskVectors()
        for p in v["pairs"] as! [[String: Any]] {
            let h = p["h"] as! Int, w = p["w"] as! Int
            let a = try RLE(compressedCounts: p["a"] as! String, height: h, width: w)
            let b = try RLE(compressedCounts: p["b"] as! String, height: h, width: w)
            XCTAssertEqual(a.iou(b, gtIsCrowd: (p["crowd"] as! Int) != 0), jsonDouble(p["iou"] as! NSNumber))
        }
        for p in v["box_ious"] as! [[String: Any]] {
            let d = (p["dt"] as! [NSNumber]).map(jsonDouble), g = (p["gt"] as! [NSNumber]).map(jsonDouble)
            let iou = BoundingBox(x: d[0], y: d[1], width: d[2], height: d[3])
                .iou(BoundingBox(x: g[0], y: g[1], width: g[2], height: g[3]), gtIsCrowd: (p["crowd"] as! Int) != 0)
            XCTAssertEqual(iou, jsonDouble(p["iou"] as! NSNumber), "dt \(d) gt \(g)")
        }
    }
}
