import XCTest
@testable import COCO

/// `COCOReplica`: the golden excerpt enlarged with fresh ids, as `bench coco-eval` uses it.
final class ReplicationTests: XCTestCase {
    func goldenData(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: try Golden.path(name))) }

    /// 50 copies: the 5000-image / ~42k-annotation scale of val2017 that the reader must handle.
    func testFiftyCopiesLoadWithFreshIDs() throws {
        let gtData = try goldenData("instances_val2014_100.json")
        let replica = try COCOReplica(groundTruth: gtData, results: [try goldenData("instances_val2014_fakesegm100_results.json")],
                                      copies: 50)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let gt = try COCODataset(jsonData: replica.groundTruth)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        print("parsed 5000 images / \(gt.annotations.count) annotations in \(seconds) s")
        XCTAssertEqual(gt.images.count, 5000)
        XCTAssertEqual(replica.imageCount, 5000)
        XCTAssertEqual(gt.annotations.count, 839 * 50)
        XCTAssertEqual(replica.annotationCount, 839 * 50)
        XCTAssertEqual(Set(gt.images.map(\.id)).count, 5000)  // the dataset init also refuses duplicates
        XCTAssertEqual(gt.categories.count, 80)

        // Copy 0 keeps the source's ids and fields; a later copy differs only in its ids.
        let source = try COCODataset(jsonData: gtData)
        XCTAssertEqual(Array(gt.annotations.prefix(839)), source.annotations)
        let last = gt.annotations[839 * 49], first = source.annotations[0]
        XCTAssertNotEqual(last.id, first.id)
        XCTAssertNotEqual(last.imageID, first.imageID)
        XCTAssertEqual(last.segmentation, first.segmentation)
        XCTAssertEqual(last.bbox, first.bbox)
        XCTAssertEqual(gt.image(id: last.imageID)?.fileName, source.image(id: first.imageID)?.fileName)

        let results = try COCOResults.load(jsonData: replica.results[0], groundTruth: gt)
        let sourceResults = try COCOResults.load(jsonData: try goldenData("instances_val2014_fakesegm100_results.json"),
                                                 groundTruth: source)
        XCTAssertEqual(results.count, sourceResults.count * 50)
    }

    /// Replicated images are evaluated like the originals: per-image matching is the same, so AP
    /// changes only through score ties across copies; a single copy reproduces the golden stats.
    func testOneCopyIsTheSourceAndCopiesEvaluate() throws {
        let gtData = try goldenData("instances_val2014_100.json"), resData = try goldenData("instances_val2014_fakebbox100_results.json")
        let one = try COCOReplica(groundTruth: gtData, results: [resData], copies: 1)
        let gt1 = try COCODataset(jsonData: one.groundTruth)
        let e1 = try COCOEvaluator(groundTruth: gt1, results: try COCOResults.load(jsonData: one.results[0], groundTruth: gt1),
                                   iouType: .bbox).evaluate()
        let source = try COCODataset(jsonData: gtData)
        let e0 = try COCOEvaluator(groundTruth: source, results: try COCOResults.load(jsonData: resData, groundTruth: source),
                                   iouType: .bbox).evaluate()
        XCTAssertEqual(e1.stats, e0.stats)

        let three = try COCOReplica(groundTruth: gtData, results: [resData], copies: 3)
        let gt3 = try COCODataset(jsonData: three.groundTruth)
        let e3 = try COCOEvaluator(groundTruth: gt3, results: try COCOResults.load(jsonData: three.results[0], groundTruth: gt3),
                                   iouType: .bbox).evaluate()
        for (a, b) in zip(e3.stats, e0.stats) { XCTAssertEqual(a, b, accuracy: 0.01) }
    }

    func testBadSourcesAreErrors() throws {
        XCTAssertThrowsError(try COCOReplica(groundTruth: Data("{}".utf8), results: [], copies: 2, groundTruthPath: "gt.json")) {
            XCTAssertTrue("\($0)".contains("gt.json"), "\($0)")
        }
        XCTAssertThrowsError(try COCOReplica(groundTruth: Data("[1,".utf8), results: [], copies: 2)) {
            XCTAssertTrue("\($0)".contains("malformed JSON"), "\($0)")
        }
        let gt = Data(#"{"images": [{"id": 1}], "annotations": []}"#.utf8)
        XCTAssertThrowsError(try COCOReplica(groundTruth: gt, results: [Data("{}".utf8)], copies: 2, resultsPaths: ["r.json"])) {
            XCTAssertTrue("\($0)".contains("r.json"), "\($0)")
        }
        XCTAssertThrowsError(try COCOReplica(groundTruth: gt, results: [], copies: 0))
        XCTAssertThrowsError(try COCOReplica(groundTruth: Data(#"{"images": [{"name": 1}], "annotations": []}"#.utf8), results: [], copies: 2)) {
            XCTAssertTrue("\($0)".contains("images[0]"), "\($0)")
        }
    }

    func testWriterRoundTripsThroughTheParser() throws {
        let text = #"{"a": [1, -2, 0.1, 1e300, -0.0, 2.5], "s": "q\"\\\n\u0001é", "t": true, "n": null}"#
        var w = JSONWriter()
        w.write(try JSONParser.parse(Data(text.utf8)))
        let back = try JSONParser.parse(Data(w.bytes))
        guard case .array(let numbers)? = back["a"], case .string(let s)? = back["s"] else { return XCTFail("shape lost") }
        XCTAssertEqual(numbers.map { v -> Double in if case .number(let d) = v { return d } else { return .nan } }, [1, -2, 0.1, 1e300, -0.0, 2.5])
        XCTAssertEqual(s, "q\"\\\n\u{1}é")
        XCTAssertTrue(String(decoding: w.bytes, as: UTF8.self).contains("[1,-2,0.1,"))
    }
}
