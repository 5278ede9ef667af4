import PercepCore
import SegmentationData
import SegmentationModels

/// mmseg's test-time inference: logits for a whole image or averaged over overlapping crops,
/// resized (bilinear, align_corners = false) to the annotation's size, then the class map.
public struct SegmentationInference {
    /// How the network sees a test image.
    public enum Mode {
        /// The whole (resized) image in one forward pass.
        case whole
        /// Crops of `crop` every `stride` pixels, logits averaged where they overlap.
        case slide(crop: (Int, Int), stride: (Int, Int))
    }

    /// The network (eval mode is the caller's business).
    public let model: SegmentationModel
    /// Whole or sliding-window.
    public let mode: Mode

    /// Inference of `model` in `mode`.
    public init(model: SegmentationModel, mode: Mode) {
        self.model = model
        self.mode = mode
    }

    /// Class logits at the input's resolution. image: [1, 3, H, W] → [1, K, H, W].
    public func logits(_ image: Tensor) -> Tensor {
        let h = image.shape[2], w = image.shape[3]
        switch mode {
        case .whole:
            return upsampleLogits(model(image).logits, to: (h, w))
        case .slide(let crop, let stride):
            // mmseg's slide_inference: a grid of windows whose last row/column is pulled back
            // inside the image; each pixel's logits averaged over the windows covering it.
            let rows = max(h - crop.0 + stride.0 - 1, 0) / stride.0 + 1
            let cols = max(w - crop.1 + stride.1 - 1, 0) / stride.1 + 1
            var sum: Tensor?
            var count = [Float](repeating: 0, count: h * w)
            for r in 0..<rows {
                for c in 0..<cols {
                    let y2 = min(r * stride.0 + crop.0, h), x2 = min(c * stride.1 + crop.1, w)
                    let y1 = max(y2 - crop.0, 0), x1 = max(x2 - crop.1, 0)
                    let window = image.slice(axis: 2, start: y1, end: y2).slice(axis: 3, start: x1, end: x2)
                    let out = upsampleLogits(model(window).logits, to: (y2 - y1, x2 - x1))
                    let k = out.shape[1]
                    if sum == nil { sum = Tensor.zeros([1, k, h, w]) }
                    let ps = sum!.data, po = out.data, ww = x2 - x1
                    for ch in 0..<k {
                        for y in y1..<y2 {
                            let dst = ps + (ch * h + y) * w + x1, src = po + (ch * (y2 - y1) + (y - y1)) * ww
                            for x in 0..<ww { dst[x] += src[x] }
                        }
                    }
                    for y in y1..<y2 { for x in x1..<x2 { count[y * w + x] += 1 } }
                }
            }
            let total = sum!, k = total.shape[1], p = total.data
            for ch in 0..<k { for i in 0..<(h * w) { p[ch * h * w + i] /= count[i] } }
            return total
        }
    }

    /// The predicted class of every annotation pixel: the logits of `sample`'s (resized) image
    /// resized to the annotation's size, then argmax. Returns labelHeight × labelWidth classes.
    public func predict(_ sample: TransformedSample) -> [Int32] {
        let image = Tensor(shape: [1, 3, sample.height, sample.width], values: sample.image)
        var out = logits(image)
        if out.shape[2] != sample.labelHeight || out.shape[3] != sample.labelWidth {
            out = out.resizeBilinear((sample.labelHeight, sample.labelWidth))
        }
        return out.argmax(axis: 1)
    }
}
