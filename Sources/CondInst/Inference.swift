import Foundation
import InstanceModels
import PercepCore

/// One detection in the resized image's pixels before postprocessing.
public struct Detection: Sendable {
    /// (x1, y1, x2, y2).
    public var box: [Float]
    /// √(cls·ctr).
    public var score: Float
    /// Contiguous class index.
    public var label: Int
    /// FCOS location (x, y), level and the flat index of its controller vector among the
    /// image's locations (to run the mask head).
    public var location: (x: Float, y: Float), level: Int, locationIndex: Int
}

/// Inference settings (MODEL.FCOS.*_TEST, MODEL.CONDINST.*).
public struct InferenceSettings: Sendable {
    /// Candidate threshold on cls·ctr (INFERENCE_TH_TEST, with THRESH_WITH_CTR).
    public var scoreThreshold: Float = 0.05
    /// Candidates kept per level and image before NMS (PRE_NMS_TOPK_TEST).
    public var preNMSTopK = 1000
    /// Class-aware NMS IoU threshold (NMS_TH), a double as in torchvision.
    public var nmsThreshold = 0.6
    /// Detections kept per image (POST_NMS_TOPK_TEST).
    public var postNMSTopK = 100
    /// Probability threshold of the pasted masks.
    public var maskThreshold: Float = 0.5

    /// AdelaiDet's test settings.
    public init() {}
}

/// CondInst's inference: FCOS decoding per level, class-aware NMS, the dynamic mask head on the
/// kept detections, and the paste back to the original image.
public enum CondInstInference {
    /// torchvision's `batched_nms`: boxes of different classes never suppress each other; within a
    /// class, visiting boxes by decreasing score (ties: lower index first), a box is dropped when
    /// its IoU (no +1, in float32) exceeds `threshold` (compared in double, as torchvision's
    /// kernel does, so an IoU of exactly 0.6 in float32, 0.6000000238, is above 0.6). Returns the
    /// kept indices by score.
    public static func batchedNMS(boxes: [Float], scores: [Float], classes: [Int], threshold: Double) -> [Int] {
        let n = scores.count
        let order = (0..<n).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        var suppressed = [Bool](repeating: false, count: n), keep: [Int] = []
        func area(_ i: Int) -> Float { (boxes[4 * i + 2] - boxes[4 * i]) * (boxes[4 * i + 3] - boxes[4 * i + 1]) }
        for (rank, i) in order.enumerated() where !suppressed[i] {
            keep.append(i)
            for j in order[(rank + 1)...] where !suppressed[j] && classes[j] == classes[i] {
                let w = max(0, min(boxes[4 * i + 2], boxes[4 * j + 2]) - max(boxes[4 * i], boxes[4 * j]))
                let h = max(0, min(boxes[4 * i + 3], boxes[4 * j + 3]) - max(boxes[4 * i + 1], boxes[4 * j + 1]))
                let inter = w * h
                let iou: Float = inter / (area(i) + area(j) - inter)
                if Double(iou) > threshold { suppressed[j] = true }
            }
        }
        return keep
    }

    /// The detections of image `image` from one forward (inference-mode regression is in strides).
    public static func detect(_ out: CondInstOutput, image: Int, strides: [Int], settings: InferenceSettings) -> [Detection] {
        var all: [Detection] = []
        var offset = 0
        for (l, level) in out.levels.enumerated() {
            let c = level.logits.shape[1], h = level.logits.shape[2], w = level.logits.shape[3], plane = h * w
            let geometry = LevelGeometry(stride: strides[l], height: h, width: w)
            let logits = level.logits.data + image * c * plane, reg = level.boxRegression.data + image * 4 * plane
            let ctr = level.centerness.data + image * plane
            // (location, class) pairs above the threshold, in row-major (location, class) order.
            var candidates: [(loc: Int, cls: Int, score: Float)] = []
            for loc in 0..<plane {
                let centerness = Kernels.sigmoid(ctr[loc])
                for k in 0..<c {
                    let s = Kernels.sigmoid(logits[k * plane + loc]) * centerness
                    if s > settings.scoreThreshold { candidates.append((loc, k, s)) }
                }
            }
            if candidates.count > settings.preNMSTopK {
                candidates = Array(candidates.enumerated().sorted { $0.element.score > $1.element.score || ($0.element.score == $1.element.score && $0.offset < $1.offset) }
                    .prefix(settings.preNMSTopK).map(\.element))
            }
            let stride = Float(strides[l])
            for cand in candidates {
                let (x, y) = geometry.location(cand.loc)
                let box = [x - reg[cand.loc] * stride, y - reg[plane + cand.loc] * stride,
                           x + reg[2 * plane + cand.loc] * stride, y + reg[3 * plane + cand.loc] * stride]
                all.append(Detection(box: box, score: cand.score.squareRoot(), label: cand.cls, location: (x, y), level: l,
                                     locationIndex: offset + cand.loc))
            }
            offset += plane
        }
        let keep = batchedNMS(boxes: all.flatMap(\.box), scores: all.map(\.score), classes: all.map(\.label), threshold: settings.nmsThreshold)
        var kept = keep.map { all[$0] }
        if kept.count > settings.postNMSTopK {
            // Every score ≥ the k-th largest (ties may keep a few more), in NMS order.
            let threshold = kept.map(\.score).sorted(by: >)[settings.postNMSTopK - 1]
            kept = kept.filter { $0.score >= threshold }
        }
        return kept
    }

    /// Mask probabilities at stride 4 of the padded image for `detections` of `image`:
    /// [n, 1, H/4, W/4] (sigmoid of the aligned ×2 dynamic-head logits).
    public static func maskProbabilities(_ model: CondInstModel, _ out: CondInstOutput, image: Int, detections: [Detection],
                                         maskOutStride: Int = 4) -> Tensor {
        let levelSizes = out.controllers.map { $0.shape[2] * $0.shape[3] }
        var params: [Float] = []
        let k = model.maskHead.parameterCount
        for d in detections {
            var index = d.locationIndex, l = 0
            while index >= levelSizes[l] { index -= levelSizes[l]; l += 1 }
            let controller = out.controllers[l], plane = levelSizes[l]
            for ch in 0..<k { params.append(controller.data[(image * k + ch) * plane + index]) }
        }
        let features = out.maskFeatures.slice(axis: 0, start: image, end: image + 1)
        let instances = MaskInstances(imageIndex: detections.map { _ in 0 }, locations: detections.map(\.location), levels: detections.map(\.level))
        let logits = model.maskHead(maskFeatures: features, parameters: Tensor(shape: [detections.count, k], values: params), instances: instances)
        return logits.alignedBilinear(factor: model.spec.strides[0] / maskOutStride).sigmoid()
    }

    /// AdelaiDet's `postprocess`: boxes scaled from the resized (h, w) to the original (H0, W0)
    /// size, clipped, empty ones dropped; masks aligned ×(padded/mask) back to the padded size,
    /// cropped to h × w, resized bilinearly (half-pixel) to H0 × W0 and thresholded.
    /// masks: [n, 1, Hm, Wm] probabilities. Returns the kept detections' indices, their boxes
    /// (4 per detection) and masks (H0 × W0 bytes each).
    public static func postprocess(boxes: [Float], masks: Tensor, padded: (Int, Int), resized: (Int, Int), original: (Int, Int),
                                   threshold: Float = 0.5) -> (keep: [Int], boxes: [Float], masks: [[UInt8]]) {
        let n = boxes.count / 4
        let sx = Float(original.1) / Float(resized.1), sy = Float(original.0) / Float(resized.0)
        var keep: [Int] = [], outBoxes: [Float] = []
        for i in 0..<n {
            var b = [boxes[4 * i] * sx, boxes[4 * i + 1] * sy, boxes[4 * i + 2] * sx, boxes[4 * i + 3] * sy]
            b[0] = min(max(b[0], 0), Float(original.1)); b[2] = min(max(b[2], 0), Float(original.1))
            b[1] = min(max(b[1], 0), Float(original.0)); b[3] = min(max(b[3], 0), Float(original.0))
            if b[2] - b[0] > 0 && b[3] - b[1] > 0 { keep.append(i); outBoxes += b }
        }
        guard !keep.isEmpty else { return ([], [], []) }
        let factor = padded.0 / masks.shape[2]
        let selected = keep.count == n ? masks : masks.indexSelect(axis: 0, indices: keep)
        let full = selected.alignedBilinear(factor: factor)
            .slice(axis: 2, start: 0, end: resized.0).slice(axis: 3, start: 0, end: resized.1)
            .resizeBilinear(original, alignCorners: false)
        let plane = original.0 * original.1
        let out = (0..<keep.count).map { i in (0..<plane).map { full.data[i * plane + $0] > threshold ? UInt8(1) : 0 } }
        return (keep, outBoxes, out)
    }
}
