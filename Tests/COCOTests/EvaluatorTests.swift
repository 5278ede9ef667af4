import XCTest
@testable import COCO

/// The evaluator against pycocotools 2.0.11 on the golden val2014 excerpt, plus small hand cases.
final class EvaluatorTests: XCTestCase {
    func expected(_ kind: String) throws -> [Double] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try Golden.path("expected_stats.json")))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (json[kind] as! [NSNumber]).map(jsonDouble)
    }

    func evaluate(_ results: String, _ type: IoUType) throws -> COCOEvaluation {
        let gt = try COCODataset(contentsOf: try Golden.path("instances_val2014_100.json"))
        let res = try COCOResults.load(contentsOf: try Golden.path(results), groundTruth: gt)
        return try COCOEvaluator(groundTruth: gt, results: res, iouType: type).evaluate()
    }

    func check(_ results: String, _ type: IoUType) throws {
        let e = try evaluate(results, type)
        let want = try expected(type.rawValue)
        XCTAssertEqual(e.stats.count, 12)
        let diff = zip(e.stats, want).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(diff, 1e-12, "\(type): got \(e.stats), expected \(want)")
        // In practice the numbers are bit-identical (same operation order, numpy's pairwise mean).
        XCTAssertEqual(e.stats, want, "\(type) stats are within 1e-12 but not bit-identical (max diff \(diff))")
        // Per-category AP against pycocotools' precision[:, :, k, all, 100] (fixture).
        let perCategory = try Golden.maskVectors()["per_category_ap"] as! [String: [String: NSNumber]]
        let wantPer = perCategory[type.rawValue]!
        XCTAssertEqual(wantPer.count, e.categories.count)
        for (category, ap) in zip(e.categories, e.perCategoryAP) {
            XCTAssertEqual(ap, jsonDouble(wantPer[String(category.id)]!), "category \(category.id)")
        }
    }

    func testGoldenBBoxStats() throws { try check("instances_val2014_fakebbox100_results.json", .bbox) }
    func testGoldenSegmStats() throws { try check("instances_val2014_fakesegm100_results.json", .segm) }

    /// Box results in segm mode: each box becomes the polygon loadRes builds, rasterised.
    func testGoldenBBoxResultsAsMasks() throws {
        let e = try evaluate("instances_val2014_fakebbox100_results.json", .segm)
        let want = (try Golden.maskVectors()["bbox_results_as_segm_stats"] as! [NSNumber]).map(jsonDouble)
        XCTAssertEqual(e.stats, want)
    }

    func testSummaryLinesFormat() throws {
        let lines = COCOSummary.lines([0.5045806987249628] + [Double](repeating: -1, count: 11))
        XCTAssertEqual(lines[0], " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505")
        XCTAssertEqual(lines[1], " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = -1.000")
        XCTAssertEqual(lines[6], " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = -1.000")
        XCTAssertEqual(lines[10], " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000")
    }

    func testThresholdsMatchNumpyBits() {
        XCTAssertEqual(COCOEvalParams.iouThresholds[8], 0.8999999999999999)
        XCTAssertEqual(COCOEvalParams.recallThresholds[35], 0.35000000000000003)
        XCTAssertEqual(COCOEvalParams.iouThresholds[0], 0.5)
        XCTAssertEqual(COCOEvalParams.iouThresholds[5], 0.75)
    }

    /// One image, one category: a perfect detection, a duplicate, and a detection on a crowd region.
    func testCrowdAndDuplicateHandCase() throws {
        let gt = try COCODataset(
            images: [COCOImage(id: 1, height: 100, width: 100)],
            categories: [COCOCategory(id: 3, name: "car")],
            annotations: [
                COCOAnnotation(id: 1, imageID: 1, categoryID: 3, bbox: BoundingBox(x: 0, y: 0, width: 40, height: 40), area: 1600),
                COCOAnnotation(id: 2, imageID: 1, categoryID: 3, bbox: BoundingBox(x: 50, y: 50, width: 50, height: 50), area: 2500,
                               isCrowd: true),
            ])
        let res = [
            COCOAnnotation(id: 1, imageID: 1, categoryID: 3, bbox: BoundingBox(x: 0, y: 0, width: 40, height: 40), area: 1600, score: 0.9),
            COCOAnnotation(id: 2, imageID: 1, categoryID: 3, bbox: BoundingBox(x: 1, y: 1, width: 40, height: 40), area: 1600, score: 0.8),
            COCOAnnotation(id: 3, imageID: 1, categoryID: 3, bbox: BoundingBox(x: 60, y: 60, width: 10, height: 10), area: 100, score: 0.95),
        ]
        let e = try COCOEvaluator(groundTruth: gt, results: res, iouType: .bbox).evaluate()
        // The crowd detection is ignored (IoU 1 against the crowd, union = its own area); the duplicate
        // is a false positive after the true positive, so precision is 1 up to recall 1: AP = 1.
        // pycocotools divides by TP + FP + eps, so a perfect AP is 1/(1+eps) rather than 1.
        XCTAssertEqual(e.stats[0], 1, accuracy: 1e-15)
        XCTAssertEqual(e.stats[8], 1)
        // No small objects at all → −1; the one object is medium (1600 px²).
        XCTAssertEqual(e.stats[3], -1)
        XCTAssertEqual(e.stats[4], 1, accuracy: 1e-15)
        XCTAssertEqual(e.perCategoryAP.count, 1)
        XCTAssertEqual(e.perCategoryAP[0], 1, accuracy: 1e-15)
    }

    func testNoDetectionsGiveZeroNotCrash() throws {
        let gt = try COCODataset(contentsOf: try Golden.path("instances_val2014_100.json"))
        let e = try COCOEvaluator(groundTruth: gt, results: [], iouType: .segm).evaluate()
        XCTAssertEqual(e.stats[0], 0)
        XCTAssertEqual(e.stats[8], 0)
    }
}
