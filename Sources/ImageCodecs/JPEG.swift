import CImageCodecs

/// A JPEG encoding or decoding failure, with libjpeg-turbo's message.
public struct JPEGError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What failed and why.
    public let message: String
    /// Creates an error with `message`.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// An 8-bit RGB image, row-major with interleaved channels (height × width × 3 bytes).
public struct RGBImage: Equatable, Sendable {
    /// Pixel rows.
    public let height: Int
    /// Pixel columns.
    public let width: Int
    /// height × width × 3 bytes: R, G, B of pixel (0, 0), then (0, 1), …
    public var pixels: [UInt8]

    /// An image from its pixels.
    /// - Throws: `JPEGError` when `pixels` does not hold height × width × 3 bytes or a side is not positive.
    public init(height: Int, width: Int, pixels: [UInt8]) throws(JPEGError) {
        guard height > 0, width > 0, pixels.count == height * width * 3 else {
            throw JPEGError("RGB image \(height)×\(width) needs \(max(height, 0) * max(width, 0) * 3) bytes, got \(pixels.count)")
        }
        self.height = height; self.width = width; self.pixels = pixels
    }
}

/// JPEG through libjpeg-turbo (the `CImageCodecs` wrapper), with the accurate integer DCT rather
/// than the fast approximate one (synthetic data should not carry extra codec error).
public enum JPEG {
    /// JPEG bytes of `image` at `quality` (1…100), 4:2:0 chroma subsampling.
    public static func encode(_ image: RGBImage, quality: Int = 90) throws(JPEGError) -> [UInt8] {
        guard (1...100).contains(quality) else { throw JPEGError("JPEG quality must be 1…100, not \(quality)") }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = image.pixels.withUnsafeBufferPointer { px in
            image_codecs_jpeg_encode_rgb(px.baseAddress, Int32(image.width), Int32(image.height), Int32(quality),
                                         &out, &size, &err, err.count)
        }
        guard rc == 0, let out else { throw JPEGError(message(err)) }
        defer { image_codecs_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// Largest image decoded (2^28 pixels, as for PNG): a header is a claim, checked before the
    /// pixels are allocated.
    public static let maxPixels = 1 << 28

    /// Decodes JPEG bytes to RGB.
    /// - Throws: `JPEGError` for data that is not a decodable JPEG stream.
    public static func decode(_ data: [UInt8]) throws(JPEGError) -> RGBImage {
        var err = [CChar](repeating: 0, count: 256)
        var w: Int32 = 0, h: Int32 = 0
        let headerRC = data.withUnsafeBufferPointer { image_codecs_jpeg_size($0.baseAddress, $0.count, &w, &h, &err, err.count) }
        guard headerRC == 0, w > 0, h > 0 else { throw JPEGError(message(err)) }
        // The header alone decides the allocation: refuse sizes no data set has before making it.
        guard Int(w) * Int(h) <= maxPixels else {
            throw JPEGError("JPEG header: \(w)x\(h) image exceeds the \(maxPixels)-pixel limit")
        }
        var pixels = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
        let rc = data.withUnsafeBufferPointer { jpeg in
            pixels.withUnsafeMutableBufferPointer { px in
                image_codecs_jpeg_decode_rgb(jpeg.baseAddress, jpeg.count, px.baseAddress, w, h, &err, err.count)
            }
        }
        guard rc == 0 else { throw JPEGError(message(err)) }
        return try RGBImage(height: Int(h), width: Int(w), pixels: pixels)
    }

    private static func message(_ err: [CChar]) -> String {
        let text = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.isEmpty ? "JPEG: unknown libjpeg-turbo failure" : text
    }
}
