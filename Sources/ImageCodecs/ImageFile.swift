import Foundation

/// The container format of encoded image bytes, recognised by signature (magic bytes), not by
/// file extension.
public enum ImageFormat: String, Sendable {
    /// JPEG: starts FF D8 FF.
    case jpeg
    /// PNG: starts 89 'P' 'N' 'G' 0D 0A 1A 0A.
    case png

    /// The format whose signature `data` starts with, or nil.
    public init?(signature data: [UInt8]) {
        if data.count >= 8, data.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { self = .png }
        else if data.count >= 3, data[0] == 0xFF, data[1] == 0xD8, data[2] == 0xFF { self = .jpeg }
        else { return nil }
    }
}

/// A failure reading or decoding an image file: the path and what went wrong.
public struct ImageFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file.
    public let path: String
    /// The problem (unreadable file, unknown signature, or the codec's message).
    public let problem: String
    /// Creates an error for `path`.
    public init(path: String, problem: String) { self.path = path; self.problem = problem }
    /// "path: problem".
    public var description: String { "\(path): \(problem)" }
}

/// Reading image files whatever their format: the format is decided by the bytes' signature.
public enum ImageFile {
    /// The bytes of `path`.
    /// - Throws: `ImageFileError` when the file cannot be read.
    public static func bytes(_ path: String) throws(ImageFileError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw ImageFileError(path: path, problem: exists ? "cannot read the file" : "no such file")
        }
        return [UInt8](data)
    }

    /// Decodes JPEG or PNG bytes (by signature) to 8-bit RGB.
    /// - Throws: `ImageFileError` naming `path` (used only in the message) for an unknown
    ///   signature or a codec failure.
    public static func decodeRGB(_ data: [UInt8], path: String = "<memory>") throws(ImageFileError) -> RGBImage {
        switch ImageFormat(signature: data) {
        case .jpeg?:
            do { return try JPEG.decode(data) } catch { throw ImageFileError(path: path, problem: error.message) }
        case .png?:
            do { return try PNG.decodeRGB(data) } catch { throw ImageFileError(path: path, problem: error.message) }
        case nil:
            throw ImageFileError(path: path, problem: data.isEmpty ? "empty file" : "not a JPEG or PNG file (unknown signature)")
        }
    }

    /// Reads a JPEG or PNG file as 8-bit RGB (height × width × 3).
    /// - Throws: `ImageFileError` naming the file.
    public static func readRGB(_ path: String) throws(ImageFileError) -> RGBImage {
        try decodeRGB(try bytes(path), path: path)
    }

    /// Reads a label map PNG (palette indices or 8-bit grey values, never rescaled; height × width).
    /// - Throws: `ImageFileError` naming the file when it is not a PNG or not a palette/grey PNG.
    public static func readIndices(_ path: String) throws(ImageFileError) -> GreyImage {
        let data = try bytes(path)
        guard ImageFormat(signature: data) == .png else {
            throw ImageFileError(path: path, problem: data.isEmpty ? "empty file" : "a label map must be a PNG (wrong signature)")
        }
        do { return try PNG.decodeIndices(data) } catch { throw ImageFileError(path: path, problem: error.message) }
    }
}
