#!/usr/bin/env python3
"""The figure of one lab, from the results `scripts/lab check NN` saved: your timings beside the
engine's, measured in the same run on the same GPU.

  lab 01  the stream lanes of two consecutive steps (h2d / compute / d2h), from the step's events
  lab 02  PagedAttention time and % of P against context length, one line per batch size
  other   % of P per timed kernel (yours and the engine's), time as a label

  scripts/lab plot 02     (calls: scripts/plot_lab.py build/labs/results/lab02_student.json)
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot_lab: cannot read {path}: {e}")


def check_results(r: dict, path: Path) -> None:
    """The timings the figure reads, with their types: one line naming the file and the key
    instead of a TypeError or KeyError while drawing."""
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if "lab" in r and not isinstance(r["lab"], str):
        sys.exit(f"plot_lab: {path}: \"lab\": expected a lab id like \"02\", got {json.dumps(r['lab'])[:40]}")
    for key in ("timings", "engine_timings"):
        t = r.get(key, {})
        if not isinstance(t, dict):
            sys.exit(f"plot_lab: {path}: \"{key}\": expected an object, got {json.dumps(t)[:60]}")
        for name, v in t.items():
            where = f"{path}: {key}.{name}"
            if not isinstance(v, dict):
                sys.exit(f"plot_lab: {where}: expected an object, got {json.dumps(v)[:60]}")
            for k in ("median_ms", "pct_of_p", "p20_ms", "p80_ms"):
                if k == "median_ms" and k not in v:
                    sys.exit(f"plot_lab: {where}: no \"median_ms\" (required)")
                if k in v and not number(v[k]):
                    sys.exit(f"plot_lab: {where}.{k}: expected a number, got {json.dumps(v[k])[:60]}")
            if name.startswith("lane:") and not re.fullmatch(r"lane:\d+:\w+", name):
                sys.exit(f"plot_lab: {where}: a lane key is lane:<step>:<stream>")
            if name.startswith("lane:") and ("p20_ms" not in v or "p80_ms" not in v):
                sys.exit(f"plot_lab: {where}: a lane needs \"p20_ms\" and \"p80_ms\" (its start and end)")


def plot_lanes(ax, timings: dict, title: str) -> bool:
    """Keys 'lane:<step>:<stream>' with start_ms in p20_ms and end_ms in p80_ms (lab 01)."""
    lanes = {k: v for k, v in timings.items() if k.startswith("lane:")}
    if not lanes:
        return False
    streams = ["h2d", "compute", "d2h"]
    colors = {"0": "tab:blue", "1": "tab:orange"}
    for k, v in lanes.items():
        _, step, stream = k.split(":")
        if stream not in streams:
            continue
        y = streams.index(stream)
        ax.barh(y, v["p80_ms"] - v["p20_ms"], left=v["p20_ms"], color=colors.get(str(int(step) % 2)),
                edgecolor="black", height=0.6)
        ax.text(v["p20_ms"], y + 0.35, f"step {step}", fontsize=7)
    ax.set_yticks(range(len(streams)), streams)
    ax.set_xlabel("ms since the first step's H2D")
    ax.set_title(title)
    return True


def nonempty_path(text: str) -> Path:
    """argparse type: a path, never the empty string (which Path() would take as '.')."""
    if not text:
        raise argparse.ArgumentTypeError("the path is empty ('')")
    return Path(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=nonempty_path, help="build*/labs/results/labNN_student.json")
    ap.add_argument("--out", type=nonempty_path, required=True, help="PNG to write")
    args = ap.parse_args()
    if args.out.is_dir():
        sys.exit(f"plot_lab: --out {args.out}: is a folder; give the PNG's file name")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_lab: needs matplotlib (scripts/lab setup makes .venv with it)")
    r = load(args.results)
    if not isinstance(r, dict):
        sys.exit(f"plot_lab: {args.results} is not a lab results file (a JSON {type(r).__name__}, "
                 "not an object): scripts/lab check NN writes build*/labs/results/labNN_student.json")
    check_results(r, args.results)
    mine, ref = r.get("timings", {}), r.get("engine_timings", {})
    if not mine:
        sys.exit(f"plot_lab: {args.results} has no timings: run scripts/lab check {r.get('lab')} on a GPU")
    lab = r.get("lab")
    if lab == "01":
        fig, axes = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
        ok = plot_lanes(axes[0], mine, "yours")
        plot_lanes(axes[1], ref, "engine")
        if not ok:
            sys.exit("plot_lab: no lane timings recorded (lab 01's timing test writes them)")
    elif lab == "02" and any(re.match(r"b\d+_ctx\d+", k) for k in mine):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
        pat = re.compile(r"b(\d+)_ctx(\d+)_?(\w*)")
        for label, data, style in (("yours", mine, "-o"), ("engine", ref, "--s")):
            series: dict[str, list] = {}
            for k, v in data.items():
                m = pat.match(k)
                if m:
                    series.setdefault(f"B={m[1]} {m[3]}".strip(), []).append((int(m[2]), v))
            for name, pts in sorted(series.items()):
                pts.sort()
                xs = [p[0] for p in pts]
                a1.plot(xs, [p[1]["median_ms"] * 1e3 for p in pts], style, label=f"{label} {name}")
                a2.plot(xs, [p[1]["pct_of_p"] for p in pts], style, label=f"{label} {name}")
        for a in (a1, a2):
            a.set_xscale("log", base=2)
            a.set_xlabel("context length (tokens)")
            a.grid(alpha=0.3)
        a1.set_ylabel("median time (us, L2 flushed)")
        a1.set_yscale("log")
        a2.set_ylabel("% of P (bytes that must be read / time)")
        a2.axhline(100, color="gray", lw=0.8)
        a2.legend(fontsize=7)
        fig.suptitle("Lab 02: PagedAttention, your kernel vs the engine's readable kernel")
    else:
        keys = sorted(mine)
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(keys) + 2), 4.5))
        xs = range(len(keys))
        w = 0.38
        ax.bar([x - w / 2 for x in xs], [mine[k].get("pct_of_p", 0) for k in keys], w, label="yours")
        ax.bar([x + w / 2 for x in xs], [ref.get(k, {}).get("pct_of_p", 0) for k in keys], w,
               label="engine")
        for x, k in zip(xs, keys):
            ax.text(x - w / 2, mine[k].get("pct_of_p", 0) + 1, f"{mine[k]['median_ms'] * 1e3:.0f}us",
                    ha="center", fontsize=7)
        ax.set_xticks(list(xs), keys, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("% of P")
        ax.axhline(100, color="gray", lw=0.8)
        ax.legend()
        ax.set_title(f"Lab {lab}: bandwidth of each kernel, as % of the measured P")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.png")  # whole or absent, never half-written
    fig.savefig(tmp, dpi=110)
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
