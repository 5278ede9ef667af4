import COCO
import Foundation
import XCTest

/// Zero-area boxes (a degenerate ground-truth box, degenerate detections) are accepted by
/// pycocotools; the evaluator must handle them the same way.
final class ZeroAreaTests: XCTestCase {
    func testZeroAreaBoxesScoreAsPycocotools() throws {
        let gt = Data("""
        {"images":[{"id":1,"width":100,"height":80,"file_name":"a.jpg"}],"categories":[{"id":5,"name":"thing"}],
        "annotations":[{"id":1,"image_id":1,"category_id":5,"bbox":[10,10,0,20],"area":0,"iscrowd":0,"segmentation":[[10,10,10,30,10,30]]},
        {"id":2,"image_id":1,"category_id":5,"bbox":[30,30,20,20],"area":400,"iscrowd":0,"segmentation":[[30,30,50,30,50,50,30,50]]}]}
        """.utf8)
        let results = Data("""
        [{"image_id":1,"category_id":5,"bbox":[10,10,0,20],"score":0.9},{"image_id":1,"category_id":5,"bbox":[31,31,20,20],"score":0.8},
        {"image_id":1,"category_id":5,"bbox":[0,0,0,0],"score":0.5}]
        """.utf8)
        let dataset = try COCODataset(jsonData: gt)
        let detections = try COCOResults.load(jsonData: results, groundTruth: dataset)
        let stats = try COCOEvaluator(groundTruth: dataset, results: detections, iouType: .bbox).evaluate().stats
        // pycocotools 2.0.11 on the same two files.
        let expected = [0.17673267326732672, 0.2524752475247525, 0.2524752475247525, 0.17673267326732672, -1.0, -1.0,
                        0.0, 0.35, 0.35, 0.35, -1.0, -1.0]
        XCTAssertEqual(stats.count, 12)
        for (a, b) in zip(stats, expected) { XCTAssertEqual(a, b, accuracy: 1e-12) }
    }
}
