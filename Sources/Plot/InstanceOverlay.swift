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

    /// `image` with `instances` drawn over it (masks at 45 % opacity, 2-pixel box outlines),
    /// `magnification` times larger (nearest neighbour): the captions keep the font's size, so on
    /// small images (COCO-layout sets of 128² pictures) they stay legible beside the boxes.
    /// image: [H, W] RGB, each mask H × W → [k·H, k·W] RGB.
    public static func draw(_ image: RGBImage, _ instances: [OverlayInstance], magnification: Int = 1) throws -> RGBImage {
        let k = max(1, magnification)
        let width = image.width * k, height = image.height * k
        var canvas = Canvas(width: width, height: height)
        for y in 0..<height {
            for x in 0..<width {
                let src = ((y / k) * image.width + x / k) * 3, dst = (y * width + x) * 3
                canvas.pixels[dst] = image.pixels[src]; canvas.pixels[dst + 1] = image.pixels[src + 1]; canvas.pixels[dst + 2] = image.pixels[src + 2]
            }
        }
        for inst in instances {
            let colour = palette[inst.colourIndex % palette.count]
            if let mask = inst.mask, mask.count == image.width * image.height {
                for y in 0..<height {
                    for x in 0..<width where mask[(y / k) * image.width + x / k] != 0 { canvas.blend(x, y, colour, 0.45) }
                }
            }
            if let b = inst.box {
                let s = Double(k)
                let (x0, y0, x1, y1) = (b.x * s, b.y * s, (b.x + b.width) * s, (b.y + b.height) * s)
                for (p, q) in [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))] {
                    canvas.line(p, q, colour, thickness: 2)
                }
                canvas.text(inst.caption, x: x0 + 2, y: max(y0 - 6, 5), colour: colour)
            }
        }
        return try RGBImage(height: height, width: width, pixels: canvas.pixels)
    }

    /// The smallest integer magnification that makes an image `width` pixels wide at least
    /// `minimumWidth` wide (1 for images already that wide).
    public static func magnification(forWidth width: Int, minimumWidth: Int = 320) -> Int {
        width <= 0 ? 1 : max(1, (minimumWidth + width - 1) / width)
    }

    /// Two images side by side with a 4-pixel white gap, each captioned above ("prediction",
    /// "ground truth"); a caption wider than its image is cut to fit rather than run into the
    /// other's.
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
        // n characters of the font take 6n - 1 pixels; 2 pixels of margin on the left.
        func fitted(_ caption: String, _ room: Int) -> String { String(caption.prefix(max(0, (room + 1) / 6))) }
        canvas.text(fitted(captions.0, left.width - 2), x: 2, y: Double(header) / 2)
        canvas.text(fitted(captions.1, right.width - 2), x: Double(left.width + gap + 2), y: Double(header) / 2)
        return try RGBImage(height: height, width: width, pixels: canvas.pixels)
    }
}
