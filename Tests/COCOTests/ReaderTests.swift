import XCTest
@testable import COCO

/// The instances and results readers, the results writer and their errors.
final class ReaderTests: XCTestCase {
    func testGoldenGroundTruth() throws {
        let gt = try COCODataset(contentsOf: try Golden.path("instances_val2014_100.json"))
        XCTAssertEqual(gt.images.count, 100)
        XCTAssertEqual(gt.categories.count, 80)
        XCTAssertEqual(gt.annotations.count, 839)
        // Non-contiguous ids ↔ contiguous indices in ascending id order: 11 → 10, 13 → 11, 90 → 79.
        XCTAssertEqual(gt.categoryIndex(id: 13), 11)
        XCTAssertEqual(gt.categoryID(index: 79), 90)
        XCTAssertNil(gt.categoryIndex(id: 12))
        let crowd = gt.annotations.filter(\.isCrowd)
        XCTAssertEqual(crowd.count, 9)
        for a in crowd {
            guard case .rle(let rle)? = a.segmentation else { return XCTFail("crowd annotation \(a.id) is not RLE") }
            let image = gt.image(id: a.imageID)!
            XCTAssertEqual([rle.height, rle.width], [image.height, image.width])
        }
    }

    func testResultsBranchesAsLoadRes() throws {
        let gt = try COCODataset(contentsOf: try Golden.path("instances_val2014_100.json"))
        let boxes = try COCOResults.load(contentsOf: try Golden.path("instances_val2014_fakebbox100_results.json"), groundTruth: gt)
        XCTAssertEqual(boxes.count, 734)
        XCTAssertEqual(boxes[0].id, 1)
        XCTAssertEqual(boxes[0].area, boxes[0].bbox.width * boxes[0].bbox.height)
        let b = boxes[0].bbox
        XCTAssertEqual(boxes[0].segmentation, .polygons([[b.x, b.y, b.x, b.y + b.height, b.x + b.width, b.y + b.height, b.x + b.width, b.y]]))
        let masks = try COCOResults.load(contentsOf: try Golden.path("instances_val2014_fakesegm100_results.json"), groundTruth: gt)
        guard case .rle(let rle)? = masks[0].segmentation else { return XCTFail("segm result is not RLE") }
        XCTAssertEqual(masks[0].area, Double(rle.area))
        XCTAssertEqual(masks[0].bbox, rle.boundingBox)
    }

    func testWriterRoundTrip() throws {
        let gt = try COCODataset(contentsOf: try Golden.path("instances_val2014_100.json"))
        let image = gt.images[0]
        let mask = try RLE(polygon: [10, 10, 60.5, 12, 40, 80.25], height: image.height, width: image.width)
        let detections = [COCODetection(imageID: image.id, categoryIndex: 11, score: 0.7, bbox: BoundingBox(x: 1.5, y: 2, width: 30, height: 40.25), mask: mask)]
        let data = try COCOResults.jsonData(detections, dataset: gt)
        let back = try COCOResults.load(jsonData: data, groundTruth: gt)
        XCTAssertEqual(back.count, 1)
        XCTAssertEqual(back[0].categoryID, 13)  // index 11 ↦ COCO id 13
        XCTAssertEqual(back[0].bbox, BoundingBox(x: 1.5, y: 2, width: 30, height: 40.25))
        XCTAssertEqual(back[0].score, 0.7)
        XCTAssertEqual(back[0].segmentation, .rle(mask))
    }

    func gtJSON(annotation: String, images: String = #"[{"id": 1, "height": 10, "width": 10}]"#) -> Data {
        Data(#"{"images": \#(images), "categories": [{"id": 5, "name": "cat"}], "annotations": [\#(annotation)]}"#.utf8)
    }

    func assertError(_ body: @autoclosure () throws -> Any, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is COCOError, "not a COCOError: \(text)", file: file, line: line)
            for w in words { XCTAssertTrue(text.contains(w), "'\(w)' not in: \(text)", file: file, line: line) }
        }
    }

    func testBadInputErrorsNameTheItem() throws {
        let ok = #"{"id": 7, "image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0, "segmentation": [[1, 1, 3, 1, 3, 3]]}"#
        XCTAssertNoThrow(try COCODataset(jsonData: gtJSON(annotation: ok)))
        assertError(try COCODataset(jsonData: gtJSON(annotation: #"{"id": 7, "image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2]}"#)),
                    mentions: ["annotation id 7", "area"])
        assertError(try COCODataset(jsonData: gtJSON(annotation: ok.replacingOccurrences(of: #""image_id": 1"#, with: #""image_id": 2"#))),
                    mentions: ["annotation id 7", "image id 2"])
        assertError(try COCODataset(jsonData: gtJSON(annotation: ok.replacingOccurrences(of: #""category_id": 5"#, with: #""category_id": 6"#))),
                    mentions: ["annotation id 7", "category id 6"])
        let badRLE = #"{"id": 8, "image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 1, "segmentation": {"size": [10, 10], "counts": "5220~03"}}"#
        assertError(try COCODataset(jsonData: gtJSON(annotation: badRLE)), mentions: ["annotation id 8", "malformed RLE", "'~'"])
        let shortRLE = #"{"id": 9, "image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 1, "segmentation": {"size": [10, 10], "counts": [10, 20]}}"#
        assertError(try COCODataset(jsonData: gtJSON(annotation: shortRLE)), mentions: ["annotation id 9", "100 pixels"])
        assertError(try COCODataset(jsonData: Data(#"{"images": [{"id": 1,, "height": 3}]}"#.utf8), path: "x.json"),
                    mentions: ["x.json", "malformed JSON"])
        assertError(try COCODataset(contentsOf: "/nonexistent/instances.json"), mentions: ["/nonexistent/instances.json", "no such file"])

        // A two-point polygon is refused when it is rasterised (segm), naming the annotation.
        let line = ok.replacingOccurrences(of: "[[1, 1, 3, 1, 3, 3]]", with: "[[1, 1, 3, 3]]")
        let gt = try COCODataset(jsonData: gtJSON(annotation: line))
        assertError(try gt.mask(of: gt.annotations[0]), mentions: ["annotation id 7", "2 point(s)"])
        assertError(try COCOEvaluator(groundTruth: gt, results: [], iouType: .segm).evaluate(), mentions: ["annotation id 7"])

        // Results referring to unknown images or categories.
        assertError(try COCOResults.load(jsonData: Data(#"[{"image_id": 3, "category_id": 5, "bbox": [0, 0, 1, 1], "score": 1}]"#.utf8), groundTruth: gt),
                    mentions: ["results[0]", "image id 3"])
        assertError(try COCOResults.load(jsonData: Data(#"[{"image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1], "score": 1}, {"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1], "score": 1}]"#.utf8), groundTruth: gt),
                    mentions: ["results[1]", "category id 4"])
        assertError(try COCOResults.load(jsonData: Data(#"[{"image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}]"#.utf8), groundTruth: gt),
                    mentions: ["results[0]", "score"])
    }
}

/// The JSON parser behind the readers: exact numbers, escapes, byte offsets of errors.
final class JSONParserTests: XCTestCase {
    func testNumbersAreCorrectlyRounded() throws {
        let text = "[0.2542372881355932, 321.02, -0.5, 1e-3, 12345678901234567890, 0.1, 2.5E+2, 0, -0, 0.30000000000000004]"
        guard case .array(let items) = try JSONParser.parse(Data(text.utf8)) else { return XCTFail("not a list") }
        let values = items.map { v -> Double in if case .number(let d) = v { return d } else { return .nan } }
        XCTAssertEqual(values, [0.2542372881355932, 321.02, -0.5, 1e-3, 12345678901234567890, 0.1, 250, 0, -0.0, 0.30000000000000004])
    }

    func testStringsAndOffsets() throws {
        let v = try JSONParser.parse(Data(#"{"a": "x\"y\u00e9\n", "b": [true, false, null]}"#.utf8))
        guard case .string(let s)? = v["a"] else { return XCTFail("no string") }
        XCTAssertEqual(s, "x\"yé\n")
        for (text, offset) in [(#"{"a": [1, 2}"#, 11), ("[1, 2", 5), (#"{"a": tru}"#, 6), ("[1] x", 4)] {
            XCTAssertThrowsError(try JSONParser.parse(Data(text.utf8)), text) { error in
                XCTAssertEqual((error as? JSONSyntaxError)?.offset, offset, "\(text): \(error)")
            }
        }
    }
}
