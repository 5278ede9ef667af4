import Foundation
import ImageCodecs

/// A temporary folder removed when the test ends.
final class TempDir {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("segdata-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `bytes` to `relative`, creating folders.
    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8]) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
        return full
    }
}

/// A smooth test picture (height × width) whose pixels differ from each other.
func testImage(height: Int, width: Int, salt: Int = 0) throws -> RGBImage {
    var px = [UInt8]()
    for y in 0..<height { for x in 0..<width { px += [UInt8((x * 9 + salt) % 256), UInt8((y * 11 + salt) % 256), UInt8((x * y + salt * 3) % 256)] } }
    return try RGBImage(height: height, width: width, pixels: px)
}

func jpegBytes(height: Int, width: Int, salt: Int = 0) throws -> [UInt8] { try JPEG.encode(testImage(height: height, width: width, salt: salt)) }

func greyPNG(height: Int, width: Int, _ values: [UInt8]) throws -> [UInt8] {
    try PNG.encode(GreyImage(height: height, width: width, pixels: values))
}
