#!/usr/bin/env python3
"""One figure per tuning experiment (the JSON of `day18 tune ... --json FILE`, schema
day18.tune.v1; docs/report.md has the contract), drawn for the optimization report:

  block_size  one panel per group: each configuration on a categorical axis, its median time
              with p20-p80 error bars; the baseline (grey square) and the best (green star)
              marked; a best whose p20-p80 overlaps the baseline's is drawn orange and labelled
              "within noise" (not a win); a configuration that failed its correctness check is
              a red x on the axis (it was not timed)
  batch_size  step time and tokens/s against the batch (log2 axis) with p20-p80 bands, the
              weight-read floor (weight bytes / P: no step can be shorter) and the knee (the
              largest batch whose step is within 1.25x of the smallest batch's; the same rule as
              `day18 report`)
  precision   per-kernel time relative to the baseline dtype, bars by dtype with p20-p80 error
              bars; the end-to-end decode step (groups whose kernel is "decode_step") in ms

Each figure is DIR/<json file's stem>.png, 10 x 5.5 in at 110 dpi.

  day18 tune block-size --json block_size.json
  scripts/plot_experiments.py block_size.json batch_size.json precision.json --out report/
  scripts/plot_experiments.py tests/engine/report/data/*.json --check   (no matplotlib needed)

--check reads and checks every file and prints what each figure would show, without drawing.
Without matplotlib, use the course's venv (scripts/lab setup makes .venv; then
.venv/bin/python scripts/plot_experiments.py ...).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path
from typing import Any

SCHEMA = "day18.tune.v1"
KINDS = ("block_size", "batch_size", "precision")
KNEE_FACTOR = 1.25  # engine/report/inputs.h: kKneeFactor
TIMING = ("median_us", "p20_us", "p80_us")


class InputError(Exception):
    pass


def nonempty_path(text: str) -> Path:
    """argparse type: a path, never the empty string (which Path() would take as '.')."""
    if not text:
        raise argparse.ArgumentTypeError("the path is empty ('')")
    return Path(text)


def load(path: Path) -> dict:
    """The experiment JSON, checked for what the figure needs; InputError with a one-line reason."""
    try:
        d = json.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror})")
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e})")
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    if d.get("schema") != SCHEMA:
        raise InputError(f"{path}: schema is {d.get('schema')!r}, expected {SCHEMA!r} (the file of day18 tune --json)")
    if d.get("experiment") not in KINDS:
        raise InputError(f"{path}: \"experiment\" is {d.get('experiment')!r}, expected one of {', '.join(KINDS)}")
    groups = d.get("groups")
    if not isinstance(groups, list) or not groups:
        raise InputError(f"{path}: no \"groups\" (the experiment measured nothing)")
    for gi, g in enumerate(groups):
        where = f"{path}: groups[{gi}]"
        pts = g.get("points") if isinstance(g, dict) else None
        if not isinstance(pts, list) or not pts:
            raise InputError(f"{where}: no \"points\"")
        base, best = g.get("baseline"), g.get("best")
        if not isinstance(base, int) or not 0 <= base < len(pts):
            raise InputError(f"{where}: \"baseline\" {base!r} is not a point index (0..{len(pts) - 1})")
        # best -1: no configuration passed its check (day18 tune writes -1 then).
        if not isinstance(best, int) or not -1 <= best < len(pts):
            raise InputError(f"{where}: \"best\" {best!r} is not -1 or a point index (0..{len(pts) - 1})")
        if best >= 0 and not pts[best].get("correct", False):
            raise InputError(f"{where}: the best (point {best}) failed its correctness check")
        for pi, p in enumerate(pts):
            if not isinstance(p, dict) or not isinstance(p.get("correct"), bool):
                raise InputError(f"{where}.points[{pi}]: no \"correct\" true/false")
            if p["correct"]:
                for k in TIMING:
                    if not isinstance(p.get(k), (int, float)) or not math.isfinite(p[k]):
                        raise InputError(f"{where}.points[{pi}]: \"{k}\" is missing or not a number")
    return d


def timed(g: dict) -> list[tuple[int, dict]]:
    return [(i, p) for i, p in enumerate(g["points"]) if p["correct"]]


def comparable(g: dict) -> bool:
    """Both the baseline and the best passed their check: there is a speedup to show."""
    return g["best"] >= 0 and g["points"][g["baseline"]]["correct"]


def within_noise(a: dict, b: dict) -> bool:
    return a["p20_us"] <= b["p80_us"] and b["p20_us"] <= a["p80_us"]


def noise_flagged(g: dict) -> bool:
    """The group's best is no win: the file's "within_noise" (computed from the p20-p80 ranges
    when the file lacks it)."""
    if not comparable(g) or g["best"] == g["baseline"]:
        return False
    flag = g.get("within_noise")
    if isinstance(flag, bool):
        return flag
    return within_noise(g["points"][g["baseline"]], g["points"][g["best"]])


def knee(g: dict) -> int:
    """The largest batch whose step time is within KNEE_FACTOR of the first timed point's; -1 with
    fewer than two timed points (day18 report's batch_knee)."""
    pts = timed(g)
    if len(pts) < 2:
        return -1
    first = pts[0][1]["median_us"]
    best = -1
    for i, p in pts:
        if p["median_us"] <= KNEE_FACTOR * first:
            best = i
    return best


def batch_of(d: dict, p: dict, path: Path) -> float:
    params = d.get("parameters") or []
    key = params[0] if params else "batch"
    v = p.get("config", {}).get(key)
    if not isinstance(v, (int, float)) or v <= 0:
        raise InputError(f"{path}: batch_size point {p.get('label')!r}: config[{key!r}] is not a positive number")
    return float(v)


def describe(d: dict, path: Path) -> str:
    """One line per figure: what --check prints."""
    n_timed = sum(len(timed(g)) for g in d["groups"])
    n_failed = sum(len(g["points"]) for g in d["groups"]) - n_timed
    parts = [f"{path.name} -> {path.stem}.png: {d['experiment']}, {len(d['groups'])} group(s), "
             f"{n_timed} timed point(s), {n_failed} failed its check"]
    for g in d["groups"]:
        b = g["points"][g["baseline"]]
        if g["best"] < 0:
            parts.append(f"  {g.get('name', '?')}: no configuration passed its check")
            continue
        w = g["points"][g["best"]]
        s = f"  {g.get('name', '?')}: best {w.get('label')} vs baseline {b.get('label')}"
        if comparable(g):
            s += f" {b['median_us'] / w['median_us']:.2f}x" + (" (within noise)" if noise_flagged(g) else "")
        else:
            s += " (the baseline failed its check: no speedup)"
        if d["experiment"] == "batch_size":
            k = knee(g)
            s += f"; knee {g['points'][k].get('label') if k >= 0 else 'none'}"
        parts.append(s)
    return "\n".join(parts)


# ---------------------------------------------------------------- drawing

def title_of(d: dict) -> str:
    names = {"block_size": "Thread-block size", "batch_size": "Batch size", "precision": "Precision"}
    prov = d.get("provenance", {})
    return f"{names[d['experiment']]}: {prov.get('gpu', '?')} (commit {prov.get('commit', '?')})"


def draw_block_size(plt, d: dict, path: Path):
    groups = d["groups"]
    fig, axes = plt.subplots(1, len(groups), figsize=(10, 5.5), dpi=110, squeeze=False)
    for ax, g in zip(axes[0], groups):
        labels = [p.get("label", str(i)) for i, p in enumerate(g["points"])]
        x = list(range(len(labels)))
        tp = timed(g)
        xs = [i for i, _ in tp]
        med = [p["median_us"] for _, p in tp]
        lo = [p["median_us"] - p["p20_us"] for _, p in tp]
        hi = [p["p80_us"] - p["median_us"] for _, p in tp]
        ax.errorbar(xs, med, yerr=[lo, hi], fmt="o", color="tab:blue", capsize=4, label="median, p20-p80")
        b = g["points"][g["baseline"]]
        if b["correct"]:
            ax.plot([g["baseline"]], [b["median_us"]], "s", ms=11, mfc="none", mec="grey", mew=2, label="baseline")
        noisy = noise_flagged(g)
        if g["best"] >= 0:
            w = g["points"][g["best"]]
            ax.plot([g["best"]], [w["median_us"]], "*", ms=15, color="tab:orange" if noisy else "tab:green",
                    label="best: within noise" if noisy else "best")
            if noisy:
                ax.annotate("within noise", (g["best"], w["p80_us"]), textcoords="offset points", xytext=(0, 8),
                            ha="center", color="tab:orange", fontsize=9)
        bottom = min((p["p20_us"] for _, p in tp), default=0.0)
        if not tp:
            ax.text(0.5, 0.5, "no configuration passed its check", transform=ax.transAxes, ha="center",
                    color="tab:red")
        for i, p in enumerate(g["points"]):
            if not p["correct"]:
                ax.plot([i], [bottom], "x", ms=11, mew=2.5, color="tab:red", label="failed its check (not timed)")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=9)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_ylabel("time per call (us)")
        result = (f"best {b['median_us'] / g['points'][g['best']]['median_us']:.2f}x" if comparable(g)
                  else "no result" if g["best"] < 0 else "baseline failed its check")
        ax.set_title("\n".join(textwrap.wrap(g.get("name", ""), 30)) + f"\n{result}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        seen = dict(zip(names, handles))
        ax.legend(seen.values(), seen.keys(), fontsize=8, loc="best")
    fig.suptitle(title_of(d) + ": time per call by configuration", fontsize=11)
    return fig


def draw_batch_size(plt, d: dict, path: Path):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 5.5), dpi=110)
    p_gbps = (d.get("roof") or {}).get("p_gbps", 0) or 0
    colors = ["tab:blue", "tab:purple", "tab:brown", "tab:cyan"]
    for gi, g in enumerate(d["groups"]):
        c = colors[gi % len(colors)]
        tp = timed(g)
        b = [batch_of(d, p, path) for _, p in tp]
        ms = [p["median_us"] / 1e3 for _, p in tp]
        lo = [p["p20_us"] / 1e3 for _, p in tp]
        hi = [p["p80_us"] / 1e3 for _, p in tp]
        name = g.get("name", "")
        a1.plot(b, ms, "o-", color=c, label=f"{name}: median")
        a1.fill_between(b, lo, hi, color=c, alpha=0.25, label="p20-p80")
        tok = [bb / (m * 1e-3) for bb, m in zip(b, ms)]
        a2.plot(b, tok, "o-", color=c, label=f"{name}: median")
        a2.fill_between(b, [bb / (h * 1e-3) for bb, h in zip(b, hi)], [bb / (l * 1e-3) for bb, l in zip(b, lo)],
                        color=c, alpha=0.25, label="p20-p80")
        wb = tp[0][1].get("extra", {}).get("weight_bytes") if tp else None
        if isinstance(wb, (int, float)) and wb > 0 and p_gbps > 0:
            floor_ms = wb / (p_gbps * 1e9) * 1e3
            a1.axhline(floor_ms, ls="--", color="black", lw=1,
                       label=f"weight-read floor {floor_ms:.3f} ms ({wb / 1e9:.2f} GB / P)")
        k = knee(g)
        if k >= 0:
            kb = batch_of(d, g["points"][k], path)
            for ax in (a1, a2):
                ax.axvline(kb, ls=":", color="tab:red", lw=1.5, label=f"knee: batch {kb:g}")
    for ax, ylabel in ((a1, "step time (ms)"), (a2, "tokens/s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch (sequences per step)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    a1.set_ylim(bottom=0)
    a2.set_ylim(bottom=0)
    a1.set_title("step time: flat until the knee", fontsize=10)
    a2.set_title("throughput", fontsize=10)
    fig.suptitle(title_of(d), fontsize=11)
    return fig


def draw_precision(plt, d: dict, path: Path):
    kernels = [g for g in d["groups"] if g.get("kernel") != "decode_step"]
    steps = [g for g in d["groups"] if g.get("kernel") == "decode_step"]
    ncols = (1 if kernels else 0) + (1 if steps else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(10, 5.5), dpi=110, squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1][:ncols]} if ncols == 2 else None)
    axes = list(axes[0])
    dtypes: list[str] = []
    for g in d["groups"]:
        for p in g["points"]:
            if p.get("label") not in dtypes:
                dtypes.append(p.get("label"))
    colors = dict(zip(dtypes, ["tab:gray", "tab:blue", "tab:green", "tab:purple", "tab:olive"]))

    def bars(ax, groups, relative: bool):
        width = 0.8 / max(1, len(dtypes))
        for gi, g in enumerate(groups):
            if relative and not g["points"][g["baseline"]]["correct"]:
                ax.text(gi, 0.5, "baseline failed\nits check", ha="center", color="tab:red", fontsize=8)
                continue
            base = g["points"][g["baseline"]]["median_us"] if g["points"][g["baseline"]]["correct"] else 1.0
            for p in g["points"]:
                j = dtypes.index(p.get("label"))
                x = gi - 0.4 + width * (j + 0.5)
                if not p["correct"]:
                    ax.plot([x], [0], "x", color="tab:red", ms=10, mew=2.5, label="failed its check")
                    continue
                scale = base if relative else 1e3
                m, lo, hi = p["median_us"] / scale, p["p20_us"] / scale, p["p80_us"] / scale
                ax.bar(x, m, width, color=colors[p.get("label")], label=p.get("label"),
                       yerr=[[m - lo], [hi - m]], capsize=3)
                if comparable(g) and p is g["points"][g["best"]] and g["best"] != g["baseline"]:
                    ax.annotate(f"{base / p['median_us']:.2f}x", (x, hi), textcoords="offset points",
                                xytext=(0, 3), ha="center", fontsize=8)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(["\n".join(textwrap.wrap(g.get("name", ""), 18)) for g in groups], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        seen = dict(zip(names, handles))
        ax.legend(seen.values(), seen.keys(), fontsize=8)

    i = 0
    if kernels:
        bars(axes[i], kernels, relative=True)
        axes[i].axhline(1.0, color="black", lw=0.8)
        axes[i].set_ylabel("time relative to the baseline dtype (p20-p80 bars)")
        axes[i].set_title("per kernel", fontsize=10)
        i += 1
    if steps:
        bars(axes[i], steps, relative=False)
        axes[i].set_ylabel("step time (ms)")
        axes[i].set_title("end to end", fontsize=10)
    fig.suptitle(title_of(d), fontsize=11)
    return fig


DRAW = {"block_size": draw_block_size, "batch_size": draw_batch_size, "precision": draw_precision}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=nonempty_path, help="experiment JSON files (day18 tune --json)")
    ap.add_argument("--out", type=nonempty_path, help="folder for the PNGs (one per file: <stem>.png)")
    ap.add_argument("--check", action="store_true", help="check the files and print what each figure shows; draw nothing")
    args = ap.parse_args(argv)
    try:
        stems: dict[str, Path] = {}
        data = []
        for f in args.files:
            if f.stem in stems:
                raise InputError(f"{f}: same name as {stems[f.stem]}: both figures would be {f.stem}.png")
            stems[f.stem] = f
            data.append((f, load(f)))
        if args.check:
            for f, d in data:
                print(describe(d, f))
            return 0
        if args.out is None:
            raise InputError("--out DIR is required to draw (or --check to only check the files)")
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise InputError("needs matplotlib (scripts/lab setup makes .venv with it; then "
                             ".venv/bin/python scripts/plot_experiments.py ...)")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"--out {args.out}: cannot make the folder ({e.strerror})")
        for f, d in data:
            fig = DRAW[d["experiment"]](plt, d, f)
            fig.tight_layout()
            png = args.out / f"{f.stem}.png"
            tmp = png.with_name(png.name + ".tmp.png")
            try:
                fig.savefig(tmp)
                tmp.replace(png)
            except OSError as e:
                raise InputError(f"{png}: cannot write it ({e.strerror})")
            finally:
                plt.close(fig)
            print(f"wrote {png}")
    except InputError as e:
        print(f"plot_experiments: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
