import Foundation
import InstanceModels
import PercepCore
import PercepNN
import Perceptual

/// One image's instances on its padded input canvas: boxes (x1, y1, x2, y2) in pixels, classes
/// 0..<C and full-resolution binary masks.
public struct InstanceGroundTruth: Sendable {
    /// 4·K box coordinates.
    public var boxes: [Float]
    /// K class indices.
    public var classes: [Int]
    /// K × height × width mask bytes (0 or 1) on the padded canvas.
    public var masks: [UInt8]
    /// The padded canvas size.
    public var height: Int, width: Int

    /// K instances on a `height` × `width` canvas.
    public init(boxes: [Float], classes: [Int], masks: [UInt8], height: Int, width: Int) {
        precondition(boxes.count == 4 * classes.count && masks.count == classes.count * height * width,
                     "InstanceGroundTruth: \(boxes.count / 4) boxes, \(classes.count) classes, \(masks.count) mask bytes for \(height)×\(width)")
        self.boxes = boxes; self.classes = classes; self.masks = masks; self.height = height; self.width = width
    }

    /// Number of instances.
    public var count: Int { classes.count }

    /// The masks sampled at pixels (s·k + ⌊s/2⌋, s·m + ⌊s/2⌋): AdelaiDet's stride-`s` GT for the
    /// dice loss (no pooling). K × (height/s) × (width/s) bytes.
    public func sampledMasks(stride s: Int) -> [UInt8] {
        let h = height / s, w = width / s, start = s / 2
        var out = [UInt8](repeating: 0, count: count * h * w)
        for k in 0..<count {
            for y in 0..<h {
                for x in 0..<w { out[(k * h + y) * w + x] = masks[(k * height + start + y * s) * width + start + x * s] }
            }
        }
        return out
    }
}

/// The training settings of CondInst's losses (MODEL.FCOS.*, MODEL.CONDINST.*, LOSS.PERCEPTUAL.*).
public struct CondInstLossSettings {
    /// Focal loss α and γ (MODEL.FCOS.LOSS_ALPHA, LOSS_GAMMA).
    public var focalAlpha: Float = 0.25, focalGamma: Float = 2
    /// Center-sampling radius in strides (MODEL.FCOS.POS_RADIUS).
    public var centerSampleRadius: Float = 1.5
    /// Stride of the mask logits and their GT (MODEL.CONDINST.MASK_OUT_STRIDE).
    public var maskOutStride = 4
    /// Cap on mask instances per group, −1 for none (MODEL.CONDINST.MAX_PROPOSALS).
    public var maxProposals = 500
    /// Per-image top-k by score·centerness, −1 for off (MODEL.CONDINST.TOPK_PROPOSALS_PER_IM).
    public var topProposalsPerImage = -1
    /// The perceptual mask term (λ inside), nil for the baseline.
    public var perceptual: PerceptualLoss?
    /// Cap on the instances per group that go through the loss network, −1 for none
    /// (LOSS.PERCEPTUAL.MAX_INSTANCES).
    public var perceptualMaxInstances = -1
    /// Instances per pass through the loss network (LOSS.PERCEPTUAL.INSTANCES_PER_CHUNK).
    public var perceptualChunk = 16

    /// AdelaiDet's 1x settings without the perceptual term.
    public init() {}
}

/// The un-normalised losses of one group of images (AdelaiDet's "one GPU"), whose normalisers
/// are global: `CondInstCriterion.terms` turns several groups into the loss terms.
public struct GroupLosses {
    /// Σ focal loss over every location and class.
    public var focalSum: Tensor
    /// Σ (1 − GIoU)·centerness target over positives.
    public var giouSum: Tensor
    /// Σ BCE(centerness logit, target) over positives.
    public var centernessSum: Tensor
    /// Mean dice loss over the group's mask instances (0 without instances).
    public var maskMean: Tensor
    /// λ · mean perceptual loss over the group's instances through the loss network, when on.
    public var perceptualMean: Tensor?
    /// Positive locations and the sum of their centerness targets.
    public var positives: Int, centernessTargetSum: Double
    /// Mask instances (after MAX_PROPOSALS / top-k).
    public var maskInstances: Int
}

/// CondInst's training losses as AdelaiDet computes them (`fcos_outputs.py`, `condinst.py`,
/// `dynamic_mask_head.py`), one group at a time.
public struct CondInstCriterion {
    /// The network's spec (classes, strides, sizes of interest).
    public let spec: CondInstSpec
    /// Loss settings.
    public var settings: CondInstLossSettings

    /// A criterion for networks of `spec`.
    public init(spec: CondInstSpec, settings: CondInstLossSettings) {
        self.spec = spec
        self.settings = settings
    }

    /// Forward of `model` on one group's images [G, 3, H, W] (padded to a multiple of 32) and the
    /// group's un-normalised losses. `rng` draws the MAX_PROPOSALS and perceptual samples.
    public func groupLosses(model: CondInstModel, images: Tensor, truth: [InstanceGroundTruth], rng: inout SeededRNG) -> GroupLosses {
        precondition(images.shape[0] == truth.count, "CondInst: \(images.shape[0]) images, \(truth.count) ground truths")
        let out = model(images)
        let numClasses = spec.numClasses, g = truth.count
        let levels = out.levels.enumerated().map { l, o in LevelGeometry(stride: spec.strides[l], height: o.logits.shape[2], width: o.logits.shape[3]) }
        let ranges = FCOSTargets.sizeRanges(spec.sizesOfInterest)
        // Targets per image, with instance indices into the group's concatenated instances.
        var assignments: [FCOSAssignment] = [], instanceOffset = [0]
        for t in truth {
            let centers = t.masks.withUnsafeBufferPointer { FCOSTargets.maskCenters($0, count: t.count, height: t.height, width: t.width) }
            let boxes = ImageBoxes(boxes: t.boxes, classes: t.classes, centers: centers)
            assignments.append(FCOSTargets.assign(boxes, levels: levels, sizeRanges: ranges, radius: settings.centerSampleRadius, numClasses: numClasses))
            instanceOffset.append(instanceOffset.last! + t.count)
        }
        // Classification over every location, level by level (labels in (image, y, x) order).
        var focal: Tensor?
        var levelStart = [0]
        for level in levels { levelStart.append(levelStart.last! + level.count) }
        for (l, level) in levels.enumerated() {
            var labels = [Int32](); labels.reserveCapacity(g * level.count)
            for a in assignments { labels += a.labels[levelStart[l]..<levelStart[l + 1]] }
            let term = InstanceLoss.sigmoidFocalSum(out.levels[l].logits, labels: labels, alpha: settings.focalAlpha, gamma: settings.focalGamma)
            focal = focal.map { $0 + term } ?? term
        }
        // Positives in AdelaiDet's order: level, image, y, x.
        struct Positive { var level: Int, image: Int, index: Int, instance: Int, label: Int32 }
        var positives: [Positive] = []
        for l in 0..<levels.count {
            for (image, a) in assignments.enumerated() {
                for i in levelStart[l]..<levelStart[l + 1] where a.labels[i] != Int32(numClasses) {
                    positives.append(Positive(level: l, image: image, index: i - levelStart[l], instance: instanceOffset[image] + a.instanceIndex[i], label: a.labels[i]))
                }
            }
        }
        var regressionTargets: [Float] = [], centernessTargets: [Float] = []
        for p in positives {
            let t = Array(assignments[p.image].regressionTargets[(4 * (levelStart[p.level] + p.index))..<(4 * (levelStart[p.level] + p.index) + 4)])
            regressionTargets += t
            centernessTargets.append(FCOSTargets.centerness(t[...]))
        }
        // Per-level picks of the positives' predictions, concatenated in the positives' order.
        func gathered(_ tensors: [Tensor]) -> Tensor? {
            var parts: [Tensor] = []
            for l in 0..<levels.count {
                let picks = positives.filter { $0.level == l }.map { (image: $0.image, y: $0.index / levels[l].width, x: $0.index % levels[l].width) }
                if !picks.isEmpty { parts.append(tensors[l].pickLocations(picks)) }
            }
            return parts.isEmpty ? nil : (parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0))
        }
        let zero = Tensor(scalar: 0)
        var giou = zero, centerness = zero
        let count = positives.count
        if count > 0, let regression = gathered(out.levels.map(\.boxRegression)), let ctr = gathered(out.levels.map(\.centerness)) {
            giou = InstanceLoss.giouSum(regression, Tensor(shape: [count, 4], values: regressionTargets), weight: centernessTargets)
            centerness = Loss.bceWithLogits(ctr.reshaped([count]), Tensor(shape: [count], values: centernessTargets), reduction: .sum)
        }
        // Mask instances: every positive, capped per group.
        var chosen = Array(0..<count)
        if settings.maxProposals >= 0 && settings.maxProposals < count {
            chosen = Array(rng.permutation(count).prefix(settings.maxProposals))
        } else if settings.topProposalsPerImage > 0 && count > 0 {
            chosen = topProposals(positives.map { ($0.image, $0.instance) }, out: out, picks: positives.map { ($0.level, $0.image, $0.index) },
                                  levels: levels)
        }
        var mask = zero, perceptual: Tensor? = settings.perceptual == nil ? nil : zero
        if !chosen.isEmpty, let allParams = gathered(out.controllers) {
            let params = chosen.count == count && chosen == Array(0..<count) ? allParams : allParams.indexSelect(axis: 0, indices: chosen)
            let instances = MaskInstances(imageIndex: chosen.map { positives[$0].image },
                                          locations: chosen.map { levels[positives[$0].level].location(positives[$0].index) },
                                          levels: chosen.map { positives[$0].level })
            let logits8 = model.maskHead(maskFeatures: out.maskFeatures, parameters: params, instances: instances)
            let logits = logits8.alignedBilinear(factor: spec.strides[0] / settings.maskOutStride)
            let s = settings.maskOutStride
            let bank = truth.flatMap { $0.sampledMasks(stride: s) }
            let gtIndex = chosen.map { positives[$0].instance }
            mask = InstanceLoss.dice(logits, masks: bank, maskIndex: gtIndex).mean()
            if let loss = settings.perceptual {
                perceptual = perceptualMean(loss, logits: logits, bank: bank, gtIndex: gtIndex, rng: &rng)
            }
        }
        var centernessSum = 0.0
        for c in centernessTargets { centernessSum += Double(c) }
        return GroupLosses(focalSum: focal!, giouSum: giou, centernessSum: centerness, maskMean: mask, perceptualMean: perceptual,
                           positives: count, centernessTargetSum: centernessSum, maskInstances: chosen.count)
    }

    /// AdelaiDet's TOPK_PROPOSALS_PER_IM: per image, ⌊k / distinct instances⌋ (≥ 1) positives per
    /// instance, those with the highest max-class score × centerness.
    func topProposals(_ owners: [(image: Int, instance: Int)], out: CondInstOutput, picks: [(level: Int, image: Int, index: Int)],
                      levels: [LevelGeometry]) -> [Int] {
        func score(_ p: Int) -> Float {
            let (l, image, index) = picks[p]
            let logits = out.levels[l].logits, c = logits.shape[1], plane = levels[l].count
            var best = -Float.infinity
            for k in 0..<c { best = max(best, logits.data[(image * c + k) * plane + index]) }
            return Kernels.sigmoid(best) * Kernels.sigmoid(out.levels[l].centerness.data[image * plane + index])
        }
        var kept: [Int] = []
        for image in Set(owners.map(\.image)).sorted() {
            let mine = owners.indices.filter { owners[$0].image == image }
            let instances = Set(mine.map { owners[$0].instance }).sorted()
            let perInstance = max(settings.topProposalsPerImage / instances.count, 1)
            for instance in instances {
                let candidates = mine.filter { owners[$0].instance == instance }
                if candidates.count <= perInstance { kept += candidates; continue }
                kept += candidates.map { ($0, score($0)) }.sorted { $0.1 > $1.1 }.prefix(perInstance).map(\.0)
            }
        }
        return kept
    }

    /// λ · the perceptual loss of the instances' stride-`s` mask probabilities against their GT
    /// masks, averaged over instances (capped by `perceptualMaxInstances`). The loss network runs
    /// in chunks, each forward and backward on a tape of its own, so memory does not grow with the
    /// number of instances; the result is one op whose gradient is the chunks' gradients.
    func perceptualMean(_ loss: PerceptualLoss, logits: Tensor, bank: [UInt8], gtIndex: [Int], rng: inout SeededRNG) -> Tensor {
        var rows = Array(0..<gtIndex.count)
        if settings.perceptualMaxInstances >= 0 && settings.perceptualMaxInstances < rows.count {
            rows = Array(rng.permutation(rows.count).prefix(settings.perceptualMaxInstances)).sorted()
        }
        guard !rows.isEmpty else { return Tensor(scalar: 0) }
        let plane = logits.count / logits.shape[0], n = rows.count
        let probabilities = (rows.count == logits.shape[0] ? logits : logits.indexSelect(axis: 0, indices: rows)).sigmoid()
        let gradient = Tensor.zeros(probabilities.shape)
        var total = 0.0
        let chunk = max(1, settings.perceptualChunk)
        for start in stride(from: 0, to: n, by: chunk) {
            let end = min(n, start + chunk)
            let shape = [end - start] + Array(probabilities.shape.dropFirst())
            let prediction = Tensor(uninitialized: shape), target = Tensor(uninitialized: shape)
            prediction.data.update(from: probabilities.data + start * plane, count: prediction.count)
            for (k, r) in rows[start..<end].enumerated() {
                for j in 0..<plane { target.data[k * plane + j] = Float(bank[gtIndex[r] * plane + j]) }
            }
            prediction.requiresGrad = true
            let value: Float = Tape.isolated {
                // Chunk mean × chunk share = its part of the mean over all n instances.
                let part = loss.weighted(prediction, target) * (Float(end - start) / Float(n))
                part.backward()
                return part.item
            }
            total += Double(value)
            (gradient.data + start * plane).update(from: prediction.grad!.data, count: prediction.count)
        }
        let out = Tensor(scalar: Float(total))
        Tape.record(out, inputs: [probabilities]) { g in [gradient * g.item] }
        return out
    }

    /// The loss terms of a rank's groups, normalised as AdelaiDet's 8-GPU training is (one group
    /// per GPU, DDP averaging): N_pos and Σ centerness are the batch totals divided by the number of
    /// groups in the global batch, clamped at 1 and 1e-6 and rounded to float32 like `reduce_mean`;
    /// the mask and perceptual terms are per-group means; and every term is scaled by
    /// worldSize / groupsInBatch, so the trainer's average over ranks is AdelaiDet's average over GPUs.
    public static func terms(_ groups: [GroupLosses], totalPositives: Double, totalCenternessTargets: Double,
                             groupsInBatch: Int, worldSize: Int) -> [(name: String, value: Tensor)] {
        let positivesPerGroup = max(Float(totalPositives / Double(groupsInBatch)), 1)
        let centernessPerGroup = max(Float(totalCenternessTargets / Double(groupsInBatch)), 1e-6)
        let share = Float(worldSize) / Float(groupsInBatch)
        func sum(_ pick: (GroupLosses) -> Tensor) -> Tensor { groups.dropFirst().reduce(pick(groups[0])) { $0 + pick($1) } }
        var out: [(String, Tensor)] = [
            ("loss_fcos_cls", sum(\.focalSum) * (share / positivesPerGroup)),
            ("loss_fcos_loc", sum(\.giouSum) * (share / centernessPerGroup)),
            ("loss_fcos_ctr", sum(\.centernessSum) * (share / positivesPerGroup)),
            ("loss_mask", sum(\.maskMean) * share),
        ]
        if groups[0].perceptualMean != nil { out.append(("loss_percep", sum { $0.perceptualMean! } * share)) }
        return out
    }
}
