#!/usr/bin/env python3
"""Writes the weight-file fixtures of Tests/PretrainedWeightsTests (run once, commit the output).

Needs PyTorch and NumPy (and h5py for the expected values); the tests read the files with no Python.

Good files, each with its expected tensors (float32, row-major) in expected.h5 under /<file>/<name>:
  tiny_zip.pth            torch.save of a state dict (zip, stored members): float32, float16,
                          bfloat16, float64 and int64 tensors, a transposed view, a view at an offset
                          into a shared storage, a 0-d tensor
  tiny_zip_deflated.pth   the same archive with every member deflated (torch.load reads it too)
  tiny_legacy.pth         the same state dict, _use_new_zipfile_serialization=False
  detectron2_wrapper.pth  {"model": state dict, "iteration": 7, "optimizer": {...}} (detectron2/AdelaiDet)
  mmseg_wrapper.pth       {"state_dict": state dict, "meta": {...}} (mmseg)
  caffe2_r50_stem_res2.pkl  a Caffe2-named ResNet-50 stem + res2 (stem 8, res2 out 32, width 8 —
                          the narrow CondInst of the tests) pickled at protocol 2 with momentum blobs
                          and the fc1000 classifier, as detectron2's R-50.pkl
  detectron2_format.pkl   {"model": {...NumPy}, "__author__": "torchvision", "matching_heuristics": True},
                          protocol 4, with a Fortran-order array
  python2_style.pkl       hand-assembled Python 2 pickle (BINSTRING keys and buffers)
  torchvision_resnet_w8.pth  torchvision ResNet names (stem + layer1 + fc) at base width 8 (the
                          synthetic pspnet_r18 student's backbone)
  torchvision_vgg_w4.pth  torchvision VGG names for structure (1,1,1,1,1), widths 4, with a classifier

Hostile files (each must be refused with a clear error, nothing executed):
  hostile_os_system.pth   data.pkl calls os.system
  hostile_eval.pkl        a pickle calling builtins.eval
  hostile_truncated.pth   the first 60 % of tiny_zip.pth
  hostile_short_storage.pth  a storage member shorter than its tensor
  hostile_negative_size.pth  a tensor of size (-1,)
  hostile_huge_size.pth   a tensor of size (2**40, 2**40)
  hostile_recursive.pkl   a list that contains itself
  hostile_bad_crc.pth     tiny_zip.pth with one storage byte flipped
  hostile_reused_storage.pth  one 2^20-element storage (4 MiB of zeros, deflated to 4 KB) named by
                          2000 keys through the pickle memo: 2·10^9 elements from a 9 KB file
"""
import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import h5py
import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../Tests/PretrainedWeightsTests/Fixtures")
os.makedirs(OUT, exist_ok=True)
expected = h5py.File(os.path.join(OUT, "expected.h5"), "w")


def record(name, state):
    group = expected.create_group(name)
    for k, v in state.items():
        a = v.detach().to(torch.float64).numpy() if torch.is_tensor(v) else np.asarray(v, dtype=np.float64)
        group.create_dataset(k, data=np.ascontiguousarray(a.astype(np.float32)))


def path(name):
    return os.path.join(OUT, name)


g = torch.Generator().manual_seed(0)
base = torch.randn(10, generator=g)
tiny = collections.OrderedDict()
tiny["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
tiny["conv.bias"] = torch.randn(4, generator=g)
tiny["bn.running_mean"] = torch.randn(4, generator=g)
tiny["bn.num_batches_tracked"] = torch.tensor(123456, dtype=torch.int64)
tiny["half"] = torch.randn(2, 3, generator=g).half()
tiny["bfloat"] = torch.randn(5, generator=g).bfloat16()
tiny["double"] = torch.randn(3, generator=g).double()
tiny["transposed"] = torch.arange(6.0).reshape(2, 3).t()  # strides (1, 3)
tiny["view_a"] = base[2:6]  # offset 2 into a storage shared with view_b
tiny["view_b"] = base[5:].view(5, 1)
tiny["scalar"] = torch.tensor(2.5)
torch.save(tiny, path("tiny_zip.pth"))
record("tiny_zip.pth", tiny)

with zipfile.ZipFile(path("tiny_zip.pth")) as src, zipfile.ZipFile(path("tiny_zip_deflated.pth"), "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
assert torch.load(path("tiny_zip_deflated.pth"))["conv.weight"].equal(tiny["conv.weight"])
record("tiny_zip_deflated.pth", tiny)

torch.save(tiny, path("tiny_legacy.pth"), _use_new_zipfile_serialization=False)
record("tiny_legacy.pth", tiny)

small = collections.OrderedDict((k, tiny[k]) for k in ["conv.weight", "conv.bias", "half"])
torch.save({"model": small, "iteration": 7, "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
            "scheduler": {"last_epoch": 7, "base_lrs": [0.01]}}, path("detectron2_wrapper.pth"))
record("detectron2_wrapper.pth", small)
torch.save({"meta": {"CLASSES": ("a", "b"), "epoch": 3, "config": "model = dict()"}, "state_dict": small}, path("mmseg_wrapper.pth"))
record("mmseg_wrapper.pth", small)

# Caffe2's ResNet-50 naming, narrow: stem 8, res2 blocks 8 -> 8 -> 32 (bottleneck width 8).
rng = np.random.default_rng(0)
c2 = {}


def conv_bn(name, out_c, in_c, k, bn="bn"):
    c2[name + "_w"] = rng.standard_normal((out_c, in_c, k, k)).astype(np.float32)
    c2[name + "_" + bn + "_s"] = rng.standard_normal(out_c).astype(np.float32)
    c2[name + "_" + bn + "_b"] = rng.standard_normal(out_c).astype(np.float32)


conv_bn("conv1", 8, 3, 7)
c2["res_conv1_bn_s"] = c2.pop("conv1_bn_s")
c2["res_conv1_bn_b"] = c2.pop("conv1_bn_b")
in_c = 8
for b in range(3):
    conv_bn(f"res2_{b}_branch2a", 8, in_c, 1)
    conv_bn(f"res2_{b}_branch2b", 8, 8, 3)
    conv_bn(f"res2_{b}_branch2c", 32, 8, 1)
    if b == 0:
        conv_bn("res2_0_branch1", 32, in_c, 1)
    in_c = 32
c2["res2_0_branch2a_w_momentum"] = np.zeros_like(c2["res2_0_branch2a_w"])
c2["fc1000_w"] = rng.standard_normal((10, 32)).astype(np.float32)
c2["fc1000_b"] = rng.standard_normal(10).astype(np.float32)
with open(path("caffe2_r50_stem_res2.pkl"), "wb") as f:
    pickle.dump(c2, f, protocol=2)
# detectron2's rename (convert_basic_c2_names), written out for the expected names.
d2 = {}
for k, v in c2.items():
    if k.endswith("_momentum"):
        continue
    n = k.replace("_", ".")
    n = n[:-2] + ".bias" if n.endswith(".b") else n
    n = n[:-2] + ".weight" if n.endswith(".w") else n
    n = n.replace("bn.s", "norm.weight").replace("bn.bias", "norm.bias")
    n = "conv1.norm." + n[len("res.conv1.norm."):] if n.startswith("res.conv1.norm.") else n
    n = "stem." + n if n.startswith("conv1.") else n
    for a, b2 in [(".branch1.", ".shortcut."), (".branch2a.", ".conv1."), (".branch2b.", ".conv2."), (".branch2c.", ".conv3.")]:
        n = n.replace(a, b2)
    d2[n] = v
record("caffe2_r50_stem_res2.pkl", d2)

d2fmt = {"stem.conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
         "res2.0.conv1.norm.weight": np.asfortranarray(rng.standard_normal((3, 5)).astype(np.float32)),
         "res2.0.conv1.norm.running_var": rng.standard_normal(4).astype(np.float16)}
with open(path("detectron2_format.pkl"), "wb") as f:
    pickle.dump({"model": d2fmt, "__author__": "torchvision", "matching_heuristics": True}, f, protocol=4)
record("detectron2_format.pkl", d2fmt)


def py2_array(a):
    """A NumPy array as Python 2's cPickle (protocol 2) wrote it: BINSTRING type codes and buffer."""
    def s(b):
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)
    shape = b"(" + b"".join(b"K" + bytes([n]) for n in a.shape) + b"t"
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + b"K\x00\x85" + s(b"b") + b"\x87R"
            + b"(K\x01" + shape + b"cnumpy\ndtype\n" + s(b"f4") + b"K\x00K\x01\x87R"
            + b"(K\x03" + s(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb" + b"\x89" + s(a.tobytes()) + b"tb")


py2 = {"conv1_w": rng.standard_normal((2, 3)).astype(np.float32), "res_conv1_bn_s": rng.standard_normal(2).astype(np.float32)}
body = b"\x80\x02}(" + b"".join((b"U" + bytes([len(k)]) + k.encode()) + py2_array(v) for k, v in py2.items()) + b"u."
with open(path("python2_style.pkl"), "wb") as f:
    f.write(body)
assert pickle.loads(body, encoding="latin1")["conv1_w"].tolist() == py2["conv1_w"].tolist()
record("python2_style.pkl", {"stem.conv1.weight": py2["conv1_w"], "stem.conv1.norm.weight": py2["res_conv1_bn_s"]})

# torchvision ResNet names at base width 8: stem, layer1 (two BasicBlocks), classifier.
tv = collections.OrderedDict()
tv["conv1.weight"] = torch.randn(8, 3, 7, 7, generator=g)
for bn in ["bn1"]:
    tv[bn + ".weight"] = torch.rand(8, generator=g) + 0.5
    tv[bn + ".bias"] = torch.randn(8, generator=g)
    tv[bn + ".running_mean"] = torch.randn(8, generator=g)
    tv[bn + ".running_var"] = torch.rand(8, generator=g) + 0.5
    tv[bn + ".num_batches_tracked"] = torch.tensor(0)
for blk in range(2):
    for j in (1, 2):
        p = f"layer1.{blk}."
        tv[p + f"conv{j}.weight"] = torch.randn(8, 8, 3, 3, generator=g)
        tv[p + f"bn{j}.weight"] = torch.rand(8, generator=g) + 0.5
        tv[p + f"bn{j}.bias"] = torch.randn(8, generator=g)
        tv[p + f"bn{j}.running_mean"] = torch.randn(8, generator=g)
        tv[p + f"bn{j}.running_var"] = torch.rand(8, generator=g) + 0.5
        tv[p + f"bn{j}.num_batches_tracked"] = torch.tensor(0)
tv["fc.weight"] = torch.randn(10, 64, generator=g)
tv["fc.bias"] = torch.randn(10, generator=g)
torch.save(tv, path("torchvision_resnet_w8.pth"))
record("torchvision_resnet_w8.pth", tv)

# torchvision VGG names, structure (1,1,1,1,1), widths 4: conv at features.0, 3, 6, 9, 12.
vgg = collections.OrderedDict()
in_c = 3
for i in range(5):
    vgg[f"features.{3 * i}.weight"] = torch.randn(4, in_c, 3, 3, generator=g)
    vgg[f"features.{3 * i}.bias"] = torch.randn(4, generator=g)
    in_c = 4
vgg["classifier.0.weight"] = torch.randn(8, 4, generator=g)
vgg["classifier.0.bias"] = torch.randn(8, generator=g)
torch.save(vgg, path("torchvision_vgg_w4.pth"))
record("torchvision_vgg_w4.pth", vgg)
expected.close()


# Hostile files. A torch-style archive around any data.pkl:
def archive(name, data_pkl, storages):
    with zipfile.ZipFile(path(name), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


archive("hostile_os_system.pth", pickle.dumps({"w": Evil(os.system, "touch /tmp/percep_pwned")}, protocol=2), {})
with open(path("hostile_eval.pkl"), "wb") as f:
    f.write(pickle.dumps({"w": Evil(eval, "__import__('os').system('touch /tmp/percep_pwned')")}, protocol=2))

raw = open(path("tiny_zip.pth"), "rb").read()
with open(path("hostile_truncated.pth"), "wb") as f:
    f.write(raw[: int(len(raw) * 0.6)])


class FakeStorage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class FakeTensor:
    def __init__(self, storage, size, stride, offset=0):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def fake_pkl(state):
    buf = io.BytesIO()
    TorchLikePickler(buf, protocol=2).dump(state)
    return buf.getvalue()


four = struct.pack("<4f", 1, 2, 3, 4)
archive("hostile_short_storage.pth", fake_pkl({"w": FakeTensor(FakeStorage("0", 4), (4,), (1,))}), {"0": four[:8]})
archive("hostile_negative_size.pth", fake_pkl({"w": FakeTensor(FakeStorage("0", 4), (-1,), (1,))}), {"0": four})
archive("hostile_huge_size.pth", fake_pkl({"w": FakeTensor(FakeStorage("0", 4), (2 ** 40, 2 ** 40), (2 ** 40, 1))}), {"0": four})
loop = []
loop.append(loop)
with open(path("hostile_recursive.pkl"), "wb") as f:
    pickle.dump({"w": loop}, f, protocol=2)

shared = FakeTensor(FakeStorage("0", 1 << 20), (1 << 20,), (1,))
with zipfile.ZipFile(path("hostile_reused_storage.pth"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", fake_pkl({f"w{i}": shared for i in range(2000)}))
    z.writestr("archive/data/0", bytes(4 << 20))
    z.writestr("archive/version", "3\n")

with zipfile.ZipFile(path("tiny_zip.pth")) as z:
    info = z.getinfo("tiny_zip/data/0")
    header = raw[info.header_offset: info.header_offset + 30]
    start = info.header_offset + 30 + struct.unpack("<H", header[26:28])[0] + struct.unpack("<H", header[28:30])[0]
bad = bytearray(raw)
bad[start] ^= 0x01
with open(path("hostile_bad_crc.pth"), "wb") as f:
    f.write(bytes(bad))
print("wrote", sorted(os.listdir(OUT)))
