#!/usr/bin/env python3
"""Merges runs of `percep-dist bench conv --json` and `tools/pytorch/bench_conv.py --json` into the
markdown table of docs/benchmarks.md.

Each side may be given several runs (run them alternately); every pass keeps its best rate on
both sides alike, and efficiency is taken against the highest FMA peak seen (the machine's widest
vectors, measured by `bench conv`), so run-to-run noise of this 2-vCPU VM does not favour either side.

Run: python3 tools/conv_table.py --ours a.json b.json --torch c.json d.json
"""
import argparse
import json

PASSES = ["fwd_gflops", "bwd_data_gflops", "bwd_weight_gflops"]


def merge(paths):
    runs = [json.load(open(p)) for p in paths]
    merged = {}
    for run in runs:
        for r in run["shapes"]:
            m = merged.setdefault(r["name"], dict(r))
            for p in PASSES:
                m[p] = max(m[p], r[p])
    return runs, merged


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", nargs="+", required=True)
    ap.add_argument("--torch", nargs="+", required=True)
    args = ap.parse_args()
    our_runs, ours = merge(args.ours)
    _, torch = merge(args.torch)
    peak = max(r["fma_peak_gflops"] for r in our_runs)
    bits = our_runs[0]["fma_vector_bits"]
    flops = seconds = 0.0
    rows = []
    worst = (float("inf"), "")
    for name, r in ours.items():
        t = torch.get(name)
        combined = 3 / sum(1 / r[p] for p in PASSES)
        flops += 3 * r["gflop"]
        seconds += sum(r["gflop"] / r[p] for p in PASSES)
        ratio = min(r[p] / t[p] for p in PASSES) if t else float("nan")
        if t and ratio < worst[0]:
            worst = (ratio, name)
        mine = " / ".join(f"{r[p]:.1f}" for p in PASSES)
        theirs = " / ".join(f"{t[p]:.1f}" for p in PASSES) if t else "—"
        rows.append(f"| {name} | {', '.join(r['algorithm'])} | {mine} | {theirs} | {combined / peak:.2f} | {ratio:.2f} |")
    print(f"FMA peak {peak:.1f} GFLOP/s ({bits}-bit vectors, highest of {len(our_runs)} runs), "
          f"sgemm {max(r['sgemm_gflops'] for r in our_runs):.1f} GFLOP/s, {our_runs[0]['threads']} threads; "
          f"overall conv efficiency **{flops / seconds / peak:.3f}**\n")
    print("| shape | algorithm (fwd, bwd-data, bwd-weight) | ours fwd / bwd-data / bwd-weight GFLOP/s | "
          "PyTorch fwd / bwd-data / bwd-weight GFLOP/s | efficiency | ours ÷ PyTorch (worst pass) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nWorst pass relative to PyTorch: {worst[0]:.2f} ({worst[1]}).")


if __name__ == "__main__":
    main()
