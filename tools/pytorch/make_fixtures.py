#!/usr/bin/env python3
"""Generates the PyTorch reference fixtures for percep-dist's ops and losses.

Run (from the repository root, with PyTorch installed; CPU only):

    python3 tools/pytorch/make_fixtures.py

It writes Tests/PercepNNTests/Fixtures/ops.json, which Tests/PercepNNTests/PyTorchFixtureTests.swift
reads. CI has no PyTorch, so the JSON is generated once and committed; rerun this script only when
cases are added or changed, and commit the result.

Layout of ops.json:

    {"generator": ..., "torch_version": ..., "case_count": N,
     "cases": [{"name", "op", "params": {...},
                "inputs": [{"name", "shape", "data", "requires_grad"}],
                "output": {"shape", "data"},
                "upstream": {"shape", "data"},
                "grads": [{"shape", "data"} | null, ...],     # one per input
                "extra": {"running_mean": {...}, ...},          # e.g. batch-norm buffers
                "rtol": r, "atol": a}]}

Conventions:
  * Every tensor is float32, row-major; integer arguments (targets, indices) live in "params".
  * Gradients: a fixed random "upstream" tensor R of the output's shape is drawn (a scalar, shape
    [], for scalar outputs) and grads[i] = d (output * R).sum() / d inputs[i] for each input with
    requires_grad (null otherwise). The Swift side runs `out.backward(seed: R)`.
  * Floats are written as the shortest decimal that round-trips the float32 value.
  * Deterministic: one torch.manual_seed at the start, cases drawn in a fixed order, single thread.

Every case is also evaluated in float64 from the same float32 inputs; the script refuses to write a
case whose float32 result is not within half its tolerance of the float64 one, so the tolerances
the Swift test uses always leave room for the engine's own (different) float32 rounding. It also
refuses expected tensors that are all zero (a test against zeros could pass with a broken op).
"""
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_PATH = os.path.join(ROOT, "Tests", "PercepNNTests", "Fixtures", "ops.json")

# Tolerances (|a - b| <= atol + rtol * |b|). TIGHT for pointwise and short reductions; GEMM for
# convolutions, matmuls and long sums, whose float32 summation order differs between libraries;
# LONG for large reductions where near-zero results come out of long cancelling sums.
TIGHT = (1e-5, 1e-6)
GEMM = (1e-4, 1e-5)
LONG = (1e-4, 1e-5)

CASES = []


# ---------------------------------------------------------------------------------------------
# Tensor helpers


def randn(*shape, scale=1.0):
    """Standard normal float32 values (times `scale`)."""
    return torch.randn(tuple(shape), dtype=torch.float32) * scale


def uniform(lo, hi, *shape):
    """Uniform float32 values in [lo, hi)."""
    return torch.rand(tuple(shape), dtype=torch.float32) * (hi - lo) + lo


def quantized(*shape, step=1.0 / 64, scale=1.0):
    """Normal values rounded to multiples of `step`: they print in few digits, which keeps the
    large convolution cases small on disk (the products are still full float32 sums)."""
    return torch.round(randn(*shape, scale=scale) / step) * step


def away_from_zero(*shape, lo=0.5):
    """Values with |v| >= lo and a random sign (safe denominators)."""
    mag = uniform(lo, lo + 1.5, *shape)
    sign = torch.where(torch.rand(tuple(shape)) < 0.5, -1.0, 1.0)
    return mag * sign


def encode_tensor(t):
    """A tensor as {"shape", "data"} with shortest round-trip float32 decimals."""
    a = t.detach().to(torch.float32).contiguous().numpy().reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError("non-finite value in fixture tensor")
    # The Swift side parses each number as Double and rounds to Float; make sure that recovers
    # exactly these float32 values.
    back = np.array([float(str(v)) for v in a], dtype=np.float64).astype(np.float32)
    if not np.array_equal(back.view(np.uint32), a.view(np.uint32)):
        raise ValueError("float32 values do not round-trip through their decimal form")
    # str(np.float32) is the shortest decimal that parses back to the same float32; going through
    # float() lets json write it as a plain number (repr of that double has the same digits).
    return {"shape": list(t.shape), "data": [float(str(v)) for v in a]}


# ---------------------------------------------------------------------------------------------
# Case builder


def run(fn, inputs, dtype, upstream):
    """Evaluates fn on copies of `inputs` in `dtype`; returns (output, extras, grads)."""
    leaves = []
    for _, t, rg in inputs:
        leaf = t.detach().to(dtype).clone()
        leaf.requires_grad_(rg)
        leaves.append(leaf)
    res = fn(*leaves)
    out, extras = (res if isinstance(res, tuple) else (res, {}))
    grads = [None] * len(inputs)
    if any(rg for _, _, rg in inputs):
        (out * upstream.to(dtype)).sum().backward()
        grads = [leaf.grad if rg else None for leaf, (_, _, rg) in zip(leaves, inputs)]
    return out.detach(), {k: v.detach() for k, v in extras.items()}, grads


def check_conditioning(name, what, f32, f64, tol):
    """Refuses a reference whose float32 rounding already uses more than half the tolerance."""
    rtol, atol = tol
    err = (f32.double() - f64).abs()
    budget = 0.5 * (atol + rtol * f64.abs())
    if bool((err > budget).any()):
        i = int(torch.argmax(err - budget))
        raise SystemExit(f"case {name}: {what} is ill-conditioned at flat index {i}: "
                         f"f32 {f32.reshape(-1)[i].item()!r} vs f64 {f64.reshape(-1)[i].item()!r}")


def check_nonzero(name, what, t):
    """Refuses an all-zero expected tensor: the test could not tell a broken op from a good one."""
    if t.numel() > 0 and not bool((t != 0).any()):
        raise SystemExit(f"case {name}: expected {what} is all zeros")


def case(name, op, params, inputs, fn, tol=TIGHT, upstream=None, zero_grads_ok=False):
    """Adds one case.

    inputs: list of (name, float32 tensor, requires_grad). fn maps the leaves to the output, or to
    (output, {name: tensor}) for extra results such as updated running statistics. `upstream`
    overrides the random upstream gradient (e.g. with a quantized one for large outputs).
    `zero_grads_ok` admits all-zero gradients where zero is the point (pow(x, 0)); the test still
    fails on anything else, NaN included.
    """
    if any(c["name"] == name for c in CASES):
        raise SystemExit(f"duplicate case name {name}")
    # The output shape is needed for R: probe once without gradients.
    with torch.no_grad():
        probe = fn(*[t.detach().clone() for _, t, _ in inputs])
    probe = probe[0] if isinstance(probe, tuple) else probe
    if upstream is None:
        upstream = randn(*probe.shape)   # shape [] for scalar outputs
    assert tuple(upstream.shape) == tuple(probe.shape), name

    out32, ext32, g32 = run(fn, inputs, torch.float32, upstream)
    out64, ext64, g64 = run(fn, inputs, torch.float64, upstream)
    assert out32.dtype == torch.float32, name

    check_conditioning(name, "output", out32, out64, tol)
    check_nonzero(name, "output", out32)
    for k in ext32:
        check_conditioning(name, k, ext32[k], ext64[k], tol)
    for i, (a, b) in enumerate(zip(g32, g64)):
        if a is not None:
            check_conditioning(name, f"grad of {inputs[i][0]}", a, b, tol)
            if not zero_grads_ok:
                check_nonzero(name, f"grad of {inputs[i][0]}", a)
        elif inputs[i][2]:
            raise SystemExit(f"case {name}: PyTorch gave no gradient for {inputs[i][0]}")

    entry = {
        "name": name,
        "op": op,
        "params": params,
        "inputs": [dict(name=n, requires_grad=rg, **encode_tensor(t)) for n, t, rg in inputs],
        "output": encode_tensor(out32),
        "upstream": encode_tensor(upstream),
        "grads": [encode_tensor(g) if g is not None else None for g in g32],
        "extra": {k: encode_tensor(v) for k, v in ext32.items()},
        "rtol": tol[0],
        "atol": tol[1],
    }
    CASES.append(entry)


# ---------------------------------------------------------------------------------------------
# Elementwise


def elementwise_cases():
    torch_ops = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    for op, f in torch_ops.items():
        den = (lambda *s: away_from_zero(*s)) if op == "div" else (lambda *s: randn(*s))
        # Same shape, both operands need gradients.
        case(f"{op}_same", op, {}, [("a", randn(2, 3, 4), True), ("b", den(2, 3, 4), True)], f)
        # Broadcasting on both sides: [2,1,4] with [3,1] -> [2,3,4].
        case(f"{op}_broadcast", op, {}, [("a", randn(2, 1, 4), True), ("b", den(3, 1), True)], f)
        # Lower-rank right operand, only it needs a gradient.
        case(f"{op}_rank_lhs_const", op, {}, [("a", randn(2, 3, 4), False), ("b", den(4), True)], f)
        # Scalar-shaped (0-d) right operand.
        case(f"{op}_0d", op, {}, [("a", randn(3, 5), True), ("b", den(), True)], f)

    # Tensor-Float forms. "radd" is s + a, "rsub" s - a and so on.
    forms = {
        "add": lambda a, s: a + s, "radd": lambda a, s: s + a,
        "sub": lambda a, s: a - s, "rsub": lambda a, s: s - a,
        "mul": lambda a, s: a * s, "rmul": lambda a, s: s * a,
        "div": lambda a, s: a / s, "rdiv": lambda a, s: s / a,
    }
    for form, f in forms.items():
        s = {"add": 1.5, "radd": -0.75, "sub": 0.7, "rsub": 0.7, "mul": -2.5, "rmul": 3.0,
             "div": 3.0, "rdiv": 2.0}[form]
        x = away_from_zero(3, 4) if form == "rdiv" else randn(3, 4)
        case(f"scalar_{form}", "scalar", {"form": form, "s": s}, [("a", x, True)],
             lambda a, f=f, s=s: f(a, s))
    case("neg", "neg", {}, [("a", randn(2, 5), True)], lambda a: -a)

    case("exp", "exp", {}, [("a", randn(3, 4, scale=2.0), True)], torch.exp)
    case("log", "log", {}, [("a", uniform(0.05, 5.0, 3, 4), True)], torch.log)
    case("sqrt", "sqrt", {}, [("a", uniform(0.05, 5.0, 3, 4), True)], torch.sqrt)
    for p, x in [(2.0, randn(3, 4)), (3.0, randn(3, 4)), (0.5, uniform(0.1, 3.0, 3, 4)),
                 (-1.5, uniform(0.2, 3.0, 3, 4)), (1.7, uniform(0.1, 3.0, 3, 4)), (1.0, randn(3, 4))]:
        case(f"pow_{p:g}".replace("-", "m").replace(".", "_"), "pow", {"p": p},
             [("a", x, True)], lambda a, p=p: a.pow(p))
    # pow(0): PyTorch defines the gradient as exactly 0, also at x = 0.
    x = randn(2, 4)
    x[0, 1] = 0.0
    case("pow_0_with_zero", "pow", {"p": 0.0}, [("a", x, True)], lambda a: a.pow(0.0), zero_grads_ok=True)

    # abs and relu at exactly 0 have gradient 0 in PyTorch.
    x = randn(3, 5)
    x[0, 0] = 0.0
    x[2, 3] = 0.0
    case("abs", "abs", {}, [("a", x, True)], torch.abs)
    case("relu", "relu", {}, [("a", x.clone(), True)], torch.relu)
    x = randn(3, 5, scale=3.0)
    x[0, :3] = torch.tensor([20.0, -20.0, -90.0])   # saturated tails
    case("sigmoid", "sigmoid", {}, [("a", x, True)], torch.sigmoid)
    case("tanh", "tanh", {}, [("a", randn(3, 5, scale=2.0), True)], torch.tanh)

    case("clamp_both", "clamp", {"min": -0.5, "max": 0.75}, [("a", randn(4, 5), True)],
         lambda a: torch.clamp(a, -0.5, 0.75))
    # Values exactly at a bound: this PyTorch gives them gradient 0 (only the open interval passes).
    x = randn(3, 4)
    x[0, 0], x[0, 1], x[2, 3] = -0.5, 0.75, 0.75
    case("clamp_at_bounds", "clamp", {"min": -0.5, "max": 0.75}, [("a", x, True)],
         lambda a: torch.clamp(a, -0.5, 0.75))
    case("clamp_min", "clamp", {"min": 0.1, "max": None}, [("a", randn(4, 5), True)],
         lambda a: torch.clamp(a, min=0.1))
    case("clamp_max", "clamp", {"min": None, "max": -0.2}, [("a", randn(4, 5), True)],
         lambda a: torch.clamp(a, max=-0.2))


# ---------------------------------------------------------------------------------------------
# Reductions


def reduction_cases():
    x = randn(2, 3, 4)
    for axes, keep in [([1], False), ([0, 2], False), ([-1], True), ([0, 1, 2], True), ([2, 0], True)]:
        tag = "_".join(str(a).replace("-", "m") for a in axes) + ("_keep" if keep else "")
        case(f"sum_axes_{tag}", "sum", {"axes": axes, "keep_dims": keep}, [("a", x.clone(), True)],
             lambda a, axes=axes, keep=keep: a.sum(dim=axes, keepdim=keep))
        case(f"mean_axes_{tag}", "mean", {"axes": axes, "keep_dims": keep}, [("a", x.clone(), True)],
             lambda a, axes=axes, keep=keep: a.mean(dim=axes, keepdim=keep))
    case("sum_all", "sum", {"axes": None}, [("a", randn(3, 4, 5), True)], lambda a: a.sum())
    case("mean_all", "mean", {"axes": None}, [("a", randn(3, 4, 5), True)], lambda a: a.mean())
    # Long sums: 2048 elements per output (float32 summation order matters here).
    case("sum_long_rows", "sum", {"axes": [1], "keep_dims": False}, [("a", uniform(0.0, 1.0, 4, 1024), True)],
         lambda a: a.sum(dim=[1]), tol=LONG)
    case("mean_long_all", "mean", {"axes": None}, [("a", randn(2048), True)], lambda a: a.mean(), tol=LONG)
    # max along an axis: continuous random values have no ties.
    case("max_axis1", "max", {"axis": 1, "keep_dims": False}, [("a", randn(2, 5, 3), True)],
         lambda a: a.max(dim=1)[0])
    case("max_axis_m1_keep", "max", {"axis": -1, "keep_dims": True}, [("a", randn(3, 4, 6), True)],
         lambda a: a.max(dim=-1, keepdim=True)[0])
    case("max_axis0", "max", {"axis": 0, "keep_dims": False}, [("a", randn(4, 3), True)],
         lambda a: a.max(dim=0)[0])


# ---------------------------------------------------------------------------------------------
# Shape ops


def shape_cases():
    case("reshape", "reshape", {"shape": [4, -1]}, [("a", randn(2, 3, 4), True)], lambda a: a.reshape(4, -1))
    case("permute_3d", "permute", {"order": [2, 0, 1]}, [("a", randn(2, 3, 4), True)],
         lambda a: a.permute(2, 0, 1))
    case("permute_nhwc", "permute", {"order": [0, 2, 3, 1]}, [("a", randn(2, 3, 4, 5), True)],
         lambda a: a.permute(0, 2, 3, 1))
    case("transpose_0_2", "transpose", {"dims": [0, 2]}, [("a", randn(2, 3, 4), True)],
         lambda a: a.transpose(0, 2))
    case("transpose_default", "transpose", {"dims": None}, [("a", randn(2, 3, 4), True)],
         lambda a: a.transpose(-2, -1))
    case("slice_step2", "slice", {"axis": 1, "start": 1, "end": 6, "step": 2}, [("a", randn(2, 7, 3), True)],
         lambda a: a[:, 1:6:2])
    case("slice_last", "slice", {"axis": -1, "start": 2, "end": 5, "step": 1}, [("a", randn(3, 6), True)],
         lambda a: a[..., 2:5])
    case("slice_step3_axis0", "slice", {"axis": 0, "start": 0, "end": 7, "step": 3}, [("a", randn(7, 2), True)],
         lambda a: a[0:7:3])
    case("concat_axis1", "concat", {"axis": 1},
         [("a", randn(2, 1, 3), False), ("b", randn(2, 2, 3), True), ("c", randn(2, 3, 3), True)],
         lambda a, b, c: torch.cat([a, b, c], dim=1))
    case("concat_axis0", "concat", {"axis": 0}, [("a", randn(2, 4), True), ("b", randn(3, 4), True)],
         lambda a, b: torch.cat([a, b], dim=0))
    case("concat_axis_m1", "concat", {"axis": -1}, [("a", randn(2, 3, 2), True), ("b", randn(2, 3, 1), True)],
         lambda a, b: torch.cat([a, b], dim=-1))
    for name, pads, value, shape in [
        ("pad_last", [1, 2], 0.0, (2, 3, 4)),
        ("pad_last2_value", [1, 0, 2, 1], 0.5, (2, 3, 4)),
        ("pad_three_dims", [0, 1, 1, 1, 1, 0], -1.0, (2, 3, 4)),
        ("pad_negative_crop", [-1, 1, 0, -2], 0.0, (1, 2, 5, 4)),
    ]:
        case(name, "pad", {"pads": pads, "value": value}, [("a", randn(*shape), True)],
             lambda a, pads=pads, value=value: F.pad(a, pads, value=value))
    case("index_select_repeat", "index_select", {"axis": 1, "indices": [2, 0, 2, 3]},
         [("a", randn(2, 4, 3), True)], lambda a: torch.index_select(a, 1, torch.tensor([2, 0, 2, 3])))
    case("index_select_axis0", "index_select", {"axis": 0, "indices": [1, 1]},
         [("a", randn(3, 5), True)], lambda a: torch.index_select(a, 0, torch.tensor([1, 1])))
    idx = torch.randint(0, 4, (2, 3, 5))
    case("gather_axis1", "gather", {"axis": 1, "index": idx.reshape(-1).tolist(), "index_shape": list(idx.shape)},
         [("a", randn(2, 4, 5), True)], lambda a, idx=idx: torch.gather(a, 1, idx))
    idx = torch.randint(0, 6, (3, 2))
    case("gather_last", "gather", {"axis": -1, "index": idx.reshape(-1).tolist(), "index_shape": list(idx.shape)},
         [("a", randn(3, 6), True)], lambda a, idx=idx: torch.gather(a, -1, idx))
    case("expand_middle", "expand", {"shape": [2, 3, 4]}, [("a", randn(3, 1), True)],
         lambda a: a.expand(2, 3, 4))
    case("expand_rank", "expand", {"shape": [2, 3, 4]}, [("a", randn(4), True)], lambda a: a.expand(2, 3, 4))


# ---------------------------------------------------------------------------------------------
# Matmul and linear


def matmul_cases():
    mm = lambda a, b: torch.matmul(a, b)
    case("matmul_2d", "matmul", {}, [("a", randn(3, 4), True), ("b", randn(4, 5), True)], mm, tol=GEMM)
    case("matmul_3d_2d", "matmul", {}, [("a", randn(2, 3, 4), True), ("b", randn(4, 5), True)], mm, tol=GEMM)
    case("matmul_4d_2d", "matmul", {}, [("a", randn(2, 2, 3, 4), True), ("b", randn(4, 2), True)], mm, tol=GEMM)
    case("matmul_batched", "matmul", {}, [("a", randn(2, 3, 4), True), ("b", randn(2, 4, 5), True)], mm, tol=GEMM)
    case("matmul_b_const", "matmul", {}, [("a", randn(2, 3, 4), True), ("b", randn(2, 4, 5), False)], mm, tol=GEMM)
    case("matmul_long_k", "matmul", {}, [("a", randn(3, 96), True), ("b", randn(96, 4), True)], mm, tol=GEMM)
    case("linear_bias", "linear", {}, [("x", randn(4, 5), True), ("weight", randn(3, 5), True), ("bias", randn(3), True)],
         lambda x, w, b: F.linear(x, w, b), tol=GEMM)
    case("linear_nobias_3d", "linear", {}, [("x", randn(2, 3, 5), True), ("weight", randn(6, 5), True)],
         lambda x, w: F.linear(x, w), tol=GEMM)
    case("linear_x_const", "linear", {}, [("x", randn(4, 5), False), ("weight", randn(3, 5), True), ("bias", randn(3), True)],
         lambda x, w, b: F.linear(x, w, b), tol=GEMM)


# ---------------------------------------------------------------------------------------------
# Convolutions


def conv_case(name, n, cin, h, w, cout, k, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
              bias=True, x_grad=True, w_grad=True, b_grad=True, big=False):
    """One F.conv2d case; `big` uses quantized data so large planes stay small on disk."""
    kh, kw = (k, k) if isinstance(k, int) else k
    draw = quantized if big else randn
    inputs = [("x", draw(n, cin, h, w), x_grad),
              ("weight", draw(cout, cin // groups, kh, kw, scale=0.5), w_grad)]
    if bias:
        inputs.append(("bias", draw(cout), b_grad))
    params = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": groups}
    fn = lambda x, wt, b=None: F.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    upstream = None
    if big:
        with torch.no_grad():
            shape = fn(*[t for _, t, _ in inputs]).shape
        upstream = quantized(*shape)
    case(name, "conv2d", params, inputs, fn, tol=GEMM, upstream=upstream)


def conv_cases():
    # The engine dispatches each pass to im2col + GEMM or oneDNN by shape (channels per group,
    # depthwise, output size); the cases span those inputs, and the Swift test also runs every
    # case with each algorithm forced.
    conv_case("conv_3x3_p1", 2, 3, 6, 5, 4, 3, padding=(1, 1))
    conv_case("conv_3x3_s2_p1", 1, 3, 7, 8, 4, 3, stride=(2, 2), padding=(1, 1))
    conv_case("conv_3x3_nobias", 2, 2, 5, 5, 3, 3, bias=False)
    conv_case("conv_3x3_dil2_p2", 1, 2, 8, 7, 3, 3, padding=(2, 2), dilation=(2, 2))
    conv_case("conv_groups2", 2, 4, 6, 6, 6, 3, padding=(1, 1), groups=2)
    conv_case("conv_1x1", 2, 4, 4, 5, 3, 1)
    conv_case("conv_1x1_nobias_s2", 1, 4, 6, 6, 2, 1, stride=(2, 2), bias=False)
    conv_case("conv_7x7_s2_p3", 1, 3, 12, 11, 4, 7, stride=(2, 2), padding=(3, 3))
    conv_case("conv_rect_kernel", 1, 2, 6, 7, 3, (1, 3), stride=(1, 2), padding=(0, 1))
    conv_case("conv_weight_frozen", 1, 3, 5, 5, 2, 3, padding=(1, 1), w_grad=False)
    conv_case("conv_input_frozen", 2, 3, 5, 5, 2, 3, padding=(1, 1), x_grad=False)
    conv_case("conv_bias_frozen", 2, 3, 5, 5, 2, 3, padding=(1, 1), b_grad=False)
    conv_case("conv_only_bias_grad", 2, 3, 5, 5, 2, 3, padding=(1, 1), x_grad=False, w_grad=False)
    # Channels per group a multiple of 8 (oneDNN's block size).
    conv_case("conv_c8_3x3_p1", 2, 8, 5, 5, 4, 3, padding=(1, 1))
    conv_case("conv_c16_groups2_1x1", 1, 16, 4, 4, 6, 1, groups=2)
    # Depthwise (groups == C_in).
    conv_case("conv_depthwise_3x3", 2, 4, 6, 6, 4, 3, padding=(1, 1), groups=4)
    conv_case("conv_depthwise_mult2_s2", 1, 3, 7, 7, 6, 3, stride=(2, 2), padding=(1, 1), groups=3)
    # Even input, stride 2, no padding: the last input row/column is never read (oneDNN's right
    # padding comes out negative).
    conv_case("conv_depthwise_s2_croprow", 1, 2, 8, 8, 2, 3, stride=(2, 2), groups=2)
    # Large outputs (>= 32x32).
    conv_case("conv_big_3x3_p1", 1, 4, 34, 34, 8, 3, padding=(1, 1), big=True)
    conv_case("conv_big_s2_croprow", 1, 1, 66, 66, 2, 3, stride=(2, 2), big=True)
    conv_case("conv_big_dil2_groups2_nobias", 1, 2, 36, 36, 2, 3, padding=(2, 2), dilation=(2, 2), groups=2,
              bias=False, big=True)


# ---------------------------------------------------------------------------------------------
# Pooling and resizing


def pool_cases():
    for name, shape, k, s, p, d, ceil in [
        ("maxpool_2x2", (2, 2, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
        ("maxpool_3x3_s2_p1", (1, 2, 7, 8), (3, 3), (2, 2), (1, 1), (1, 1), False),
        ("maxpool_ceil_odd", (1, 2, 7, 7), (2, 2), (2, 2), (0, 0), (1, 1), True),
        ("maxpool_ceil_pad", (1, 1, 6, 6), (3, 3), (2, 2), (1, 1), (1, 1), True),
        # Ceil mode would add a window starting in the right padding; PyTorch drops it (5x5 -> 3x3).
        ("maxpool_ceil_drop_lastwindow", (1, 2, 5, 5), (2, 2), (2, 2), (1, 1), (1, 1), True),
        ("maxpool_dil2", (1, 2, 8, 8), (3, 3), (1, 1), (1, 1), (2, 2), False),
        ("maxpool_rect", (1, 2, 5, 9), (2, 3), (1, 2), (0, 1), (1, 1), False),
    ]:
        case(name, "max_pool2d", {"kernel": list(k), "stride": list(s), "padding": list(p), "dilation": list(d),
                                  "ceil_mode": ceil},
             [("x", randn(*shape), True)],
             lambda x, k=k, s=s, p=p, d=d, ceil=ceil: F.max_pool2d(x, k, s, p, d, ceil_mode=ceil))
    for name, shape, k, s, p, ceil, cip in [
        ("avgpool_2x2", (2, 2, 6, 6), (2, 2), None, (0, 0), False, True),
        ("avgpool_3x3_s2_p1_incl", (1, 2, 7, 8), (3, 3), (2, 2), (1, 1), False, True),
        ("avgpool_3x3_s2_p1_excl", (1, 2, 7, 8), (3, 3), (2, 2), (1, 1), False, False),
        ("avgpool_ceil_incl", (1, 2, 6, 6), (3, 3), (2, 2), (1, 1), True, True),
        ("avgpool_ceil_excl", (1, 2, 6, 6), (3, 3), (2, 2), (1, 1), True, False),
        ("avgpool_ceil_nopad", (1, 1, 7, 5), (2, 2), (2, 2), (0, 0), True, True),
        ("avgpool_ceil_drop_lastwindow", (1, 2, 5, 5), (2, 2), (2, 2), (1, 1), True, True),
        ("avgpool_rect", (1, 2, 5, 9), (2, 3), (1, 2), (1, 1), False, False),
    ]:
        case(name, "avg_pool2d", {"kernel": list(k), "stride": list(s) if s else None, "padding": list(p),
                                  "ceil_mode": ceil, "count_include_pad": cip},
             [("x", randn(*shape), True)],
             lambda x, k=k, s=s, p=p, ceil=ceil, cip=cip: F.avg_pool2d(x, k, s, p, ceil_mode=ceil,
                                                                      count_include_pad=cip))
    for name, shape, size in [
        ("adaptive_7_to_3", (1, 2, 7, 7), (3, 3)),
        ("adaptive_5_to_2", (2, 2, 5, 5), (2, 2)),
        ("adaptive_8_to_4", (1, 2, 8, 8), (4, 4)),
        ("adaptive_rect_6x5_to_4x3", (1, 2, 6, 5), (4, 3)),
        ("adaptive_up_3_to_5", (1, 1, 3, 3), (5, 5)),
        ("adaptive_psp_13_to_1", (1, 2, 13, 13), (1, 1)),
        ("adaptive_psp_13_to_2", (1, 2, 13, 13), (2, 2)),
        ("adaptive_psp_13_to_3", (1, 2, 13, 13), (3, 3)),
        ("adaptive_psp_13_to_6", (1, 2, 13, 13), (6, 6)),
    ]:
        case(name, "adaptive_avg_pool2d", {"size": list(size)}, [("x", randn(*shape), True)],
             lambda x, size=size: F.adaptive_avg_pool2d(x, size))


def resize_cases():
    for name, shape, size in [
        ("up_4x5_to_7x9", (1, 2, 4, 5), (7, 9)),
        ("down_8x8_to_3x5", (1, 2, 8, 8), (3, 5)),
        ("up_2x_6x6", (2, 1, 6, 6), (12, 12)),
        ("to_1x1", (1, 2, 4, 3), (1, 1)),
        ("from_1xw", (1, 1, 1, 4), (3, 6)),
    ]:
        for ac in (False, True):
            case(f"bilinear_{name}_ac{int(ac)}", "resize_bilinear", {"size": list(size), "align_corners": ac},
                 [("x", randn(*shape), True)],
                 lambda x, size=size, ac=ac: F.interpolate(x, size=size, mode="bilinear", align_corners=ac))
    for name, shape, size in [
        ("nearest_up_3x4_to_7x9", (1, 2, 3, 4), (7, 9)),
        ("nearest_up_2x", (1, 2, 4, 4), (8, 8)),
        ("nearest_down_8x9_to_3x4", (1, 2, 8, 9), (3, 4)),
        ("nearest_down_7_to_3", (1, 1, 7, 7), (3, 3)),
        ("nearest_mixed_5x6_to_7x4", (2, 1, 5, 6), (7, 4)),
    ]:
        case(name, "resize_nearest", {"size": list(size)}, [("x", randn(*shape), True)],
             lambda x, size=size: F.interpolate(x, size=size, mode="nearest"))


# ---------------------------------------------------------------------------------------------
# Normalisation and softmax


def norm_cases():
    def bn_case(name, shape, training, weight=True, bias=True, stats=True, momentum=0.1, eps=1e-5,
                offset=0.5, tol=TIGHT):
        c = shape[1]
        inputs = [("x", randn(*shape, scale=2.0) + offset, True)]
        if weight:
            inputs.append(("weight", uniform(0.5, 1.5, c), True))
        if bias:
            inputs.append(("bias", randn(c), True))
        if stats:
            inputs += [("running_mean", randn(c, scale=0.3), False), ("running_var", uniform(0.5, 2.0, c), False)]

        def fn(x, *rest):
            rest = list(rest)
            w = rest.pop(0) if weight else None
            b = rest.pop(0) if bias else None
            # Copies, so the caller's leaves stay the initial buffers; the updated ones are extras.
            rm, rv = (rest.pop(0).clone(), rest.pop(0).clone()) if stats else (None, None)
            y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)
            return (y, {"running_mean": rm, "running_var": rv}) if stats else y

        case(name, "batch_norm", {"training": training, "momentum": momentum, "eps": eps}, inputs, fn, tol=tol)

    bn_case("batchnorm_train_nchw", (3, 4, 3, 3), True)
    bn_case("batchnorm_train_nc", (6, 5), True, momentum=0.3, eps=1e-3)
    bn_case("batchnorm_train_noaffine", (2, 3, 4, 4), True, weight=False, bias=False)
    bn_case("batchnorm_train_bias_only", (2, 3, 3, 3), True, weight=False)
    # Mean away from zero relative to the spread (as far as float32 PyTorch itself stays exact).
    bn_case("batchnorm_train_offset", (4, 2, 3, 3), True, offset=8.0)
    bn_case("batchnorm_train_nostats", (2, 3, 3, 3), True, stats=False)
    bn_case("batchnorm_eval_nchw", (2, 4, 3, 3), False)
    bn_case("batchnorm_eval_nc", (4, 3), False, eps=1e-3)

    def gn_case(name, shape, groups, weight=True, bias=True, eps=1e-5):
        c = shape[1]
        inputs = [("x", randn(*shape, scale=1.5) - 0.3, True)]
        if weight:
            inputs.append(("weight", uniform(0.5, 1.5, c), True))
        if bias:
            inputs.append(("bias", randn(c), True))

        def fn(x, *rest):
            rest = list(rest)
            w = rest.pop(0) if weight else None
            b = rest.pop(0) if bias else None
            return F.group_norm(x, groups, w, b, eps)
        case(name, "group_norm", {"groups": groups, "eps": eps}, inputs, fn)

    gn_case("groupnorm_g3", (2, 6, 3, 3), 3)
    gn_case("groupnorm_g1", (2, 4, 3, 2), 1)
    gn_case("groupnorm_instance", (2, 4, 3, 3), 4)
    gn_case("groupnorm_noaffine", (2, 6, 2, 3), 2, weight=False, bias=False, eps=1e-3)
    gn_case("groupnorm_weight_only", (2, 4, 3, 3), 2, bias=False)
    gn_case("groupnorm_2d_input", (3, 8), 2)

    for op, f in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
        case(f"{op}_axis1_nchw", op, {"axis": 1}, [("x", randn(2, 5, 3, 2, scale=2.0), True)],
             lambda x, f=f: f(x, dim=1))
        case(f"{op}_axis_m1", op, {"axis": -1}, [("x", randn(3, 7, scale=2.0), True)], lambda x, f=f: f(x, dim=-1))
        case(f"{op}_axis0", op, {"axis": 0}, [("x", randn(4, 3, scale=2.0), True)], lambda x, f=f: f(x, dim=0))
        # Large logits: the max subtraction must keep this finite.
        x = randn(2, 6, scale=2.0)
        x[0, 2] = 95.0
        x[1, 4] = -80.0
        case(f"{op}_large_logits", op, {"axis": 1}, [("x", x, True)], lambda x, f=f: f(x, dim=1))


# ---------------------------------------------------------------------------------------------
# Losses


def loss_cases():
    # Cross-entropy on [N, C, H, W] with ignored (255) pixels; image 1 row 0 is fully ignored.
    n, c, h, w = 2, 4, 3, 3
    target = torch.randint(0, c, (n, h, w))
    target[0, 0, 1] = 255
    target[0, 2, 2] = 255
    target[1, 0, :] = 255
    cw = [0.5, 2.0, 1.0, 1.5]
    for weighted in (False, True):
        for red in ("mean", "sum", "none"):
            def fn(x, red=red, weighted=weighted):
                wt = x.new_tensor(cw) if weighted else None
                return F.cross_entropy(x, target, weight=wt, ignore_index=255, reduction=red)
            case(f"cross_entropy_{'weighted_' if weighted else ''}{red}", "cross_entropy",
                 {"target": target.reshape(-1).tolist(), "ignore_index": 255,
                  "weight": cw if weighted else None, "reduction": red},
                 [("logits", randn(n, c, h, w, scale=2.0), True)], fn)
    t2 = torch.randint(0, 5, (6,))
    case("cross_entropy_nc_default_ignore", "cross_entropy",
         {"target": t2.tolist(), "ignore_index": -100, "weight": None, "reduction": "mean"},
         [("logits", randn(6, 5, scale=2.0), True)], lambda x: F.cross_entropy(x, t2))

    def soft_ce(x, t):
        return -(t * F.log_softmax(x, dim=1)).sum(dim=1).mean()
    case("soft_target_ce_nchw", "soft_target_cross_entropy", {},
         [("logits", randn(2, 4, 3, 3, scale=2.0), True), ("target", F.softmax(randn(2, 4, 3, 3), dim=1), False)],
         soft_ce)
    case("soft_target_ce_nc_target_grad", "soft_target_cross_entropy", {},
         [("logits", randn(5, 3, scale=2.0), True), ("target", F.softmax(randn(5, 3), dim=1), True)], soft_ce)

    # KL divergence: log-probabilities against probabilities with some exact zeros.
    def kl_inputs():
        logp = F.log_softmax(randn(3, 4, 2, scale=1.5), dim=1)
        t = F.softmax(randn(3, 4, 2, scale=1.5), dim=1)
        t[0, 1, 0] = 0.0
        t[2, 3, 1] = 0.0
        return [("log_probs", logp, True), ("target", t, False)]
    for red in ("mean", "sum", "batchmean", "none"):
        case(f"kl_div_{red}", "kl_div", {"reduction": red}, kl_inputs(),
             lambda x, t, red=red: F.kl_div(x, t, reduction=red))
    # The target is differentiable in PyTorch too (d/dt = log t + 1 - input); no zeros here, where
    # that derivative is infinite.
    case("kl_div_target_grad", "kl_div", {"reduction": "batchmean"},
         [("log_probs", F.log_softmax(randn(3, 4, scale=1.5), dim=1), True),
          ("target", F.softmax(randn(3, 4, scale=1.5), dim=1), True)],
         lambda x, t: F.kl_div(x, t, reduction="batchmean"))

    for red in ("mean", "sum", "none"):
        case(f"mse_{red}", "mse", {"reduction": red}, [("pred", randn(3, 4), True), ("target", randn(3, 4), True)],
             lambda a, b, red=red: F.mse_loss(a, b, reduction=red))

    def bce_inputs(target_grad=False):
        x = randn(3, 5, scale=3.0)
        x[0, :2] = torch.tensor([30.0, -30.0])   # must stay finite
        return [("logits", x, True), ("target", torch.rand(3, 5), target_grad)]
    for red in ("mean", "sum", "none"):
        case(f"bce_logits_{red}", "bce_with_logits", {"reduction": red}, bce_inputs(),
             lambda x, t, red=red: F.binary_cross_entropy_with_logits(x, t, reduction=red))
    case("bce_logits_target_grad", "bce_with_logits", {"reduction": "mean"}, bce_inputs(True),
         lambda x, t: F.binary_cross_entropy_with_logits(x, t))

    def focal(x, t, alpha, gamma, red):
        # torchvision.ops.sigmoid_focal_loss, written out (torchvision is not a dependency).
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        loss = ce * ((1 - p_t) ** gamma)
        if alpha >= 0:
            alpha_t = alpha * t + (1 - alpha) * (1 - t)
            loss = alpha_t * loss
        return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[red]

    def focal_inputs(binary=True, target_grad=False):
        x = randn(3, 4, scale=2.0)
        t = (torch.rand(3, 4) < 0.4).float() if binary else torch.rand(3, 4)
        return [("logits", x, True), ("target", t, target_grad)]
    for name, alpha, gamma, red, binary, tg in [
        ("focal_a025_g2_none", 0.25, 2.0, "none", True, False),
        ("focal_a025_g2_mean", 0.25, 2.0, "mean", True, False),
        ("focal_a025_g2_sum", 0.25, 2.0, "sum", True, False),
        ("focal_noalpha_g1_5_soft", -1.0, 1.5, "mean", False, False),
        ("focal_a05_g3_sum", 0.5, 3.0, "sum", True, False),
        ("focal_soft_target_grad", 0.25, 2.0, "mean", False, True),
    ]:
        case(name, "sigmoid_focal", {"alpha": alpha, "gamma": gamma, "reduction": red}, focal_inputs(binary, tg),
             lambda x, t, a=alpha, g=gamma, r=red: focal(x, t, a, g, r))
    # gamma = 0 with a logit that saturates sigmoid to exactly 1 in float32 (1 - p_t == 0):
    # PyTorch's pow backward treats exponent 0 as a zero gradient, so the result stays finite.
    x = randn(2, 3, scale=2.0)
    x[0, 0] = 40.0
    t = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    case("focal_a025_g0_saturated", "sigmoid_focal", {"alpha": 0.25, "gamma": 0.0, "reduction": "sum"},
         [("logits", x, True), ("target", t, False)], lambda x, t: focal(x, t, 0.25, 0.0, "sum"))

    def sl1_inputs():
        # Differences spread over both branches, none exactly at |d| == beta.
        return [("pred", randn(3, 5, scale=1.5), True), ("target", randn(3, 5), True)]
    for beta, red in [(1.0, "mean"), (1.0, "sum"), (0.5, "none"), (2.0, "mean"), (0.0, "mean")]:
        case(f"smooth_l1_b{beta:g}_{red}".replace(".", "_"), "smooth_l1", {"beta": beta, "reduction": red},
             sl1_inputs(), lambda a, b, beta=beta, red=red: F.smooth_l1_loss(a, b, beta=beta, reduction=red))


# ---------------------------------------------------------------------------------------------
# Composite graphs (tape: reuse of one tensor, diamonds)


def composite_cases():
    # x used by several ops: gradients from every use must add up.
    case("chain_reuse", "chain_reuse", {}, [("x", randn(3, 4), True)], lambda x: x * x + x.exp() - x)
    case("chain_self_add", "chain_self_add", {}, [("x", randn(2, 3), True)], lambda x: x + x)
    case("chain_concat_same", "chain_concat_same", {}, [("x", randn(2, 3), True)],
         lambda x: torch.cat([x, x * 2.0, x], dim=0))
    # Diamond with broadcasting: y = exp(x); z = y * w + sigmoid(y) * x.
    case("chain_diamond", "chain_diamond", {}, [("x", randn(2, 3), True), ("w", randn(3), True)],
         lambda x, w: x.exp() * w + torch.sigmoid(x.exp()) * x)
    # A small conv block: conv -> batchnorm (train) -> relu -> avgpool -> linear.
    def block(x, wc, g, b, wl):
        y = F.conv2d(x, wc, padding=1)
        y = F.batch_norm(y, None, None, g, b, training=True)
        y = torch.relu(y)
        y = F.adaptive_avg_pool2d(y, (1, 1)).reshape(x.shape[0], -1)
        return F.linear(y, wl)
    case("chain_conv_block", "chain_conv_block", {},
         [("x", randn(2, 3, 5, 5), True), ("conv_weight", randn(4, 3, 3, 3, scale=0.5), True),
          ("bn_weight", uniform(0.5, 1.5, 4), True), ("bn_bias", randn(4), True),
          ("linear_weight", randn(2, 4), True)],
         block, tol=GEMM)


def main():
    warnings.filterwarnings("ignore")   # kl_div's reduction='mean' warning is expected
    torch.manual_seed(20240611)
    torch.set_num_threads(1)            # reduction order, hence rounding, independent of the host
    torch.use_deterministic_algorithms(True)
    for make in (elementwise_cases, reduction_cases, shape_cases, matmul_cases, conv_cases, pool_cases,
                 resize_cases, norm_cases, loss_cases, composite_cases):
        make()
    doc = {
        "generator": "tools/pytorch/make_fixtures.py",
        "torch_version": torch.__version__,
        "case_count": len(CASES),
        "cases": CASES,
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    # One case per line: small diffs when cases change, still compact.
    with open(OUT_PATH, "w") as f:
        head = {k: v for k, v in doc.items() if k != "cases"}
        f.write(json.dumps(head, separators=(",", ":"))[:-1] + ',"cases":[\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in CASES))
        f.write("\n]}\n")
    per_op = {}
    for c in CASES:
        per_op[c["op"]] = per_op.get(c["op"], 0) + 1
    for op in sorted(per_op):
        print(f"  {op:28s} {per_op[op]}")
    size = os.path.getsize(OUT_PATH)
    print(f"wrote {len(CASES)} cases to {os.path.relpath(OUT_PATH, ROOT)} ({size / 1024:.1f} KiB)")
    if size > 1_500_000:
        sys.exit("fixture file exceeds 1.5 MB; shrink the cases")


if __name__ == "__main__":
    main()
