/// mmsegmentation's IoUMetric (evaluation spec §2.1–2.2) as a mergeable accumulator.
///
/// Per image, pixels whose (reduced) label is 255 are dropped; for each class c in 0…C−1 the
/// accumulator adds the intersection (pred = label = c), the predicted area and the label area.
/// Values outside 0…C−1 fall outside `torch.histc`'s bins and are not counted. Sums are dataset
/// level (global accumulation, not a per-image mean) and kept as Int64, so sums from several ranks
/// add exactly: all-reduce `flat` and rebuild with `init(numClasses:flat:)`.
public struct IoUAccumulator: Equatable, Sendable {
    /// Number of classes C.
    public let numClasses: Int
    /// The ignored label.
    public static let ignoreIndex = 255
    /// Per-class Σ intersection.
    public private(set) var intersect: [Int64]
    /// Per-class Σ predicted area.
    public private(set) var predArea: [Int64]
    /// Per-class Σ label area.
    public private(set) var labelArea: [Int64]

    /// An empty accumulator for C classes.
    public init(numClasses: Int) {
        precondition(numClasses >= 1, "IoU needs at least one class")
        self.numClasses = numClasses
        intersect = Array(repeating: 0, count: numClasses)
        predArea = intersect; labelArea = intersect
    }

    /// Rebuilds an accumulator from `flat` (3·C sums: intersection, predicted area, label area),
    /// e.g. after summing `flat` over ranks.
    public init(numClasses: Int, flat: [Int64]) {
        precondition(flat.count == 3 * numClasses, "flat IoU sums need 3·\(numClasses) values, got \(flat.count)")
        self.numClasses = numClasses
        intersect = Array(flat[0..<numClasses])
        predArea = Array(flat[numClasses..<2 * numClasses])
        labelArea = Array(flat[2 * numClasses..<3 * numClasses])
    }

    /// The raw sums laid out [intersect(C), predArea(C), labelArea(C)], for an all-reduce.
    public var flat: [Int64] { intersect + predArea + labelArea }

    /// Adds another accumulator's sums (another rank or shard).
    public mutating func merge(_ other: IoUAccumulator) {
        precondition(other.numClasses == numClasses, "merging IoU sums of \(other.numClasses) and \(numClasses) classes")
        for c in 0..<numClasses {
            intersect[c] += other.intersect[c]; predArea[c] += other.predArea[c]; labelArea[c] += other.labelArea[c]
        }
    }

    /// Adds one image: `prediction` (class indices, any integer type) and `label` (the annotation
    /// as stored, same count). With `reduceZeroLabel` the annotation only is mapped 0 → 255,
    /// v → v−1, 254 → 255 first (mmseg, on uint8 values).
    public mutating func add<P: BinaryInteger, L: BinaryInteger>(prediction: [P], label: [L], reduceZeroLabel: Bool = false) {
        precondition(prediction.count == label.count, "prediction has \(prediction.count) pixels, label \(label.count)")
        let c = numClasses
        for i in 0..<label.count {
            var l = Int(label[i])
            if reduceZeroLabel {
                // uint8 arithmetic as mmseg: 0 → 255, then subtract 1 (255 → 254), then 254 → 255.
                if l == 0 { l = 255 }
                l = (l - 1) & 0xFF
                if l == 254 { l = 255 }
            }
            if l == Self.ignoreIndex { continue }
            let p = Int(prediction[i])
            if p >= 0 && p < c {
                predArea[p] += 1
                if p == l { intersect[p] += 1 }
            }
            if l >= 0 && l < c { labelArea[l] += 1 }
        }
    }

    /// The metrics of the sums so far.
    public var result: IoUResult {
        var iou = [Double](), acc = [Double](), dice = [Double]()
        for c in 0..<numClasses {
            let i = Double(intersect[c]), p = Double(predArea[c]), l = Double(labelArea[c])
            let u = p + l - i
            // 0/0 gives NaN as in numpy; nanmean drops it below.
            iou.append(i / u); acc.append(i / l); dice.append(2 * i / (p + l))
        }
        let totalI = intersect.reduce(0, +), totalL = labelArea.reduce(0, +)
        return IoUResult(iou: iou, acc: acc, dice: dice, aAcc: Double(totalI) / Double(totalL),
                         mIoU: Self.nanmean(iou), mAcc: Self.nanmean(acc), mDice: Self.nanmean(dice))
    }

    /// Mean over the non-NaN values (NaN when all are NaN), as numpy's nanmean.
    static func nanmean(_ x: [Double]) -> Double {
        let finite = x.filter { !$0.isNaN }
        return finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
    }
}

/// Metrics of an `IoUAccumulator`, as fractions in [0, 1] (mmseg prints them ×100, rounded to 2
/// decimals). Classes with zero union (absent from prediction and label) have IoU NaN and are
/// left out of the means.
public struct IoUResult: Equatable, Sendable {
    /// Per-class I / U.
    public let iou: [Double]
    /// Per-class I / label area.
    public let acc: [Double]
    /// Per-class 2I / (pred area + label area).
    public let dice: [Double]
    /// ΣI / Σ label area over all classes.
    public let aAcc: Double
    /// nanmean of `iou`.
    public let mIoU: Double
    /// nanmean of `acc`.
    public let mAcc: Double
    /// nanmean of `dice`.
    public let mDice: Double

    /// mmseg's reported number: round(x · 100, 2), half to even like numpy's round.
    public static func percent(_ x: Double) -> Double {
        if x.isNaN { return x }
        return (x * 100 * 100).rounded(.toNearestOrEven) / 100
    }
}

extension IoUAccumulator {
    /// mmseg's per-class table (IoU and Acc in percent, two decimals, `nan` for classes absent
    /// from prediction and annotation, and the annotated pixel count) and its summary line.
    /// `classNames` label the rows (class indices when nil or short).
    public func table(classNames: [String]? = nil) -> String {
        let r = result
        func pct(_ x: Double) -> String { x.isNaN ? "nan" : String(format: "%.2f", IoUResult.percent(x)) }
        func left(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        func right(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        let names = (0..<numClasses).map { c in classNames.flatMap { c < $0.count ? $0[c] : nil } ?? "\(c)" }
        let width = max(5, names.map(\.count).max() ?? 5)
        var lines = [left("class", width) + right("IoU(%)", 10) + right("Acc(%)", 10) + right("label px", 12)]
        for c in 0..<numClasses {
            lines.append(left(names[c], width) + right(pct(r.iou[c]), 10) + right(pct(r.acc[c]), 10) + right("\(labelArea[c])", 12))
        }
        lines.append("aAcc \(pct(r.aAcc))  mIoU \(pct(r.mIoU))  mAcc \(pct(r.mAcc))")
        return lines.joined(separator: "\n")
    }
}
