#!/usr/bin/env python3
"""Checks the HRNet twin of tools/pytorch/seg_models.py against mmsegmentation itself: for
fcn_hr18s, fcn_hr18 and fcn_hr48 (150 classes), mmseg's `HRNet` backbone and `FCNHead`
(input_transform='resize_concat', kernel 1, no dropout) must have the twin's state_dict names,
shapes and order, and, loaded with the same weights, the same logits on an odd-sized input
(67×45, where HRNet's fuse upsampling overshoots and is resized back) in eval and training mode.

Needs PyTorch and mmseg's Python packages, not its compiled ops:

    pip install --no-deps mmsegmentation==1.2.2 mmengine mmcv-lite
    pip install addict yapf termcolor rich opencv-python-headless ftfy regex
    python3 tools/pytorch/check_twin_against_mmseg.py

mmseg 1.2.2 refuses mmcv-lite 2.2 and its package __init__ files import mmcv's compiled ops,
so the script loads only the modules it needs (see `import_mmseg_parts`). CI does not run it:
the twin's fixtures (make_seg_fixtures.py) carry its results into the Swift tests.
"""
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seg_models  # noqa: E402


def import_mmseg_parts():
    import mmcv
    mmcv.__version__ = "2.1.0"   # mmseg 1.2.2's version gate; nothing here needs a newer mmcv
    ops = types.ModuleType("mmcv.ops")   # compiled ops: none of the modules used here call them
    ops.__file__ = "/nonexistent/mmcv_ops_placeholder.py"

    def missing(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (torch.nn.Module,), {})
    ops.__getattr__ = missing
    sys.modules["mmcv.ops"] = ops
    import mmseg
    root = os.path.dirname(mmseg.__file__)
    # Package shells, so importing a file does not run its package's __init__ (which imports
    # every model mmseg has).
    for pkg in ["mmseg.models", "mmseg.models.backbones", "mmseg.models.decode_heads", "mmseg.models.losses"]:
        shell = types.ModuleType(pkg)
        shell.__path__ = [os.path.join(root, *pkg.split(".")[1:])]
        sys.modules[pkg] = shell
    from mmseg.models.backbones.hrnet import HRNet
    import mmseg.models.losses.cross_entropy_loss  # noqa: F401  (registers the head's default loss)
    from mmseg.models.decode_heads.fcn_head import FCNHead
    return mmseg.__version__, HRNet, FCNHead


def mmseg_extra(stage1_blocks, widths, modules, blocks):
    stages = dict(stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(stage1_blocks,), num_channels=(64,)))
    for k in range(3):
        n = k + 2
        stages[f"stage{n}"] = dict(num_modules=modules[k], num_branches=n, block="BASIC",
                                   num_blocks=(blocks,) * n, num_channels=tuple(widths[:n]))
    return stages


def main():
    version, HRNet, FCNHead = import_mmseg_parts()
    norm = dict(type="BN", requires_grad=True)
    failures = 0
    for name, (stage1_blocks, widths, modules, blocks) in seg_models.HRNET.items():
        reference = torch.nn.Module()
        reference.backbone = HRNet(mmseg_extra(stage1_blocks, widths, modules, blocks), norm_cfg=norm)
        reference.decode_head = FCNHead(in_channels=list(widths), in_index=(0, 1, 2, 3), channels=sum(widths),
                                        input_transform="resize_concat", kernel_size=1, num_convs=1, concat_input=False,
                                        dropout_ratio=-1, num_classes=150, norm_cfg=norm, align_corners=False)
        twin = seg_models.build(name, 150)
        theirs = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
        ours = [(k, tuple(v.shape)) for k, v in twin.state_dict().items()]
        same_names = theirs == ours
        twin.load_state_dict(reference.state_dict())
        x = torch.randn(2, 3, 67, 45)
        diffs = []
        for training in (False, True):
            reference.train(training)
            twin.train(training)
            with torch.no_grad():
                diffs.append((reference.decode_head(reference.backbone(x)) - twin(x)[0]).abs().max().item())
        ok = same_names and max(diffs) == 0
        failures += not ok
        print(f"mmseg {version} {name}: {len(theirs)} state_dict entries, names/shapes/order "
              f"{'equal' if same_names else 'DIFFER'}, logits max |difference| eval {diffs[0]:.1e} train {diffs[1]:.1e}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
