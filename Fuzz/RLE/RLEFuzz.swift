import COCO
import FuzzDriver

// libFuzzer target: compressed RLE strings and polygons, the two encodings of COCO masks. The
// first two bytes pick the mask size (at most 255 × 255), the rest is the counts string or,
// read as little-endian int16 pairs / 8, polygon coordinates.
/// The executable's entry (SwiftPM links `main` to `FuzzRLE_main`): libFuzzer's loop.
@_cdecl("FuzzRLE_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer { input in
        let bytes = [UInt8](input)
        guard bytes.count >= 3 else { return }
        let h = Int(bytes[0]), w = Int(bytes[1]), rest = bytes[2...]
        if let rle = try? RLE(compressedCounts: String(decoding: rest, as: UTF8.self), height: h, width: w) {
            _ = try? rle.decodeRowMajor()
            _ = rle.area
            _ = try? RLE(compressedCounts: rle.compressedCounts, height: h, width: w)
        }
        var coordinates: [Double] = []
        var i = rest.startIndex
        while i + 1 < rest.endIndex {
            coordinates.append(Double(Int16(bitPattern: UInt16(rest[i]) | UInt16(rest[i + 1]) << 8)) / 8)
            i += 2
        }
        if let mask = try? RLE(polygons: [coordinates, Array(coordinates.reversed())], height: h, width: w) {
            _ = try? mask.decodeRowMajor()
            _ = mask.boundingBox
        }
    }
}
