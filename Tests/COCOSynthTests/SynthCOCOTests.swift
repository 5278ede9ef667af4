import XCTest
import COCO
import ImageCodecs
@testable import COCOSynth

/// JPEG through libjpeg-turbo, and `SynthCOCO` sets read back with the COCO reader and evaluator.
final class JPEGTests: XCTestCase {
    func testRoundTripKeepsSizeAndApproximatePixels() throws {
        let h = 37, w = 53  // odd sizes: partial MCUs at the right and bottom edges
        var pixels = [UInt8](repeating: 0, count: h * w * 3)
        for y in 0..<h {
            for x in 0..<w {
                pixels[3 * (y * w + x)] = UInt8(x * 255 / (w - 1))
                pixels[3 * (y * w + x) + 1] = UInt8(y * 255 / (h - 1))
                pixels[3 * (y * w + x) + 2] = 128
            }
        }
        let image = try RGBImage(height: h, width: w, pixels: pixels)
        let jpeg = try JPEG.encode(image, quality: 95)
        XCTAssertEqual(Array(jpeg.prefix(2)), [0xFF, 0xD8])  // SOI marker
        let back = try JPEG.decode(jpeg)
        XCTAssertEqual([back.height, back.width], [h, w])
        let meanError = zip(back.pixels, pixels).map { abs(Double($0) - Double($1)) }.reduce(0, +) / Double(pixels.count)
        XCTAssertLessThan(meanError, 3, "mean absolute error \(meanError)")
    }

    func testBadInputIsAnError() {
        XCTAssertThrowsError(try JPEG.decode([0xFF, 0xD8, 1, 2, 3])) { XCTAssertTrue($0 is JPEGError) }
        XCTAssertThrowsError(try RGBImage(height: 2, width: 2, pixels: [1, 2, 3]))
        XCTAssertThrowsError(try JPEG.encode(try RGBImage(height: 1, width: 1, pixels: [0, 0, 0]), quality: 0))
    }
}

final class SynthCOCOTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("synth-coco-\(UUID().uuidString)")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testWrittenSetLoadsAndGroundTruthAsResultsScoresOne() throws {
        try SynthCOCO.write(to: dir.path, split: "val", images: 12, seed: 5, height: 96, width: 128)
        let gt = try COCODataset(contentsOf: dir.appendingPathComponent("annotations/instances_val.json").path)
        XCTAssertEqual(gt.images.count, 12)
        XCTAssertEqual(gt.categories.map(\.id), [1, 3, 7, 12])
        for image in gt.images {
            let jpeg = try [UInt8](Data(contentsOf: dir.appendingPathComponent("val").appendingPathComponent(image.fileName)))
            let decoded = try JPEG.decode(jpeg)
            XCTAssertEqual([decoded.height, decoded.width], [96, 128])
        }
        // The set has every kind of annotation the issue asks for.
        let polygons = gt.annotations.filter { if case .polygons? = $0.segmentation { return true } else { return false } }
        let crowd = gt.annotations.filter(\.isCrowd)
        XCTAssertFalse(polygons.isEmpty)
        XCTAssertFalse(crowd.isEmpty, "no crowd region in 12 images")
        XCTAssertTrue(crowd.allSatisfy { if case .rle? = $0.segmentation { return true } else { return false } })
        XCTAssertTrue(gt.annotations.contains { !$0.isCrowd && { if case .rle? = $0.segmentation { return true } else { return false } }($0) },
                      "no partly covered (overlapping) instance")
        // Masks agree with the stored area and box.
        for a in gt.annotations {
            let mask = try gt.mask(of: a)
            XCTAssertEqual(Double(mask.area), a.area, "annotation \(a.id)")
            XCTAssertEqual(mask.boundingBox, a.bbox, "annotation \(a.id)")
        }

        // Ground truth as results (non-crowd, score 1): AP 1 for boxes and masks. pycocotools
        // divides by TP + FP + eps, so "1" is 1 up to 1e-15.
        let detections = try gt.annotations.filter { !$0.isCrowd }.map { a in
            COCODetection(imageID: a.imageID, categoryIndex: gt.categoryIndex(id: a.categoryID)!, score: 1, bbox: a.bbox,
                          mask: try gt.mask(of: a))
        }
        let results = try COCOResults.load(jsonData: try COCOResults.jsonData(detections, dataset: gt), groundTruth: gt)
        for type in [IoUType.bbox, .segm] {
            let e = try COCOEvaluator(groundTruth: gt, results: results, iouType: type).evaluate()
            XCTAssertEqual(e.stats[0], 1, accuracy: 1e-12, "\(type): \(e.stats)")
            XCTAssertEqual(e.stats[1], 1, accuracy: 1e-12, "\(type): \(e.stats)")
            XCTAssertEqual(e.stats[8], 1, accuracy: 1e-12, "\(type): \(e.stats)")
        }
    }

    func testSameSeedSameSetAndBadParameters() throws {
        let a = try SynthCOCO.sample(index: 3, seed: 9, height: 64, width: 64, firstAnnotationID: 1)
        let b = try SynthCOCO.sample(index: 3, seed: 9, height: 64, width: 64, firstAnnotationID: 1)
        XCTAssertEqual(a.image, b.image)
        XCTAssertEqual(a.annotations, b.annotations)
        XCTAssertThrowsError(try SynthCOCO.sample(index: 0, seed: 1, height: 4, width: 64, firstAnnotationID: 1))
        XCTAssertThrowsError(try SynthCOCO.write(to: dir.path, images: 0, seed: 1))
    }
}
