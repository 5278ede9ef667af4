/// The renames between the naming schemes users' weight files come in and the models' own
/// (PyTorch-compatible) state-dict names. Each returns the name in the target model, or nil for
/// a tensor the model family never has (an ImageNet classifier).
public enum WeightNames {
    /// detectron2's rename of a Caffe2 blob (`res2_0_branch2a_w` → `res2.0.conv1.weight`,
    /// `res_conv1_bn_s` → `stem.conv1.norm.weight`), as `convert_basic_c2_names` does it for the
    /// backbone: `_` → `.`, `.w`/`.b` → `.weight`/`.bias`, BN/GN affine and statistics → `norm.*`,
    /// `branch1`/`branch2{a,b,c}` → `shortcut`/`conv{1,2,3}`, the stem under `stem.`.
    public static func detectron2Name(caffe2 blob: String) -> String {
        var k = ["pred_b": "linear_b", "pred_w": "linear_w"][blob] ?? blob
        k = k.replacingOccurrences(of: "_", with: ".")
        func suffix(_ old: String, _ new: String) {
            if k.hasSuffix(old) { k = String(k.dropLast(old.count)) + new }
        }
        suffix(".b", ".bias"); suffix(".w", ".weight")
        for (old, new) in [("bn.s", "norm.weight"), ("bn.bias", "norm.bias"), ("bn.rm", "norm.running_mean"),
                           ("bn.running.mean", "norm.running_mean"), ("bn.riv", "norm.running_var"),
                           ("bn.running.var", "norm.running_var"), ("bn.gamma", "norm.weight"), ("bn.beta", "norm.bias"),
                           ("gn.s", "norm.weight"), ("gn.bias", "norm.bias")] {
            suffix(old, new)
        }
        if k.hasPrefix("res.conv1.norm.") { k = String(k.dropFirst("res.".count)) }
        if k.hasPrefix("conv1.") { k = "stem." + k }
        for (old, new) in [(".branch1.", ".shortcut."), (".branch2a.", ".conv1."), (".branch2b.", ".conv2."), (".branch2c.", ".conv3.")] {
            k = k.replacingOccurrences(of: old, with: new)
        }
        return k
    }

    /// A torchvision ResNet name in detectron2's scheme (what detectron2's
    /// `convert-torchvision-to-d2.py` writes): `conv1` → `stem.conv1`, `bn1` → `stem.conv1.norm`,
    /// `layer<i>` → `res<i+1>`, `bn<j>` → `conv<j>.norm`, `downsample.0/1` → `shortcut(.norm)`;
    /// nil for the classifier `fc`.
    public static func detectron2Name(torchvision name: String) -> String? {
        if name.hasPrefix("fc.") { return nil }
        var parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first else { return name }
        if first == "conv1" { return "stem." + name }
        if first == "bn1" { return "stem.conv1.norm." + parts.dropFirst().joined(separator: ".") }
        guard first.hasPrefix("layer"), let stage = Int(first.dropFirst("layer".count)) else { return name }
        parts[0] = "res\(stage + 1)"
        if parts.count >= 3 {
            if parts[2].hasPrefix("bn"), let j = Int(parts[2].dropFirst(2)) { parts[2] = "conv\(j).norm" }
            if parts[2] == "downsample", parts.count >= 4 {
                parts[2] = parts[3] == "0" ? "shortcut" : "shortcut.norm"
                parts.remove(at: 3)
            }
        }
        return parts.joined(separator: ".")
    }

    /// Whether `name` is spelled as a torchvision ResNet's (`conv1.`, `bn1.`, `layer<i>.`, `fc.`).
    static func isTorchvisionResNet(_ name: String) -> Bool {
        name.hasPrefix("conv1.") || name.hasPrefix("bn1.") || name.hasPrefix("fc.") ||
            (name.hasPrefix("layer") && name.dropFirst(5).first?.isNumber == true)
    }

    /// Whether `name` is detectron2's bare ResNet scheme (`stem.`, `res<i>.`), as in detectron2's
    /// ImageNet `.pkl` files.
    static func isDetectron2ResNet(_ name: String) -> Bool {
        name.hasPrefix("stem.") || (name.hasPrefix("res") && name.dropFirst(3).first?.isNumber == true)
    }

    /// Names for AdelaiDet's CondInst: full CondInst (AdelaiDet checkpoints) unchanged; a bare
    /// ResNet — detectron2's `R-50.pkl` (already renamed from Caffe2), a detectron2-format
    /// ImageNet `.pkl`, or a torchvision `.pth` — under `backbone.bottom_up.`; classifiers dropped.
    public static func condInst(_ name: String) -> String? {
        if name.hasPrefix("fc1000.") || name.hasPrefix("linear.") { return nil }
        if isDetectron2ResNet(name) { return "backbone.bottom_up." + name }
        if isTorchvisionResNet(name) { return detectron2Name(torchvision: name).map { "backbone.bottom_up." + $0 } }
        return name
    }

    /// Names for the segmentation models (mmseg names): mmseg checkpoints unchanged; a
    /// torchvision ResNet's names under `backbone.` (its stem and stages are spelled the same),
    /// the classifier `fc` dropped; an ImageNet HRNet (mmseg's `open-mmlab://msra/hrnetv2_*`
    /// files, HRNet-Image-Classification's names: `conv1`, `bn1`, `conv2`, `bn2`, `layer1`,
    /// `transition<k>`, `stage<k>`) under `backbone.`, its classification head
    /// (`incre_modules`, `downsamp_modules`, `final_layer`, `classifier`) dropped.
    public static func segmentation(_ name: String) -> String? {
        let classifiers = ["fc.", "incre_modules.", "downsamp_modules.", "final_layer.", "classifier."]
        if classifiers.contains(where: name.hasPrefix) { return nil }
        if isTorchvisionResNet(name) || isHRNet(name) { return "backbone." + name }
        return name
    }

    /// Whether `name` belongs to a bare HRNet backbone beyond what a ResNet also has (the second
    /// stem convolution, the transitions and the multi-branch stages).
    static func isHRNet(_ name: String) -> Bool {
        name.hasPrefix("conv2.") || name.hasPrefix("bn2.") ||
            (name.hasPrefix("transition") && name.dropFirst("transition".count).first?.isNumber == true) ||
            (name.hasPrefix("stage") && name.dropFirst("stage".count).first?.isNumber == true)
    }

    /// Names for the pretrained ('T') loss networks: torchvision's VGG / ResNet-18 / AlexNet /
    /// MobileNetV2 / GoogLeNet names are the loss networks' own; the classifiers (GoogLeNet's
    /// auxiliary ones too) are dropped.
    public static func lossNetwork(_ name: String) -> String? {
        if name.hasPrefix("classifier.") || name.hasPrefix("fc.") || name.hasPrefix("aux1.") || name.hasPrefix("aux2.") { return nil }
        return name
    }
}
