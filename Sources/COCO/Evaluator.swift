import Foundation

/// The outcome of one evaluation: pycocotools' `eval` arrays and the summary.
public struct COCOEvaluation: Sendable {
    /// bbox or segm.
    public let iouType: IoUType
    /// Categories in contiguous-index order (the K axis).
    public let categories: [COCOCategory]
    /// precision[t][r][k][a][m] flattened row-major, T×R×K×A×M = 10×101×K×4×3; −1 where the
    /// category has no non-ignored ground truth in that area range.
    public let precision: [Double]
    /// recall[t][k][a][m] flattened row-major, T×K×A×M; −1 as in `precision`.
    public let recall: [Double]
    /// Detection scores sampled at the recall thresholds, shaped like `precision`.
    public let scores: [Double]
    /// The 12 summary statistics in pycocotools' order (AP, AP50, AP75, APs, APm, APl, AR1, AR10,
    /// AR100, ARs, ARm, ARl); −1 where there is no data.
    public let stats: [Double]
    /// AP@[.50:.95], all areas, 100 detections, per category (contiguous index order); −1 for a
    /// category without ground truth.
    public let perCategoryAP: [Double]

    /// The 12 lines pycocotools' `summarize()` prints, in its exact format.
    public var summaryLines: [String] { COCOSummary.lines(stats) }
}

/// COCO detection evaluation identical to pycocotools' `COCOeval` with default parameters
/// (`evaluate()`, `accumulate()`, `summarize()`), for boxes or masks.
public struct COCOEvaluator: Sendable {
    /// The ground truth (its images and categories define the evaluated ids).
    public let groundTruth: COCODataset
    /// Loaded results (`COCOResults.load`).
    public let results: [COCOAnnotation]
    /// bbox or segm.
    public let iouType: IoUType
    /// Where the results came from, for error messages.
    public let resultsPath: String

    /// Prepares an evaluation; nothing is computed until `evaluate()`.
    public init(groundTruth: COCODataset, results: [COCOAnnotation], iouType: IoUType, resultsPath: String = "<results>") {
        self.groundTruth = groundTruth; self.results = results; self.iouType = iouType; self.resultsPath = resultsPath
    }

    /// Per-(image, category, area range) matching outcome, the part of pycocotools' `evalImgs`
    /// that `accumulate` reads. Detections are in matching order (score descending, stable).
    struct ImageEval {
        /// Scores of the (at most 100) detections.
        var scores: [Double]
        /// matched[t·D + d]: detection d matched a ground truth at threshold t.
        var matched: [Bool]
        /// ignored[t·D + d]: detection d is ignored at threshold t.
        var ignored: [Bool]
        /// Number of ground truths that are not ignored.
        var nonIgnoredGT: Int
    }

    /// The per-annotation fields matching reads, as flat arrays (copying whole annotations in the
    /// inner loops would retain and release their segmentation storage each time).
    struct Columns {
        var gtArea: [Double], gtCrowd: [Bool], gtID: [Int]
        var dtArea: [Double], dtScore: [Double], dtID: [Int]
    }

    /// Runs evaluate, accumulate and summarize.
    /// - Throws: `COCOError` when a mask cannot be built (segm mode: a missing segmentation, a polygon
    ///   with fewer than 3 points).
    public func evaluate() throws -> COCOEvaluation {
        let gt = groundTruth
        let T = COCOEvalParams.iouThresholds.count, R = COCOEvalParams.recallThresholds.count
        let A = COCOEvalParams.areaRanges.count, M = COCOEvalParams.maxDetections.count
        let K = gt.categories.count
        let maxDet = COCOEvalParams.maxDetections.last!

        // Image ids sorted and unique, as `np.unique(p.imgIds)`.
        let imageIDs = Array(Set(gt.images.map(\.id))).sorted()
        var imagePosition: [Int: Int] = [:]
        imagePosition.reserveCapacity(imageIDs.count)
        for (i, id) in imageIDs.enumerated() { imagePosition[id] = i }
        let I = imageIDs.count

        // Group annotations by (category, image) in file order, as `_prepare` does.
        var gtGroups: [Int: [Int]] = [:], dtGroups: [Int: [Int]] = [:]
        for (n, a) in gt.annotations.enumerated() {
            guard let k = gt.categoryIndex(id: a.categoryID), let i = imagePosition[a.imageID] else { continue }
            gtGroups[k * I + i, default: []].append(n)
        }
        for (n, a) in results.enumerated() {
            // Results in categories the ground truth lacks are dropped, as `getAnnIds(catIds=…)` does.
            guard let k = gt.categoryIndex(id: a.categoryID), let i = imagePosition[a.imageID] else { continue }
            dtGroups[k * I + i, default: []].append(n)
        }
        let keys = Set(gtGroups.keys).union(dtGroups.keys).sorted()
        let columns = Columns(
            gtArea: gt.annotations.map(\.area), gtCrowd: gt.annotations.map(\.isCrowd), gtID: gt.annotations.map(\.id),
            dtArea: results.map(\.area), dtScore: results.map { $0.score ?? 0 }, dtID: results.map(\.id))

        // evalImgs[k][a] lists (image position, outcome) in ascending image order.
        var evalImgs = [[[(Int, ImageEval)]]](repeating: [[(Int, ImageEval)]](repeating: [], count: A), count: K)
        for key in keys {
            let k = key / I, i = key % I
            let g = gtGroups[key] ?? [], dAll = dtGroups[key] ?? []
            // Stable sort by descending score (numpy mergesort on −score), cut to the largest maxDet.
            let d = Array(dAll.sorted { l, r in
                let sl = columns.dtScore[l], sr = columns.dtScore[r]
                return sl != sr ? sl > sr : l < r
            }.prefix(maxDet))
            let ious = try iouMatrix(detections: d, groundTruth: g)
            for a in 0..<A {
                evalImgs[k][a].append((i, evaluateImage(gt: g, dt: d, ious: ious, area: COCOEvalParams.areaRanges[a], columns: columns)))
            }
        }

        let (precision, recall, scores) = accumulate(evalImgs, K: K)

        let stats = COCOSummary.stats(precision: precision, recall: recall, K: K)
        let perCategory = (0..<K).map { k -> Double in
            var values: [Double] = []
            for t in 0..<T { for r in 0..<R {
                let v = precision[(((t * R + r) * K + k) * A + 0) * M + (M - 1)]
                if v > -1 { values.append(v) }
            } }
            return COCOSummary.mean(values)
        }
        return COCOEvaluation(iouType: iouType, categories: gt.categories, precision: precision, recall: recall,
                              scores: scores, stats: stats, perCategoryAP: perCategory)
    }

    /// pycocotools' `accumulate()`: precision (T×R×K×A×M), recall (T×K×A×M) and scores, −1 where a
    /// (category, area range, maxDets) has no non-ignored ground truth.
    /// - Parameter evalImgs: per category and area range, each image's outcome in ascending image order.
    func accumulate(_ evalImgs: [[[(Int, ImageEval)]]], K: Int) -> (precision: [Double], recall: [Double], scores: [Double]) {
        let T = COCOEvalParams.iouThresholds.count, R = COCOEvalParams.recallThresholds.count
        let A = COCOEvalParams.areaRanges.count, M = COCOEvalParams.maxDetections.count
        var precision = [Double](repeating: -1, count: T * R * K * A * M)
        var recall = [Double](repeating: -1, count: T * K * A * M)
        var scores = [Double](repeating: -1, count: T * R * K * A * M)
        let eps = Double.ulpOfOne  // np.spacing(1)
        for k in 0..<K {
            // This category's precision and scores as [a][m][t][r], copied into the T×R×K×A×M arrays
            // afterwards: writing those directly strides K·A·M doubles per step and misses the cache.
            var precisionK = [Double](repeating: -1, count: A * M * T * R)
            var scoresK = [Double](repeating: -1, count: A * M * T * R)
            for a in 0..<A {
                let list = evalImgs[k][a]
                if list.isEmpty { continue }
                for (m, md) in COCOEvalParams.maxDetections.enumerated() {
                    // Concatenate each image's first md detections, then stable-sort by score.
                    var dtScores: [Double] = [], source: [(Int32, Int32)] = []
                    var npig = 0
                    for (e, (_, ev)) in list.enumerated() {
                        npig += ev.nonIgnoredGT
                        for d in 0..<min(md, ev.scores.count) { dtScores.append(ev.scores[d]); source.append((Int32(e), Int32(d))) }
                    }
                    if npig == 0 { continue }
                    let order = dtScores.indices.sorted { l, r in
                        dtScores[l] != dtScores[r] ? dtScores[l] > dtScores[r] : l < r
                    }
                    let nd = order.count
                    // Per threshold and sorted detection: +1 true positive, −1 false positive, 0 ignored.
                    var outcome = [Int8](repeating: 0, count: T * nd)
                    list.withUnsafeBufferPointer { images in
                        for (j, o) in order.enumerated() {
                            let (e, d) = source[o]
                            let ev = images[Int(e)].1
                            let D = ev.scores.count
                            for t in 0..<T where !ev.ignored[t * D + Int(d)] {
                                outcome[t * nd + j] = ev.matched[t * D + Int(d)] ? 1 : -1
                            }
                        }
                    }
                    var pr = [Double](repeating: 0, count: nd), rc = [Double](repeating: 0, count: nd)
                    for t in 0..<T {
                        var tpSum = 0.0, fpSum = 0.0
                        for j in 0..<nd {
                            let v = outcome[t * nd + j]
                            if v > 0 { tpSum += 1 } else if v < 0 { fpSum += 1 }
                            rc[j] = tpSum / Double(npig)
                            pr[j] = tpSum / (fpSum + tpSum + eps)
                        }
                        recall[((t * K + k) * A + a) * M + m] = nd > 0 ? rc[nd - 1] : 0
                        // Precision envelope: make it non-increasing from the right.
                        if nd > 1 { for j in stride(from: nd - 1, to: 0, by: -1) where pr[j] > pr[j - 1] { pr[j - 1] = pr[j] } }
                        // searchsorted(rc, recThrs, side='left'); rc is non-decreasing, so one sweep.
                        var j = 0
                        for (r, threshold) in COCOEvalParams.recallThresholds.enumerated() {
                            while j < nd && rc[j] < threshold { j += 1 }
                            let at = ((a * M + m) * T + t) * R + r
                            precisionK[at] = j < nd ? pr[j] : 0
                            scoresK[at] = j < nd ? dtScores[order[j]] : 0
                        }
                    }
                }
            }
            for t in 0..<T {
                for r in 0..<R {
                    let base = ((t * R + r) * K + k) * A * M
                    for am in 0..<(A * M) {
                        precision[base + am] = precisionK[(am * T + t) * R + r]
                        scores[base + am] = scoresK[(am * T + t) * R + r]
                    }
                }
            }
        }

        return (precision, recall, scores)
    }

    /// D×G IoU matrix (row-major) of sorted detections against ground truths in file order; empty
    /// when either side is empty (then nothing matches), as `computeIoU`.
    func iouMatrix(detections d: [Int], groundTruth g: [Int]) throws -> [Double] {
        if d.isEmpty || g.isEmpty {
            // pycocotools rasterises every ground truth in segm mode, so a bad one fails even where
            // no detection needs it; check without building the mask.
            if iouType == .segm { for n in g { try groundTruth.checkMask(of: groundTruth.annotations[n]) } }
            return []
        }
        let crowd = g.map { groundTruth.annotations[$0].isCrowd }
        switch iouType {
        case .bbox:
            return boxIoU(d.map { results[$0].bbox }, g.map { groundTruth.annotations[$0].bbox }, isCrowd: crowd)
        case .segm:
            let dm = try d.map { try groundTruth.mask(of: results[$0], source: resultsPath, item: .entry(list: "results", index: $0)) }
            let gm = try g.map { try groundTruth.mask(of: groundTruth.annotations[$0]) }
            return maskIoU(dm, gm, isCrowd: crowd)
        }
    }

    /// pycocotools' `evaluateImg` for one (image, category, area range) at maxDet = 100.
    /// - Parameters:
    ///   - g: ground-truth annotation indices in file order.
    ///   - d: result indices, already sorted by score and cut to 100.
    ///   - ious: D×G matrix in those orders.
    func evaluateImage(gt g: [Int], dt d: [Int], ious: [Double], area: (label: String, lo: Double, hi: Double),
                       columns c: Columns) -> ImageEval {
        let thresholds = COCOEvalParams.iouThresholds
        let T = thresholds.count, D = d.count, G = g.count
        let gtIgnoreRaw = g.map { c.gtCrowd[$0] || c.gtArea[$0] < area.lo || c.gtArea[$0] > area.hi }
        // Non-ignored ground truths first, each group in file order (stable argsort of the flags).
        let order = (0..<G).filter { !gtIgnoreRaw[$0] } + (0..<G).filter { gtIgnoreRaw[$0] }
        let gtIgnore = order.map { gtIgnoreRaw[$0] }
        let crowd = order.map { c.gtCrowd[g[$0]] }
        let gtIDs = order.map { c.gtID[g[$0]] }
        var matched = [Bool](repeating: false, count: T * D)
        var ignored = [Bool](repeating: false, count: T * D)
        if !ious.isEmpty {
            var gtMatch = [Int](repeating: 0, count: G)  // detection id matched at this threshold, 0 = none
            for (t, threshold) in thresholds.enumerated() {
                for j in 0..<G { gtMatch[j] = 0 }
                for di in 0..<D {
                    var best = min(threshold, 1 - 1e-10)
                    var m = -1
                    for (j, gj) in order.enumerated() {
                        // A matched ground truth is taken, unless it is a crowd (crowds absorb many).
                        if gtMatch[j] > 0 && !crowd[j] { continue }
                        // Once matched to a real object, do not move to an ignored one (they sort last).
                        if m > -1 && !gtIgnore[m] && gtIgnore[j] { break }
                        let iou = ious[di * G + gj]
                        if iou < best { continue }
                        best = iou
                        m = j  // ties move the match to the later ground truth, as in pycocotools
                    }
                    if m == -1 { continue }
                    ignored[t * D + di] = gtIgnore[m]
                    // pycocotools stores the GT id and tests it for non-zero, so id 0 reads as unmatched.
                    matched[t * D + di] = gtIDs[m] != 0
                    gtMatch[m] = c.dtID[d[di]]
                }
            }
        }
        // Unmatched detections outside the area range are ignored too.
        for (di, n) in d.enumerated() {
            let a = c.dtArea[n]
            if a < area.lo || a > area.hi {
                for t in 0..<T where !matched[t * D + di] { ignored[t * D + di] = true }
            }
        }
        return ImageEval(scores: d.map { c.dtScore[$0] }, matched: matched, ignored: ignored,
                         nonIgnoredGT: gtIgnore.lazy.filter { !$0 }.count)
    }
}
