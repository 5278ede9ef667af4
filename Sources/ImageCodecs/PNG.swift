import CImageCodecs

/// A PNG encoding or decoding failure, with libspng's message (e.g. "PNG decode: IDAT stream error"
/// or "PNG header: …") or the reason the request was refused.
public struct PNGError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What failed and why.
    public let message: String
    /// Creates an error with `message`.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// An 8-bit single-channel image, row-major (height × width bytes): grey levels, label ids or
/// palette indices.
public struct GreyImage: Equatable, Sendable {
    /// Pixel rows.
    public let height: Int
    /// Pixel columns.
    public let width: Int
    /// height × width values, pixel (y, x) at y · width + x.
    public var pixels: [UInt8]

    /// An image from its pixels.
    /// - Throws: `PNGError` when `pixels` does not hold height × width values or a side is not positive.
    public init(height: Int, width: Int, pixels: [UInt8]) throws(PNGError) {
        guard height > 0, width > 0, pixels.count == height * width else {
            throw PNGError("grey image \(height)×\(width) needs \(max(height, 0) * max(width, 0)) values, got \(pixels.count)")
        }
        self.height = height; self.width = width; self.pixels = pixels
    }
}

/// A 16-bit single-channel image, row-major (height × width values), e.g. a depth map in
/// millimetres.
public struct Grey16Image: Equatable, Sendable {
    /// Pixel rows.
    public let height: Int
    /// Pixel columns.
    public let width: Int
    /// height × width values, pixel (y, x) at y · width + x.
    public var pixels: [UInt16]

    /// An image from its pixels.
    /// - Throws: `PNGError` when `pixels` does not hold height × width values or a side is not positive.
    public init(height: Int, width: Int, pixels: [UInt16]) throws(PNGError) {
        guard height > 0, width > 0, pixels.count == height * width else {
            throw PNGError("16-bit image \(height)×\(width) needs \(max(height, 0) * max(width, 0)) values, got \(pixels.count)")
        }
        self.height = height; self.width = width; self.pixels = pixels
    }
}

/// The colour type byte of a PNG header.
public enum PNGColorType: Int, Sendable {
    /// Grey, 1–16 bits.
    case grey = 0
    /// RGB, 8 or 16 bits per channel.
    case rgb = 2
    /// Palette indices, 1–8 bits.
    case palette = 3
    /// Grey with alpha.
    case greyAlpha = 4
    /// RGB with alpha.
    case rgba = 6
}

/// What a PNG header says about the image.
public struct PNGInfo: Equatable, Sendable {
    /// Pixel columns.
    public let width: Int
    /// Pixel rows.
    public let height: Int
    /// Bits per sample: 1, 2, 4, 8 or 16.
    public let bitDepth: Int
    /// The colour type.
    public let colorType: PNGColorType
    /// Header values (width × height pixels, bits per sample, colour type).
    public init(width: Int, height: Int, bitDepth: Int, colorType: PNGColorType) {
        self.width = width; self.height = height; self.bitDepth = bitDepth; self.colorType = colorType
    }
}

/// PNG through libspng (the `CImageCodecs` wrapper, the only file including spng.h).
///
/// Decoders per use: `decodeRGB` for photographs, `decodeGrey` for grey pictures, `decodeIndices`
/// for label maps (palette indices such as Pascal VOC's `SegmentationClass`, or 8-bit grey ids as
/// in ADE20K and Cityscapes, never rescaled), `decodeGrey16` for 16-bit depth maps.
public enum PNG {
    /// The header of PNG bytes.
    /// - Throws: `PNGError` when the signature or IHDR chunk is missing or invalid.
    public static func info(_ data: [UInt8]) throws(PNGError) -> PNGInfo {
        var err = [CChar](repeating: 0, count: 256)
        var w: Int32 = 0, h: Int32 = 0, depth: Int32 = 0, type: Int32 = 0
        let rc = data.withUnsafeBufferPointer { image_codecs_png_info($0.baseAddress, $0.count, &w, &h, &depth, &type, &err, err.count) }
        guard rc == 0 else { throw PNGError(message(err)) }
        guard let colorType = PNGColorType(rawValue: Int(type)) else { throw PNGError("PNG header: unknown colour type \(type)") }
        return PNGInfo(width: Int(w), height: Int(h), bitDepth: Int(depth), colorType: colorType)
    }

    /// Decodes any PNG to 8-bit RGB: palettes are looked up, grey replicated, 16-bit samples keep
    /// their high byte, alpha dropped.
    /// - Throws: `PNGError` for data that is not a decodable PNG (bad signature, CRC, truncation).
    public static func decodeRGB(_ data: [UInt8]) throws(PNGError) -> RGBImage {
        let header = try info(data)
        let pixels = try decode(data, count: header.width * header.height * 3, as: UInt8.self) {
            image_codecs_png_decode_rgb8($0, $1, $2, Int32(header.width), Int32(header.height), $3, $4)
        }
        do { return try RGBImage(height: header.height, width: header.width, pixels: pixels) } catch { throw PNGError(error.message) }
    }

    /// Decodes any PNG to 8-bit grey: grey is scaled to 0…255, colour converted with ITU-R 601
    /// weights exactly as Pillow's `convert("L")`, alpha dropped.
    /// - Throws: `PNGError` for data that is not a decodable PNG.
    public static func decodeGrey(_ data: [UInt8]) throws(PNGError) -> GreyImage {
        let header = try info(data)
        let pixels = try decode(data, count: header.width * header.height, as: UInt8.self) {
            image_codecs_png_decode_grey8($0, $1, $2, Int32(header.width), Int32(header.height), $3, $4)
        }
        return try GreyImage(height: header.height, width: header.width, pixels: pixels)
    }

    /// Decodes a label map: a palette PNG to its raw palette indices (not colours), or a grey PNG
    /// of at most 8 bits to its unscaled values.
    /// - Throws: `PNGError` for other colour types or data that is not a decodable PNG.
    public static func decodeIndices(_ data: [UInt8]) throws(PNGError) -> GreyImage {
        let header = try info(data)
        let pixels = try decode(data, count: header.width * header.height, as: UInt8.self) {
            image_codecs_png_decode_indices($0, $1, $2, Int32(header.width), Int32(header.height), $3, $4)
        }
        return try GreyImage(height: header.height, width: header.width, pixels: pixels)
    }

    /// Decodes a grey PNG to 16-bit values: 16-bit files keep all 16 bits, shallower ones are
    /// widened without rescaling.
    /// - Throws: `PNGError` for colour PNGs or data that is not a decodable PNG.
    public static func decodeGrey16(_ data: [UInt8]) throws(PNGError) -> Grey16Image {
        let header = try info(data)
        let pixels = try decode(data, count: header.width * header.height, as: UInt16.self) {
            image_codecs_png_decode_grey16($0, $1, $2, Int32(header.width), Int32(header.height), $3, $4)
        }
        return try Grey16Image(height: header.height, width: header.width, pixels: pixels)
    }

    /// PNG bytes of an 8-bit single-channel image: plain grey when `palette` is nil, otherwise a
    /// palette PNG whose pixels are indices into `palette` (entries × 3 bytes R, G, B; 1…256
    /// entries, every index must be below the entry count).
    public static func encode(_ image: GreyImage, palette: [UInt8]? = nil) throws(PNGError) -> [UInt8] {
        if let palette {
            guard palette.count % 3 == 0, (1...256).contains(palette.count / 3) else {
                throw PNGError("PNG encode: a palette needs 1…256 RGB entries (a multiple of 3 bytes), got \(palette.count) bytes")
            }
            return try encode(image.pixels, image.width, image.height, type: .palette, depth: 8, palette: palette)
        }
        return try encode(image.pixels, image.width, image.height, type: .grey, depth: 8, palette: nil)
    }

    /// PNG bytes of an 8-bit RGB image.
    public static func encode(_ image: RGBImage) throws(PNGError) -> [UInt8] {
        try encode(image.pixels, image.width, image.height, type: .rgb, depth: 8, palette: nil)
    }

    /// PNG bytes of a 16-bit grey image (all 16 bits kept).
    public static func encode(_ image: Grey16Image) throws(PNGError) -> [UInt8] {
        try encode(image.pixels, image.width, image.height, type: .grey, depth: 16, palette: nil)
    }

    /// Pascal VOC's 256-entry colour map (entries × 3 bytes), built by the devkit's bit-interleaving
    /// rule: index 0 black, 1 (128, 0, 0), …, 255 (224, 224, 192) for the ignored boundary.
    public static let vocPalette: [UInt8] = {
        var out = [UInt8]()
        out.reserveCapacity(768)
        for i in 0..<256 {
            var r = 0, g = 0, b = 0, c = i
            for j in 0..<8 {
                r |= ((c >> 0) & 1) << (7 - j)
                g |= ((c >> 1) & 1) << (7 - j)
                b |= ((c >> 2) & 1) << (7 - j)
                c >>= 3
            }
            out += [UInt8(r), UInt8(g), UInt8(b)]
        }
        return out
    }()

    private static func encode<T>(_ pixels: [T], _ width: Int, _ height: Int, type: PNGColorType, depth: Int,
                                  palette: [UInt8]?) throws(PNGError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var err = [CChar](repeating: 0, count: 256)
        let entries = Int32((palette?.count ?? 0) / 3)
        let rc = pixels.withUnsafeBytes { px in
            (palette ?? []).withUnsafeBufferPointer { pal in
                image_codecs_png_encode(px.baseAddress, Int32(width), Int32(height), Int32(type.rawValue), Int32(depth),
                                        pal.baseAddress, entries, &out, &size, &err, err.count)
            }
        }
        guard rc == 0, let out else { throw PNGError(message(err)) }
        defer { image_codecs_png_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    private static func decode<T: BinaryInteger>(
        _ data: [UInt8], count: Int, as: T.Type,
        _ call: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<T>?, UnsafeMutablePointer<CChar>, Int) -> Int32
    ) throws(PNGError) -> [T] {
        var err = [CChar](repeating: 0, count: 256)
        var pixels = [T](repeating: 0, count: count)
        let rc = data.withUnsafeBufferPointer { png in
            pixels.withUnsafeMutableBufferPointer { px in
                err.withUnsafeMutableBufferPointer { e in call(png.baseAddress, png.count, px.baseAddress, e.baseAddress!, e.count) }
            }
        }
        guard rc == 0 else { throw PNGError(message(err)) }
        return pixels
    }

    private static func message(_ err: [CChar]) -> String {
        let text = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.isEmpty ? "PNG: unknown libspng failure" : text
    }
}
