#!/usr/bin/env python3
"""The kernels of a profile on the roofline of the GPU they ran on: one labelled point per
kernel, coloured by its verdict, under the memory roof (P, the bandwidth probe's measured
device-to-device bandwidth) and the compute roofs (the tensor-core and FP32 FMA peaks measured by
`day18 calibrate`).

  x: arithmetic intensity, FLOP per byte moved through DRAM (log)
  y: achieved FLOP/s (log); the roof at intensity I is min(peak, I x P)
  a point's distance below its roof is how much the kernel leaves on the table; which roof it is
  under (left or right of the ridge) says what would have to change.

Input: the JSON of `day18 classify --json FILE` or `day18 analyze --roofline PNG` (which writes it
beside the PNG). The roof comes from that JSON, or from --roof FILE (day18 calibrate --json /
day18 probe --json), or from --peak-bw / --peak-tflops / --peak-fma-tflops, which win.

  day18 classify --ncu reference/ncu/h200/decode_step.csv --roof roof.json --preset llama-1b \\
      --batch 8 --context 1024 --json analysis.json
  scripts/plot_roofline.py analysis.json --out roofline.png
  scripts/plot_roofline.py analysis.json --peak-bw 4200 --peak-tflops 790 --out roofline.png

Kernels without FLOPs (copies, gathers) have no place on a log axis; they are drawn at the left
edge, at their bandwidth's height on the memory roof, and marked so.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

# One colour per verdict (the classifier's bound_name()).
COLORS = {
    "MEMORY BOUND": "tab:blue",
    "COMPUTE BOUND": "tab:red",
    "LATENCY BOUND": "tab:orange",
    "UNCOALESCED": "tab:purple",
    "NEAR THE ROOF": "tab:green",
    "UNKNOWN": "tab:gray",
}


def die(msg: str) -> None:
    sys.exit(f"plot_roofline: {msg}")


def load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        die(f"{what} {path}: cannot read it ({e.strerror})")
    except json.JSONDecodeError as e:
        die(f"{what} {path}: not JSON ({e})")
    return {}


def is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_fields(o: object, where: str, numbers: tuple[str, ...] = (), strings: tuple[str, ...] = ()) -> None:
    """Each key of `numbers` absent, null or a finite number, of `strings` absent, null or a
    string; else one line naming the file, the place and the key (never a TypeError later)."""
    if not isinstance(o, dict):
        die(f"{where}: expected an object, got {json.dumps(o)[:60]}")
    for k in numbers:
        if o.get(k) is not None and not is_number(o[k]):
            die(f"{where}: \"{k}\" is not a number: {json.dumps(o[k])[:60]}")
    for k in strings:
        if o.get(k) is not None and not isinstance(o[k], str):
            die(f"{where}: \"{k}\" is not a string: {json.dumps(o[k])[:60]}")


def check_analysis(analysis: object, path: Path) -> None:
    """What the figure reads, checked before anything is drawn."""
    if not isinstance(analysis, dict) or "kernels" not in analysis:
        die(f"{path}: no \"kernels\" list (write it with day18 classify --json)")
    if not isinstance(analysis["kernels"], list):
        die(f"{path}: \"kernels\" is not a list: {json.dumps(analysis['kernels'])[:60]}")
    check_fields(analysis, str(path), strings=("source", "plan"))
    if analysis.get("roof") is not None:
        check_fields(analysis["roof"], f"{path}: roof", ("peak_bw_gbps", "peak_tflops", "peak_fma_tflops"),
                     ("source",))
    for i, k in enumerate(analysis["kernels"]):
        check_fields(k, f"{path}: kernels[{i}]",
                     ("achieved_gbps", "achieved_tflops", "intensity", "time_share", "pct_of_roof"),
                     ("name", "what", "label", "verdict"))
        if k.get("achieved_gbps") is not None and (k.get("intensity") or 0) > 0 and k.get("achieved_tflops") is None:
            die(f"{path}: kernels[{i}]: has an \"intensity\" but no \"achieved_tflops\" to place it at")


def roof_from(analysis: dict, args: argparse.Namespace) -> tuple[float, float, float, str]:
    """(P in GB/s, tensor peak in TFLOP/s, FMA peak in TFLOP/s, where they came from)."""
    r = analysis.get("roof", {}) or {}
    bw, tf, fma = r.get("peak_bw_gbps", 0) or 0, r.get("peak_tflops", 0) or 0, r.get("peak_fma_tflops", 0) or 0
    source = r.get("source", "") or "the analysis JSON"
    if args.roof:
        j = load_json(args.roof, "--roof")
        check_fields(j, f"--roof {args.roof}", ("p_gbps", "peak_tensor_tflops", "peak_fma_tflops"), ("gpu",))
        bw = j.get("p_gbps", bw) or bw
        tf = j.get("peak_tensor_tflops", tf) or tf
        fma = j.get("peak_fma_tflops", fma) or fma
        source = str(args.roof) + (f" ({j['gpu']})" if "gpu" in j else "")
    if args.peak_bw:
        bw, source = args.peak_bw, "command line"
    if args.peak_tflops:
        tf, source = args.peak_tflops, "command line"
    if args.peak_fma_tflops:
        fma = args.peak_fma_tflops
    if not fma:
        fma = tf
    if not bw or not tf:
        die("no roof: the JSON has none (day18 classify without --peak-bw/--peak-flops/--roof); "
            "give --peak-bw GBPS and --peak-tflops TFLOPS, or --roof FILE")
    return float(bw), float(tf), float(fma), source


def points(analysis: dict) -> list[dict]:
    out = []
    for k in analysis.get("kernels", []):
        if k.get("achieved_gbps") is None:
            continue  # no bytes or no time: no point
        out.append(k)
    return out


def nonempty_path(text: str) -> Path:
    """argparse type: a path, never the empty string (which Path() would take as '.')."""
    if not text:
        raise argparse.ArgumentTypeError("the path is empty ('')")
    return Path(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("analysis", type=nonempty_path, help="JSON of day18 classify --json / day18 analyze")
    ap.add_argument("--out", type=nonempty_path, required=True, help="PNG to write")
    ap.add_argument("--roof", type=nonempty_path, help="day18 calibrate --json or day18 probe --json file")
    ap.add_argument("--peak-bw", type=float, help="P, GB/s (the probe's D2D bandwidth)")
    ap.add_argument("--peak-tflops", type=float, help="tensor-core peak, TFLOP/s")
    ap.add_argument("--peak-fma-tflops", type=float, help="FP32 FMA peak, TFLOP/s (default: --peak-tflops)")
    ap.add_argument("--top", type=int, default=12, help="label the N kernels with the most time (default 12)")
    ap.add_argument("--title", help="figure title (default: the analysis source)")
    args = ap.parse_args()
    if args.out.is_dir():
        die(f"--out {args.out}: is a folder; give the PNG's file name")
    if args.top < 0:
        die(f"--top {args.top}: must be >= 0 (the number of kernels to label)")
    for flag in ("peak_bw", "peak_tflops", "peak_fma_tflops"):
        v = getattr(args, flag)
        if v is not None and not v > 0:
            die(f"--{flag.replace('_', '-')} {v}: must be > 0")

    analysis = load_json(args.analysis, "analysis")
    check_analysis(analysis, args.analysis)
    bw, tf, fma, source = roof_from(analysis, args)
    pts = points(analysis)
    if not pts:
        die(f"{args.analysis}: no kernel has bytes and a duration to place (need ncu's dram bytes, "
            "or the cost model: --preset/--batch/--context)")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die("needs matplotlib (scripts/lab setup makes .venv with it; then .venv/bin/python "
            "scripts/plot_roofline.py ...)")

    intensities = [p["intensity"] for p in pts if p.get("intensity", 0) > 0]
    lo = min(intensities + [0.5]) / 4
    hi = max(intensities + [4 * tf * 1e3 / bw]) * 4
    x_zero = lo * 1.5  # where FLOP-free kernels go
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    xs = [lo * (hi / lo) ** (i / 400) for i in range(401)]
    ax.plot(xs, [min(tf, x * bw / 1e3) for x in xs], color="black", lw=2,
            label=f"roof: P = {bw:.0f} GB/s, tensor cores {tf:.0f} TFLOP/s")
    if fma and abs(fma - tf) > 1e-9:
        ax.plot(xs, [min(fma, x * bw / 1e3) for x in xs], color="black", lw=1, ls="--",
                label=f"FP32 FMA roof {fma:.0f} TFLOP/s")
    ridge = tf * 1e3 / bw
    ax.axvline(ridge, color="gray", lw=0.8, ls=":")
    ax.text(ridge, tf * 1.15, f"ridge {ridge:.0f} FLOP/B", ha="center", fontsize=8, color="gray")

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ys = [p["achieved_tflops"] for p in pts if p.get("achieved_tflops", 0) > 0]
    ys += [p["achieved_gbps"] * x_zero / 1e3 for p in pts if not p.get("intensity")]
    ax.set_ylim(min(ys + [tf]) / 20, tf * 3)

    def place(p: dict) -> tuple[float, float, bool]:
        inten = p.get("intensity", 0)
        flop_free = not inten or inten <= 0
        x = x_zero if flop_free else inten
        y = (p["achieved_gbps"] * x_zero / 1e3) if flop_free else p["achieved_tflops"]
        return x, max(y, 1e-6), flop_free

    seen = set()
    for p in pts:
        verdict = p.get("verdict", "UNKNOWN")
        x, y, flop_free = place(p)
        share = p.get("time_share") or 0
        ax.scatter([x], [y], s=30 + 400 * math.sqrt(max(share, 0)), color=COLORS.get(verdict, "tab:gray"),
                   edgecolor="black", zorder=3, marker="<" if flop_free else "o",
                   label=verdict if verdict not in seen else None)
        seen.add(verdict)

    # Labels of the kernels with the most time, each moved down until it overlaps no label
    # already placed (boxes estimated in display points: 7-pt text, two lines).
    ranked = sorted(pts, key=lambda p: -(p.get("time_share") or 0))[: args.top]
    fig.canvas.draw()
    to_pt = 72.0 / fig.dpi
    boxes: list[tuple[float, float, float, float]] = []
    for p in sorted(ranked, key=lambda p: -place(p)[1]):
        x, y, _ = place(p)
        name = p.get("name", "?")
        if len(name) > 28:
            name = name[:25] + "..."
        what = p.get("what") or ""
        pct = p.get("pct_of_roof")
        lines = [name + (f" [{what}]" if what else ""),
                 p.get("label", p.get("verdict", "")) + (f", {pct:.0f}% of roof" if pct else "")]
        w, h = 4.1 * max(len(line) for line in lines), 19.0
        px, py = (v * to_pt for v in ax.transData.transform((x, y)))
        dy = 4.0
        for _ in range(40):
            bx, by = px + 6, py + dy
            if all(bx + w < ox or ox + ow < bx or by + h < oy or oy + oh < by
                   for ox, oy, ow, oh in boxes):
                break
            dy -= 8.0
        boxes.append((px + 6, py + dy, w, h))
        ax.annotate("\n".join(lines), (x, y), textcoords="offset points", xytext=(6, dy), fontsize=7,
                    arrowprops=dict(arrowstyle="-", lw=0.4, color="gray") if dy < -10 else None)
    ax.set_xlabel("arithmetic intensity (FLOP per DRAM byte)")
    ax.set_ylabel("achieved TFLOP/s")
    title = args.title or f"Kernels on the roofline: {analysis.get('source', args.analysis)}"
    if analysis.get("plan"):
        title += f"\n{analysis['plan']}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=8)
    fig.text(0.01, 0.01, f"roof from {source}; marker area ~ time share; '<' at the left edge: no "
             "FLOPs (placed at its bandwidth)", fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.png")
    fig.savefig(tmp)
    tmp.replace(args.out)
    print(f"plot_roofline: wrote {args.out} ({len(pts)} kernels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
