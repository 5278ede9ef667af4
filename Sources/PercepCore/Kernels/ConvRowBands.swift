import Foundation

extension ConvDispatch {
    /// Bytes one band of `forwardInRowBands` may take: its input, the blocked copy a direct
    /// convolution makes of it (or Winograd's tile blocks, within their own budgets), and its
    /// output. 16 MiB keeps a [150, 256, 256] image's bands (44 rows, about 10 MiB of blocked
    /// copies) inside the workspace PSPNet-R18's own passes already hold. Settable for tests.
    nonisolated(unsafe) public static var rowBandBudget = 16 << 20

    /// y = conv(input, w) + b (overwritten), then max(y, 0) when `relu`, for a convolution whose
    /// input is never whole: `fill(band, channelStride, image, rows)` writes rows `rows` of every
    /// channel of image `image` (channel c's first row at band + c·channelStride, rows W floats
    /// apart), and the convolution runs one band of output rows at a time on them, each band a
    /// `switchingForward` (the bands serve a forward whose switches route a gradient: Winograd
    /// F(2×2, 3×3) or a direct convolution) with the rows above and below it (zeros outside the
    /// image) and no row padding. The bands' outputs are those of the whole convolution:
    /// explicit zero rows add nothing that the padding would not, and bands of an even number of
    /// rows keep F(2×2, 3×3)'s tiles where the whole map has them (the same bits).
    ///
    /// For the prediction of a perceptual loss on segmentation logits: the softmax is made band by
    /// band into the band's input, so neither the probabilities of the whole batch nor the
    /// direct convolution's blocked copy of a whole image exist at once (on a [2, 150, 256, 256]
    /// prediction those were 75 and 54 MiB). Stride 1 and no dilation along the rows, one group.
    /// y: [N, C_out, OH, OW], w: [C_out, C_in, KH, KW].
    public static func forwardInRowBands(_ y: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
                                         _ g: ConvGeometry, relu: Bool,
                                         fill: (_ band: UnsafeMutablePointer<Float>, _ channelStride: Int, _ image: Int, _ rows: Range<Int>) -> Void) {
        precondition(g.strideH == 1 && g.dilH == 1 && g.groups == 1, "row bands need stride 1 and no dilation along the rows, one group: \(g)")
        let halo = g.kh - 1
        let bytesPerRow = (2 * g.cIn * g.w + g.cOut * g.outW) * MemoryLayout<Float>.stride
        let fit = Swift.max(1, rowBandBudget / bytesPerRow - halo)
        let bands = (g.outH + fit - 1) / fit
        // Even bands of an even number of rows (F(2×2, 3×3)'s tile rows); the last may be shorter.
        let bandRows = Swift.min(g.outH, ((g.outH + bands - 1) / bands + 1) / 2 * 2)
        let input = Storage(count: g.cIn * (bandRows + halo) * g.w)
        let output = Storage(count: g.cOut * bandRows * g.outW)
        let outPlane = g.outH * g.outW
        for image in 0..<g.n {
            for first in stride(from: 0, to: g.outH, by: bandRows) {
                let rows = Swift.min(bandRows, g.outH - first), inRows = rows + halo
                // Input rows first − padH ..< first − padH + inRows, the part inside the image filled.
                let top = first - g.padH
                let inside = Swift.max(0, top)..<Swift.min(g.h, top + inRows)
                let channelStride = inRows * g.w
                if inside.lowerBound > top || inside.upperBound < top + inRows {
                    parallelChunks(g.cIn, grain: 64) { r in
                        for c in r {
                            let plane = input.base + c * channelStride
                            plane.update(repeating: 0, count: (inside.lowerBound - top) * g.w)
                            let below = plane + (inside.upperBound - top) * g.w
                            below.update(repeating: 0, count: (top + inRows - inside.upperBound) * g.w)
                        }
                    }
                }
                fill(input.base + (inside.lowerBound - top) * g.w, channelStride, image, inside)
                let band = ConvGeometry(n: 1, cIn: g.cIn, h: inRows, w: g.w, cOut: g.cOut, kh: g.kh, kw: g.kw,
                                        stride: (1, g.strideW), padding: (0, g.padW), dilation: (1, g.dilW))
                switchingForward(output.base, input.base, w, b, band, relu: relu)
                let rowFloats = rows * g.outW
                parallelChunks(g.cOut, grain: 64) { r in
                    for k in r {
                        (y + image * g.cOut * outPlane + k * outPlane + first * g.outW).update(from: output.base + k * rowFloats, count: rowFloats)
                    }
                }
            }
        }
        withExtendedLifetime((input, output)) {}
    }
}
