import CondInst
import Foundation
import InstanceData
import InstanceModels
import PercepCore
import PercepHDF5
import PercepNN
import Perceptual

/// One CondInst training step written out for the parity check against the PyTorch twin
/// (`tools/pytorch/condinst_twin.py`): `/model/<name>` (every parameter and buffer before the step,
/// AdelaiDet's names), `/grad/<name>` (d total loss / d parameter), `/input/images` [N, 3, Hp, Wp]
/// (normalised BGR, zero-padded), `/input/image_sizes` [N, 2], per image `/input/gt_boxes_<i>`,
/// `/input/gt_classes_<i>`, `/input/gt_bitmasks_<i>` [K, Hp, Wp], `/lossnet/<name>` with the
/// perceptual term, and root attributes: every loss term, the architecture, `ims_per_group`.
///
/// Images are stored group by group (consecutive `ims_per_group` images form a group) and the
/// whole batch is padded to one size, so the file is self-contained.
public struct StepDump {
    /// Images [N, 3, Hp, Wp].
    public var images: Tensor
    /// (h, w) of each image before padding.
    public var imageSizes: [(Int, Int)]
    /// Each image's instances on the padded canvas.
    public var truth: [InstanceGroundTruth]
    /// Images per group.
    public var imagesPerGroup: Int

    /// A step's inputs.
    public init(images: Tensor, imageSizes: [(Int, Int)], truth: [InstanceGroundTruth], imagesPerGroup: Int) {
        self.images = images; self.imageSizes = imageSizes; self.truth = truth; self.imagesPerGroup = imagesPerGroup
    }

    /// The first global batch of a one-rank run, arranged group by group and padded to one size.
    public init(samples: [InstanceSample], imagesPerGroup: Int) {
        let groupsInBatch = samples.count / imagesPerGroup
        let ordered = (0..<groupsInBatch).flatMap { g in samples.indices.filter { InstanceBatching.group(ofPosition: $0, groupsInBatch: groupsInBatch) == g }.map { samples[$0] } }
        let (images, truth) = InstanceBatching.input(ordered)
        self.init(images: images, imageSizes: ordered.map { ($0.height, $0.width) }, truth: truth, imagesPerGroup: imagesPerGroup)
    }

    /// The loss terms of this step on one rank (the proposal samples drawn from `seed`).
    public func terms(model: CondInstModel, criterion: CondInstCriterion, seed: UInt64 = 0) -> [(name: String, value: Tensor)] {
        let n = images.shape[0], groups = n / imagesPerGroup
        let inputs = (0..<groups).map { g -> (id: Int, images: Tensor, truth: [InstanceGroundTruth]) in
            (g, images.slice(axis: 0, start: g * imagesPerGroup, end: (g + 1) * imagesPerGroup),
             Array(truth[(g * imagesPerGroup)..<((g + 1) * imagesPerGroup)]))
        }
        return InstanceBatching.terms(model: model, criterion: criterion, groups: inputs, groupsInBatch: groups, worldSize: 1,
                                      trackStatistics: { $0 == 0 }, rng: { SeededRNG(seed: seed, stream: "condinst group \($0)") }, reduce: { _ in })
    }

    /// Runs the step (forward, backward, no update) and writes the file; returns the terms' values.
    public func write(to path: String, model: CondInstModel, criterion: CondInstCriterion) throws -> [(String, Double)] {
        let spec = model.spec
        guard spec.resnet.stemChannels == spec.resnet.bottleneckChannels, spec.resnet.res2Channels == 4 * spec.resnet.bottleneckChannels,
              spec.fcosClsConvs == spec.fcosBoxConvs else {
            throw InstanceConfigError("MODEL", "--dump-step describes ResNets whose stem equals WIDTH_PER_GROUP and RES2_OUT_CHANNELS is 4× it, and equal FCOS tower depths (what the twin builds)")
        }
        let before = model.stateDict().map { ($0.0, $0.1.copy()) }
        for (_, p) in model.namedParameters() { p.grad = nil }
        let terms = self.terms(model: model, criterion: criterion)
        let total = terms.dropFirst().reduce(terms[0].value) { $0 + $1.value }
        total.backward()
        let file = try HDF5File(creating: path)
        for (name, t) in before { try file.write(t, at: "/model/\(name)") }
        for (name, p) in model.namedParameters() where p.requiresGrad {
            try file.write(p.grad ?? Tensor.zeros(p.shape), at: "/grad/\(name)")
        }
        try file.write(images, at: "/input/images")
        try file.write(int32: imageSizes.flatMap { [Int32($0.0), Int32($0.1)] }, shape: [imageSizes.count, 2], at: "/input/image_sizes")
        for (i, t) in truth.enumerated() {
            try file.write(Tensor(shape: [t.count, 4], values: t.boxes), at: "/input/gt_boxes_\(i)")
            try file.write(int32: t.classes.map(Int32.init), shape: [t.count], at: "/input/gt_classes_\(i)")
            try file.write(uint8: t.masks, shape: [t.count, t.height, t.width], at: "/input/gt_bitmasks_\(i)")
        }
        let ints: [(String, Int)] = [
            ("num_classes", spec.numClasses), ("resnet_depth", spec.resnet.depth), ("resnet_width_per_group", spec.resnet.bottleneckChannels),
            ("fpn_channels", spec.fpnChannels), ("fcos_num_convs", spec.fcosClsConvs), ("gn_groups", spec.gnGroups),
            ("mask_branch_channels", spec.maskBranchChannels), ("mask_branch_num_convs", spec.maskBranchConvs),
            ("mask_branch_out_channels", spec.maskBranchOutChannels), ("mask_head_channels", spec.maskHeadChannels),
            ("mask_head_layers", spec.maskHeadLayers), ("freeze_at", spec.resnet.freezeAt), ("ims_per_group", imagesPerGroup),
            ("perceptual", criterion.settings.perceptual == nil ? 0 : 1),
        ]
        for (name, v) in ints { try file.setAttribute(name, .int(Int64(v))) }
        for (name, value) in terms { try file.setAttribute(name, .double(Double(value.item))) }
        if let loss = criterion.settings.perceptual {
            guard loss.config.family == .vgg else { throw InstanceConfigError("LOSS.PERCEPTUAL.FAMILY", "--dump-step writes VGG-style loss networks only") }
            for (name, t) in loss.network.stateDict() { try file.write(t, at: "/lossnet/\(name)") }
            try file.setAttribute("lossnet_structure", .ints(loss.config.structure.map(Int64.init)))
            try file.setAttribute("lossnet_widths", .ints(loss.config.widths.map(Int64.init)))
            try file.setAttribute("lossnet_kernel_size", .int(Int64(loss.config.kernelSize)))
            try file.setAttribute("lossnet_level_weights", .doubles(loss.levelWeights.map(Double.init)))
            try file.setAttribute("lossnet_lambda", .double(Double(loss.config.lambda)))
        }
        try file.close()
        return terms.map { ($0.name, Double($0.value.item)) }
    }

    /// Reads a dump's (or a twin fixture's) inputs.
    public static func read(_ file: HDF5File) throws -> StepDump {
        let images = try file.readTensor(at: "/input/images")
        let sizes = try file.readIntegers(at: "/input/image_sizes").values.map(Int.init)
        let n = images.shape[0], h = images.shape[2], w = images.shape[3]
        var truth: [InstanceGroundTruth] = []
        for i in 0..<n {
            let boxes = try file.readTensor(at: "/input/gt_boxes_\(i)").values
            let classes = try file.readIntegers(at: "/input/gt_classes_\(i)").values.map(Int.init)
            let masks = try file.readIntegers(at: "/input/gt_bitmasks_\(i)").values.map { UInt8(truncatingIfNeeded: $0) }
            guard boxes.count == 4 * classes.count, masks.count == classes.count * h * w else {
                throw InstanceConfigError(file.path, "image \(i): \(boxes.count / 4) boxes, \(classes.count) classes and \(masks.count) mask bytes do not agree")
            }
            truth.append(InstanceGroundTruth(boxes: boxes, classes: classes, masks: masks, height: h, width: w))
        }
        guard case .int(let group)? = try file.attribute("ims_per_group"), group >= 1, n % Int(group) == 0 else {
            throw InstanceConfigError(file.path, "attribute ims_per_group missing or not dividing the \(n) images")
        }
        return StepDump(images: images, imageSizes: (0..<n).map { (sizes[2 * $0], sizes[2 * $0 + 1]) }, truth: truth, imagesPerGroup: Int(group))
    }
}
