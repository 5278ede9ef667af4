import Foundation

/// pycocotools' `summarize()`: the 12 statistics and their printed lines.
public enum COCOSummary {
    /// (is AP, IoU threshold or nil for .50:.95, area label, maxDets) of each statistic, in order.
    static let rows: [(ap: Bool, iou: Double?, area: Int, maxDets: Int)] = [
        (true, nil, 0, 100), (true, 0.5, 0, 100), (true, 0.75, 0, 100),
        (true, nil, 1, 100), (true, nil, 2, 100), (true, nil, 3, 100),
        (false, nil, 0, 1), (false, nil, 0, 10), (false, nil, 0, 100),
        (false, nil, 1, 100), (false, nil, 2, 100), (false, nil, 3, 100),
    ]

    /// The 12 statistics from `precision` (T×R×K×A×M) and `recall` (T×K×A×M): each is the mean of
    /// the entries > −1 of its slice, taken in numpy's C order, or −1 when there are none.
    public static func stats(precision: [Double], recall: [Double], K: Int) -> [Double] {
        let T = COCOEvalParams.iouThresholds.count, R = COCOEvalParams.recallThresholds.count
        let A = COCOEvalParams.areaRanges.count, M = COCOEvalParams.maxDetections.count
        return rows.map { row in
            let m = COCOEvalParams.maxDetections.firstIndex(of: row.maxDets)!
            // `np.where(iouThr == p.iouThrs)`: exact equality, 0.5 and 0.75 are exact in the linspace.
            let ts = row.iou.map { v in COCOEvalParams.iouThresholds.indices.filter { COCOEvalParams.iouThresholds[$0] == v } }
                ?? Array(0..<T)
            var values: [Double] = []
            if row.ap {
                for t in ts { for r in 0..<R { for k in 0..<K {
                    let v = precision[(((t * R + r) * K + k) * A + row.area) * M + m]
                    if v > -1 { values.append(v) }
                } } }
            } else {
                for t in ts { for k in 0..<K {
                    let v = recall[((t * K + k) * A + row.area) * M + m]
                    if v > -1 { values.append(v) }
                } }
            }
            return mean(values)
        }
    }

    /// numpy's `mean` of a 1-D float64 array: pairwise summation (`pairwise_sum` in numpy's loops,
    /// blocks of 128 with 8 accumulators) divided by the count; −1 for no values, as summarize.
    static func mean(_ values: [Double]) -> Double {
        if values.isEmpty { return -1 }
        let sum = values.withUnsafeBufferPointer { pairwiseSum($0[...]) }
        return (0.0 + sum) / Double(values.count)
    }

    static func pairwiseSum(_ a: Slice<UnsafeBufferPointer<Double>>) -> Double {
        let n = a.count, s = a.startIndex
        if n < 8 {
            var res = 0.0
            for i in a.indices { res += a[i] }
            return res
        } else if n <= 128 {
            var r = (0..<8).map { a[s + $0] }
            var i = 8
            while i < n - (n % 8) {
                for j in 0..<8 { r[j] += a[s + i + j] }
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n { res += a[s + i]; i += 1 }
            return res
        } else {
            var n2 = n / 2
            n2 -= n2 % 8
            return pairwiseSum(a[s..<(s + n2)]) + pairwiseSum(a[(s + n2)..<(s + n)])
        }
    }

    /// The 12 lines of `summarize()`, e.g.
    /// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505`.
    public static func lines(_ stats: [Double]) -> [String] {
        zip(rows, stats).map { row, value in
            let title = row.ap ? "Average Precision" : "Average Recall"
            let kind = row.ap ? "(AP)" : "(AR)"
            let iou = row.iou.map { String(format: "%0.2f", $0) } ?? "0.50:0.95"
            let area = COCOEvalParams.areaRanges[row.area].label
            return " " + pad(title, 18) + " " + kind + " @[ IoU=" + pad(iou, 9) + " | area=" + padLeft(area, 6)
                + " | maxDets=" + padLeft(String(row.maxDets), 3) + " ] = " + String(format: "%0.3f", value)
        }
    }

    private static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    private static func padLeft(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
}
