import Foundation
import ImageCodecs
import XCTest

/// PNG through libspng: round trips of every encodable format, Pillow-written fixtures (palette,
/// packed 4-bit palette, 16-bit grey), and errors for damaged files.
final class PNGTests: XCTestCase {
    func fixture(_ name: String) throws -> [UInt8] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
        return [UInt8](try Data(contentsOf: url))
    }

    /// A deterministic, non-constant byte pattern.
    func pattern(_ n: Int, _ k: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* k &+ ($0 >> 3) &* 7) } }

    func testRGBRoundTripIsLossless() throws {
        let image = try RGBImage(height: 5, width: 7, pixels: pattern(105, 37))
        let png = try PNG.encode(image)
        XCTAssertEqual(ImageFormat(signature: png), .png)
        XCTAssertEqual(try PNG.info(png), PNGInfo(width: 7, height: 5, bitDepth: 8, colorType: .rgb))
        XCTAssertEqual(try PNG.decodeRGB(png), image)
    }

    func testGreyRoundTripAndGreyAsRGB() throws {
        let image = try GreyImage(height: 3, width: 11, pixels: pattern(33, 91))
        let png = try PNG.encode(image)
        XCTAssertEqual(try PNG.info(png).colorType, .grey)
        XCTAssertEqual(try PNG.decodeGrey(png), image)
        XCTAssertEqual(try PNG.decodeIndices(png), image)
        let rgb = try PNG.decodeRGB(png)
        XCTAssertEqual(rgb.pixels, image.pixels.flatMap { [$0, $0, $0] })
    }

    func testPaletteRoundTripKeepsIndicesNotColours() throws {
        let indices = (0..<40).map { UInt8($0 % 3 == 0 ? 255 : $0 % 21) }
        let image = try GreyImage(height: 5, width: 8, pixels: indices)
        let png = try PNG.encode(image, palette: PNG.vocPalette)
        XCTAssertEqual(try PNG.info(png).colorType, .palette)
        XCTAssertEqual(try PNG.decodeIndices(png).pixels, indices)
        // The colours are the palette's: index 1 is VOC's (128, 0, 0), 255 is (224, 224, 192).
        let rgb = try PNG.decodeRGB(png)
        XCTAssertEqual(Array(rgb.pixels[3..<6]), [128, 0, 0])
        XCTAssertEqual(Array(rgb.pixels[0..<3]), [224, 224, 192])
    }

    func testGrey16RoundTripKeepsSixteenBits() throws {
        let values: [UInt16] = [0, 1, 255, 256, 4660, 40000, 65535, 12345]
        let image = try Grey16Image(height: 2, width: 4, pixels: values)
        let png = try PNG.encode(image)
        XCTAssertEqual(try PNG.info(png), PNGInfo(width: 4, height: 2, bitDepth: 16, colorType: .grey))
        XCTAssertEqual(try PNG.decodeGrey16(png).pixels, values)
        XCTAssertEqual(try PNG.decodeGrey(png).pixels, values.map { UInt8($0 >> 8) })
    }

    func testPillowVOCPalettePNGGivesIndices() throws {
        let png = try fixture("voc_palette.png")
        XCTAssertEqual(try PNG.info(png).colorType, .palette)
        let labels = try PNG.decodeIndices(png)
        XCTAssertEqual(labels.width, 5); XCTAssertEqual(labels.height, 4)
        XCTAssertEqual(labels.pixels, [0, 1, 2, 3, 4, 255, 1, 1, 2, 0, 4, 4, 255, 3, 2, 0, 0, 15, 20, 255])
    }

    func testPillowPackedFourBitPaletteIsUnpacked() throws {
        let png = try fixture("palette_4bit.png")
        XCTAssertEqual(try PNG.info(png).bitDepth, 4)
        XCTAssertEqual(try PNG.decodeIndices(png).pixels, (0..<21).map { UInt8((3 * $0) % 10) })
    }

    func testPillowSixteenBitGrey() throws {
        let png = try fixture("grey16.png")
        XCTAssertEqual(try PNG.decodeGrey16(png).pixels, [0, 1, 256, 4660, 65535, 40000])
        XCTAssertThrowsError(try PNG.decodeIndices(png)) { XCTAssertTrue("\($0)".contains("label map"), "\($0)") }
    }

    func testPillowGrey8AndSignatureDispatch() throws {
        let png = try fixture("grey8.png")
        XCTAssertEqual(try PNG.decodeGrey(png).pixels, [0, 10, 100, 200, 255, 7, 8, 9])
        let jpeg = try JPEG.encode(try RGBImage(height: 8, width: 8, pixels: [UInt8](repeating: 90, count: 192)))
        XCTAssertEqual(ImageFormat(signature: jpeg), .jpeg)
        XCTAssertEqual(try ImageFile.decodeRGB(jpeg).width, 8)
        XCTAssertEqual(try ImageFile.decodeRGB(png).pixels.count, 24)
        XCTAssertThrowsError(try ImageFile.decodeRGB([1, 2, 3, 4], path: "/x/y.bin")) {
            XCTAssertEqual("\($0)", "/x/y.bin: not a JPEG or PNG file (unknown signature)")
        }
    }

    func testAlphaIsDropped() throws {
        let rgba = try fixture("rgba.png")
        XCTAssertEqual(try PNG.info(rgba).colorType, .rgba)
        XCTAssertEqual(try PNG.decodeRGB(rgba).pixels, [10, 20, 30, 200, 100, 50])
        // Pillow's convert("L") of the RGB part: 18, 124.
        XCTAssertEqual(try PNG.decodeGrey(rgba).pixels, [18, 124])
        let la = try fixture("la.png")
        XCTAssertEqual(try PNG.info(la).colorType, .greyAlpha)
        XCTAssertEqual(try PNG.decodeGrey(la).pixels, [77, 155])
        XCTAssertEqual(try PNG.decodeRGB(la).pixels, [77, 77, 77, 155, 155, 155])
        XCTAssertThrowsError(try PNG.decodeIndices(la)) { XCTAssertTrue("\($0)".contains("colour type 4"), "\($0)") }
    }

    func testColourToGreyMatchesPillowWeights() throws {
        let image = try RGBImage(height: 1, width: 3, pixels: [255, 0, 0, 0, 255, 0, 10, 20, 30])
        // Pillow: Image.new("RGB", (3, 1)) with these pixels, convert("L") → [76, 150, 18].
        XCTAssertEqual(try PNG.decodeGrey(try PNG.encode(image)).pixels, [76, 150, 18])
    }

    func testTruncatedAndCorruptFilesAreErrors() throws {
        let png = try PNG.encode(try RGBImage(height: 16, width: 16, pixels: pattern(768, 13)))
        // Cut inside the image data: the header is intact, the pixels are not.
        let truncated = Array(png.prefix(png.count - 30))
        XCTAssertNoThrow(try PNG.info(truncated))
        XCTAssertThrowsError(try PNG.decodeRGB(truncated)) { error in
            XCTAssertTrue("\(error)".hasPrefix("PNG decode:"), "\(error)")
        }
        // A flipped byte in the IHDR chunk fails its CRC.
        var corrupt = png
        corrupt[18] ^= 0x40
        XCTAssertThrowsError(try PNG.decodeRGB(corrupt)) { XCTAssertTrue("\($0)".contains("invalid chunk checksum"), "\($0)") }
        XCTAssertThrowsError(try PNG.info([0x89, 0x50, 0x4E])) { XCTAssertTrue("\($0)".contains("PNG header"), "\($0)") }
        // Through the file helper the message names the file.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("cut.png").path
        try Data(truncated).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ImageFile.readRGB(path)) { error in
            let e = error as! ImageFileError
            XCTAssertEqual(e.path, path)
            XCTAssertTrue(e.description.hasPrefix(path + ": PNG decode"), e.description)
        }
        XCTAssertThrowsError(try ImageFile.readIndices(dir.appendingPathComponent("missing.png").path)) {
            XCTAssertTrue("\($0)".hasSuffix("missing.png: no such file"), "\($0)")
        }
    }

    /// A 32-byte file (found by the fuzzer) whose header claims 83886087×3 palette pixels: within
    /// the pixel limit, but far more data than deflate (at most 1032:1) can unpack from 32 bytes.
    /// Refused from the header instead of allocating ~750 MB per decode. A uniform image, the most
    /// compressible kind, still decodes.
    func testHeaderClaimingMoreThanTheFileCanHoldIsRefused() throws {
        let fuzzed: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
                               0x05, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x03, 0x04, 0x03, 0x00, 0x00, 0x00, 0xed, 0x08, 0xf6]
        for decode in [{ _ = try PNG.info(fuzzed) }, { _ = try PNG.decodeRGB(fuzzed) }, { _ = try PNG.decodeIndices(fuzzed) }] {
            XCTAssertThrowsError(try decode()) { XCTAssertTrue("\($0)".contains("more than a 32-byte file can hold"), "\($0)") }
        }
        let uniform = try PNG.encode(try GreyImage(height: 2048, width: 2048, pixels: [UInt8](repeating: 7, count: 2048 * 2048)))
        XCTAssertLessThan(uniform.count, 2048 * 2049 / 200, "the encoder should compress a uniform image hard")
        XCTAssertEqual(try PNG.decodeGrey(uniform).pixels.count, 2048 * 2048)
    }

    func testEncoderRefusesBadPalettes() throws {
        let image = try GreyImage(height: 1, width: 2, pixels: [0, 5])
        XCTAssertThrowsError(try PNG.encode(image, palette: [0, 0, 0, 1, 1, 1])) {
            XCTAssertTrue("\($0)".contains("outside the 2-entry palette"), "\($0)")
        }
        XCTAssertThrowsError(try PNG.encode(image, palette: [0, 0])) { XCTAssertTrue("\($0)".contains("palette"), "\($0)") }
    }
}
