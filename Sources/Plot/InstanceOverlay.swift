import Foundation
import ImageCodecs

/// One instance to draw: its mask (height × width bytes of the image, or nil), its box
/// (x, y, w, h in pixels, or nil) and its caption ("star 0.91").
public struct OverlayInstance: Sendable {
    /// Row-major mask bytes (non-zero inside), the image's size.
    public var mask: [UInt8]?
    /// XYWH box.
    public var box: (x: Double, y: Double, width: Double, height: Double)?
    /// Text drawn at the box's top-left corner.
    public var caption: String
    /// Picks the colour (e.g. the category index).
    public var colourIndex: Int

    /// An instance.
    public init(mask: [UInt8]?, box: (x: Double, y: Double, width: Double, height: Double)?, caption: String, colourIndex: Int) {
        self.mask = mask; self.box = box; self.caption = caption; self.colourIndex = colourIndex
    }
}

/// Predictions and ground truth drawn over images, as people check a model before reading its
/// AP: translucent masks, box outlines, captions in the built-in bitmap font.
public enum InstanceOverlay {
    static let palette: [(UInt8, UInt8, UInt8)] = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                                                    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]

    /// `image` with `instances` drawn over it (masks at 45 % opacity, 2-pixel box outlines).
    public static func draw(_ image: RGBImage, _ instances: [OverlayInstance]) throws -> RGBImage {
        var canvas = Canvas(width: image.width, height: image.height)
        canvas.pixels = image.pixels
        for inst in instances {
            let colour = palette[inst.colourIndex % palette.count]
            if let mask = inst.mask, mask.count == image.width * image.height {
                for y in 0..<image.height {
                    for x in 0..<image.width where mask[y * image.width + x] != 0 { canvas.blend(x, y, colour, 0.45) }
                }
            }
            if let b = inst.box {
                let (x0, y0, x1, y1) = (b.x, b.y, b.x + b.width, b.y + b.height)
                for (p, q) in [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))] {
                    canvas.line(p, q, colour, thickness: 2)
                }
                canvas.text(inst.caption, x: x0 + 2, y: max(y0 - 6, 5), colour: colour)
            }
        }
        return try RGBImage(height: image.height, width: image.width, pixels: canvas.pixels)
    }

    /// Two images side by side with a 4-pixel white gap, each captioned above ("prediction",
    /// "ground truth").
    public static func sideBySide(_ left: RGBImage, _ right: RGBImage, captions: (String, String)) throws -> RGBImage {
        let header = 14, gap = 4
        let width = left.width + gap + right.width, height = header + max(left.height, right.height)
        var canvas = Canvas(width: width, height: height)
        for (image, x0) in [(left, 0), (right, left.width + gap)] {
            for y in 0..<image.height {
                for x in 0..<image.width {
                    let src = (y * image.width + x) * 3, dst = ((y + header) * width + x0 + x) * 3
                    canvas.pixels[dst] = image.pixels[src]; canvas.pixels[dst + 1] = image.pixels[src + 1]; canvas.pixels[dst + 2] = image.pixels[src + 2]
                }
            }
        }
        canvas.text(captions.0, x: 2, y: Double(header) / 2)
        canvas.text(captions.1, x: Double(left.width + gap + 2), y: Double(header) / 2)
        return try RGBImage(height: height, width: width, pixels: canvas.pixels)
    }
}
