import XCTest
@testable import COCO

/// RLE encode/decode, the string codec, area, toBbox, polygon and box rasterisation, merge.
final class RLETests: XCTestCase {
    func testEncodeDecodeAndStringOnHandCheckedMask() throws {
        // 4×5 mask, rows 1–2 and columns 1–3 set (spec §1.10). Column-major: column 0 is 4 zeros,
        // then each of columns 1…3 is 0 1 1 0, column 4 is zeros → [5, 2, 2, 2, 2, 2, 5].
        var rows = [UInt8](repeating: 0, count: 20)
        for y in 1...2 { for x in 1...3 { rows[y * 5 + x] = 1 } }
        let rle = RLE(encodingRowMajor: rows, height: 4, width: 5)
        XCTAssertEqual(rle.counts, [5, 2, 2, 2, 2, 2, 5])
        XCTAssertEqual(rle.compressedCounts, "5220003")
        XCTAssertEqual(rle.area, 6)
        XCTAssertEqual(rle.boundingBox, BoundingBox(x: 1, y: 1, width: 3, height: 2))
        XCTAssertEqual(try rle.decodeRowMajor(), rows)
        XCTAssertEqual(try RLE(compressedCounts: "5220003", height: 4, width: 5), rle)
    }

    func testEncodeStartsWithZeroRun() {
        XCTAssertEqual(RLE(encoding: [0, 0, 1, 1, 1, 0, 1], height: 7, width: 1).counts, [2, 3, 1, 1])
        XCTAssertEqual(RLE(encoding: [1, 1, 1, 1, 1, 1, 0], height: 7, width: 1).counts, [0, 6, 1])
    }

    func testStringCodecVectors() throws {
        // Large values (several 5-bit groups) and a negative delta from the third count on.
        let big = RLE(height: 1000, width: 1000, counts: [0, 123_456, 876_544])
        XCTAssertEqual(big.compressedCounts, "0Pbh3PPhj0")
        XCTAssertEqual(try RLE(compressedCounts: "0Pbh3PPhj0", height: 1000, width: 1000), big)
        let negative = RLE(height: 10, width: 10, counts: [30, 40, 5, 3, 22])
        XCTAssertEqual(negative.compressedCounts, "n0X15kNa0")
        XCTAssertEqual(try RLE(compressedCounts: "n0X15kNa0", height: 10, width: 10), negative)
    }

    func testMalformedStringsThrow() {
        XCTAssertThrowsError(try RLE(compressedCounts: "52200~3", height: 4, width: 5))  // outside the alphabet
        XCTAssertThrowsError(try RLE(compressedCounts: "5220P", height: 4, width: 5))    // continuation at the end
        XCTAssertThrowsError(try RLE(compressedCounts: "522000", height: 4, width: 5))   // sums to 15, not 20
        XCTAssertThrowsError(try RLE(height: 2, width: 2, counts: [1, 5]).decode())      // overrun
    }

    func testPolygonRectangleMatchesHandMask() throws {
        // [1,1, 4,1, 4,3, 1,3] fills columns 1…3 and rows 1…2 of a 6×6 image (pixel centres inside).
        let rle = try RLE(polygon: [1, 1, 4, 1, 4, 3, 1, 3], height: 6, width: 6)
        var rows = [UInt8](repeating: 0, count: 36)
        for y in 1...2 { for x in 1...3 { rows[y * 6 + x] = 1 } }
        XCTAssertEqual(try rle.decodeRowMajor(), rows)
        XCTAssertEqual(rle.compressedCounts, "724000;")
        XCTAssertEqual(try RLE(box: BoundingBox(x: 1, y: 1, width: 3, height: 2), height: 6, width: 6), rle)
    }

    func testPolygonTriangleAndUnitSquare() throws {
        let triangle = try RLE(polygon: [0.3, 0.2, 7.6, 1.1, 3.4, 6.8], height: 8, width: 9)
        XCTAssertEqual(triangle.compressedCounts, "8352O1NN2O1O`0")
        XCTAssertEqual(triangle.area, 23)
        XCTAssertEqual(triangle.boundingBox, BoundingBox(x: 1, y: 0, width: 6, height: 7))
        // Box [0,0,1,1] is exactly the first pixel.
        let first = try RLE(box: BoundingBox(x: 0, y: 0, width: 1, height: 1), height: 3, width: 3)
        XCTAssertEqual(try first.decode(), [1, 0, 0, 0, 0, 0, 0, 0, 0])
        // A square from (0.5, 0.5) to (2.5, 2.5) puts pixel centres exactly on all four edges: with
        // maskApi's rounding the centres on the left/top edges (0.5) fall outside and those on the
        // right/bottom edges (2.5) inside, so pixels x, y ∈ {1, 2} are set (pycocotools agrees).
        let square = try RLE(polygon: [0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5], height: 4, width: 4)
        var squareRows = [UInt8](repeating: 0, count: 16)
        for y in 1...2 { for x in 1...2 { squareRows[y * 4 + x] = 1 } }
        XCTAssertEqual(try square.decodeRowMajor(), squareRows)
    }

    func testPolygonsAgainstPycocotools() throws {
        let v = try Golden.maskVectors()
        let polygons = v["polygons"] as! [[String: Any]]
        XCTAssertGreaterThan(polygons.count, 10)
        for p in polygons {
            let h = p["h"] as! Int, w = p["w"] as! Int
            let poly = (p["polygon"] as! [NSNumber]).map(jsonDouble)
            let rle = try RLE(polygon: poly, height: h, width: w)
            XCTAssertEqual(rle.compressedCounts, p["string"] as! String, "polygon \(poly) on \(h)×\(w)")
            XCTAssertEqual(rle.area, p["area"] as! Int)
            let b = (p["bbox"] as! [NSNumber]).map(jsonDouble)
            XCTAssertEqual(rle.boundingBox.xywh, b, "bbox of \(poly)")
        }
        for b in v["boxes"] as! [[String: Any]] {
            let h = b["h"] as! Int, w = b["w"] as! Int
            let x = (b["box"] as! [NSNumber]).map(jsonDouble)
            let rle = try RLE(box: BoundingBox(x: x[0], y: x[1], width: x[2], height: x[3]), height: h, width: w)
            XCTAssertEqual(rle.compressedCounts, b["string"] as! String, "box \(x) on \(h)×\(w)")
        }
    }

    func testMasksAgainstPycocotools() throws {
        for m in try Golden.maskVectors()["masks"] as! [[String: Any]] {
            let h = m["h"] as! Int, w = m["w"] as! Int
            let rows = (m["rows"] as! [Int]).map { UInt8($0) }
            let rle = RLE(encodingRowMajor: rows, height: h, width: w)
            XCTAssertEqual(rle.compressedCounts, m["string"] as! String)
            XCTAssertEqual(rle.area, m["area"] as! Int)
            XCTAssertEqual(rle.boundingBox.xywh, (m["bbox"] as! [NSNumber]).map(jsonDouble))
            let back = try RLE(compressedCounts: m["string"] as! String, height: h, width: w)
            XCTAssertEqual(back, rle)
            XCTAssertEqual(try back.decodeRowMajor(), rows)
        }
    }

    func testMergeAgainstPycocotools() throws {
        for p in try Golden.maskVectors()["pairs"] as! [[String: Any]] {
            let h = p["h"] as! Int, w = p["w"] as! Int
            let a = try RLE(compressedCounts: p["a"] as! String, height: h, width: w)
            let b = try RLE(compressedCounts: p["b"] as! String, height: h, width: w)
            XCTAssertEqual(RLE.merge([a, b]).compressedCounts, p["union"] as! String)
            XCTAssertEqual(RLE.merge([a, b], intersect: true).compressedCounts, p["intersection"] as! String)
            // The union decodes to the pixelwise OR.
            let da = try a.decode(), db = try b.decode()
            XCTAssertEqual(try RLE.merge([a, b]).decode(), zip(da, db).map { $0 | $1 })
        }
    }

    func testToBboxSkipsEmptyForegroundRuns() {
        // Runs [2, 0, 3, 2] on a 7×1 column: the empty foreground run at index 1 is skipped; the box
        // is the run of 2 at rows 5…6.
        XCTAssertEqual(RLE(height: 7, width: 1, counts: [2, 0, 3, 2]).boundingBox, BoundingBox(x: 0, y: 5, width: 1, height: 2))
        XCTAssertEqual(RLE(height: 3, width: 3, counts: [9]).boundingBox, BoundingBox(x: 0, y: 0, width: 0, height: 0))
        // A run crossing a column spans all rows.
        XCTAssertEqual(RLE(height: 3, width: 3, counts: [2, 2, 5]).boundingBox, BoundingBox(x: 0, y: 0, width: 2, height: 3))
    }
}
