import CondInst
import Foundation
import InstanceData
import InstanceModels
import PercepCore
import PercepNN

/// How a global batch splits into AdelaiDet's per-GPU groups and how a group becomes network input.
public enum InstanceBatching {
    /// The group of global batch position `position`: positions congruent modulo the number of
    /// groups share a group. With the sampler's rank split (rank r holds positions r, r + W, …)
    /// every group lies on one rank whenever the per-rank batch is a multiple of the group size,
    /// so the groups — and the losses — are the same at any world size.
    public static func group(ofPosition position: Int, groupsInBatch: Int) -> Int { position % groupsInBatch }

    /// The side `size` rounded up to a multiple of `divisor` (FPN's size divisibility, 32).
    public static func padded(_ size: Int, divisor: Int = 32) -> Int { (size + divisor - 1) / divisor * divisor }

    /// A group's images zero-padded (bottom and right, in normalised space) to `size` — by
    /// default the group's largest height and width rounded up to 32 — as [G, 3, H, W], and its
    /// instances on that canvas.
    public static func input(_ samples: [InstanceSample], size: (Int, Int)? = nil) -> (images: Tensor, truth: [InstanceGroundTruth]) {
        let h = size?.0 ?? padded(samples.map(\.height).max() ?? 32), w = size?.1 ?? padded(samples.map(\.width).max() ?? 32)
        let images = Tensor.zeros([samples.count, 3, h, w])
        var truth: [InstanceGroundTruth] = []
        for (k, s) in samples.enumerated() {
            precondition(s.height <= h && s.width <= w, "group input: image \(s.height)×\(s.width) does not fit \(h)×\(w)")
            for c in 0..<3 {
                for y in 0..<s.height {
                    let dst = images.data + ((k * 3 + c) * h + y) * w
                    s.image.withUnsafeBufferPointer { dst.update(from: $0.baseAddress! + (c * s.height + y) * s.width, count: s.width) }
                }
            }
            var masks = [UInt8](repeating: 0, count: s.count * h * w)
            for i in 0..<s.count {
                for y in 0..<s.height {
                    let src = (i * s.height + y) * s.width, dst = (i * h + y) * w
                    masks[dst..<(dst + s.width)] = s.masks[src..<(src + s.width)]
                }
            }
            truth.append(InstanceGroundTruth(boxes: s.boxes, classes: s.classes, masks: masks, height: h, width: w))
        }
        return (images, truth)
    }

    /// The loss parts of several groups and the loss terms they make, normalised as AdelaiDet's
    /// training (`CondInstCriterion.terms`); `reduce` adds the positives and centerness targets
    /// over ranks. `trackStatistics(g)` says whether group `g` updates the mask branch's BN
    /// running statistics; `rng(g)` is group `g`'s generator.
    public static func terms(model: CondInstModel, criterion: CondInstCriterion, groups: [(id: Int, images: Tensor, truth: [InstanceGroundTruth])],
                             groupsInBatch: Int, worldSize: Int, trackStatistics: (Int) -> Bool, rng: (Int) -> SeededRNG,
                             reduce: (inout [Double]) -> Void) -> [(name: String, value: Tensor)] {
        var parts: [GroupLosses] = []
        // Every BatchNorm (the mask branch's, a from-scratch backbone's) sees one group at a time,
        // and only one group's statistics stream into the running averages.
        let norms = model.namedModules().compactMap { $0.1 as? BatchNorm2d }
        for g in groups {
            for bn in norms { bn.tracksRunningStatistics = trackStatistics(g.id) }
            var generator = rng(g.id)
            parts.append(criterion.groupLosses(model: model, images: g.images, truth: g.truth, rng: &generator))
        }
        for bn in norms { bn.tracksRunningStatistics = true }
        var totals = [parts.reduce(0) { $0 + Double($1.positives) }, parts.reduce(0) { $0 + $1.centernessTargetSum }]
        reduce(&totals)
        return CondInstCriterion.terms(parts, totalPositives: totals[0], totalCenternessTargets: totals[1],
                                       groupsInBatch: groupsInBatch, worldSize: worldSize)
    }
}
