/// pycocotools' default detection parameters (`Params.setDetParams`), bit for bit.
public enum COCOEvalParams {
    /// numpy `linspace(start, stop, num)`: value_i = i·step + start with step = (stop − start)/(num − 1),
    /// and the last value forced to `stop`. Decimal literals would differ in the last bit for some
    /// entries (0.8999999999999999 at index 8 of the IoU thresholds), so the formula is used.
    public static func linspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
        let step = (stop - start) / Double(num - 1)
        var out = (0..<num).map { Double($0) * step + start }
        out[num - 1] = stop
        return out
    }

    /// IoU thresholds 0.50:0.05:0.95 (T = 10).
    public static let iouThresholds: [Double] = linspace(0.5, 0.95, 10)
    /// Recall thresholds 0:0.01:1 (R = 101).
    public static let recallThresholds: [Double] = linspace(0, 1, 101)
    /// Detections kept per image for the three recall settings, ascending (M = 3).
    public static let maxDetections: [Int] = [1, 10, 100]
    /// Area ranges (pixels², both bounds inclusive) in pycocotools' order (A = 4).
    public static let areaRanges: [(label: String, lo: Double, hi: Double)] = [
        ("all", 0, 1e10), ("small", 0, 32 * 32), ("medium", 32 * 32, 96 * 96), ("large", 96 * 96, 1e10),
    ]
}

/// Which geometry IoU is computed on.
public enum IoUType: String, Sendable, CaseIterable {
    /// Boxes (`bbox` of every annotation and result).
    case bbox
    /// Masks (`segmentation`, rasterised as pycocotools' `annToRLE`).
    case segm
}
