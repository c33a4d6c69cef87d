#!/usr/bin/env python3
"""Plot Day 18 kernel benchmarks against the course's targets.

Reads Google Benchmark JSON written by `scripts/lab bench` (or scripts/gpu_check.sh) from
reference/results/<gpu>/, prints a table of every benchmark against its target, and draws:

  pct_of_peak.png   each benchmark's share of the bandwidth it is measured against: P, the
                    device-to-device copy bandwidth measured in the same run (pct_of_P), or for
                    host<->device copies the pinned copy bandwidth (pct_of_pinned); the target
                    of the issue's table is drawn on the bar.
  latency.png       benchmarks whose target is a time (decode attention at batch 1, sampling).
  sweep_<name>.png  time (and GB/s) against the one argument that varies, for every family of
                    benchmarks that sweeps an argument (e.g. batch size or block size).

Examples:
  .venv/bin/python scripts/plot_benchmarks.py reference/results/h100
  python3 scripts/plot_benchmarks.py --table reference/results/h100/benchmarks.json   # no matplotlib

Benchmark names are read as BM_<op>/<args>, where args are either named (num_seqs:64) or
positional (64); docs/benchmarks.md lists the argument names the targets recognise.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Targets (H100, fp16 unless stated, % of P measured in the same run, L2 flushed). Keep in sync
# with docs/benchmarks.md.


@dataclass
class Target:
    label: str
    op: str                    # regex searched in the op part of the name (after "BM_")
    args: dict[str, int]       # argument values the benchmark must have
    metric: str                # "pct_of_P", "pct_of_pinned" or "time_us"
    goal: str                  # ">=" or "<="
    value: float
    dtype: str = "fp16"
    exclude: str | None = None  # regex that rules a benchmark out (e.g. the fused variant)

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.goal == ">=" else measured <= self.value

    def describe(self) -> str:
        unit = " us" if self.metric == "time_us" else ("% of pinned" if self.metric == "pct_of_pinned" else "% of P")
        return f"{self.goal} {self.value:g}{unit}"


TARGETS = [
    Target("paged attention B=64 ctx 4096", r"paged_attention", {"batch": 64, "context": 4096},
           "pct_of_P", ">=", 90),
    Target("paged attention B=1 ctx 4096", r"paged_attention", {"batch": 1, "context": 4096},
           "time_us", "<=", 20),
    Target("rms_norm 16384x8192", r"(?<!add_)rms_norm", {"tokens": 16384, "hidden": 8192},
           "pct_of_P", ">=", 85, exclude=r"fused"),
    Target("fused_add_rms_norm 16384x8192", r"fused_add_rms_norm", {"tokens": 16384, "hidden": 8192},
           "pct_of_P", ">=", 85),
    Target("rotary neox 4096 tokens", r"rotary", {"tokens": 4096}, "pct_of_P", ">=", 70,
           exclude=r"gptj|interleav"),
    Target("reshape_and_cache 4096 tokens", r"reshape_and_cache", {"tokens": 4096}, "pct_of_P", ">=", 70,
           exclude=r"memcpy_ceiling"),
    Target("silu_and_mul 4096x14336", r"silu_and_mul", {"tokens": 4096, "hidden": 14336},
           "pct_of_P", ">=", 85),
    # BM_sample runs B=256 x vocab 128256 fp32; mix 1 = top-k 50 + top-p 0.9, mix 2 = top-p 0.95.
    Target("top-k/top-p sampling B=256 vocab 128256", r"BM_sample/mix:[12]\b", {}, "time_us", "<=", 1000,
           dtype=""),
    # BM_swap_blocks moves 256 blocks x 32 KiB; the engine's automatic strategy, random block ids.
    Target("swap_blocks 256 blocks x 32 KiB", r"BM_swap_blocks/(out|in)/random/automatic", {},
           "pct_of_pinned", ">=", 80, dtype=""),
]

# Names a benchmark may give an argument (lower case); a target's key matches any of them.
ALIASES = {
    "batch": {"b", "batch", "batch_size", "bs", "num_seqs", "seqs"},
    "context": {"ctx", "context", "context_len", "ctx_len", "seq_len", "len"},
    "tokens": {"t", "tokens", "num_tokens", "n", "rows", "m"},
    "hidden": {"h", "d", "hidden", "hidden_size", "dim", "cols", "intermediate", "intermediate_size"},
    "vocab": {"v", "vocab", "vocab_size"},
    "blocks": {"blocks", "num_blocks", "nblocks"},
}

DTYPES = {"fp16": {"fp16", "f16", "half", "float16"}, "bf16": {"bf16", "bfloat16"},
          "fp32": {"fp32", "f32", "float", "float32"}}
# Name parts Google Benchmark appends that are not arguments.
GB_SUFFIX = re.compile(r"^(manual_time|real_time|process_time|iterations:\d+|repeats:\d+|threads:\d+|min_time:.*)$")


# ---------------------------------------------------------------------------------------------
@dataclass
class Bench:
    name: str
    op: str
    named: dict[str, str]
    positional: list[str]
    time_us: float
    counters: dict[str, float]
    dtype: str = ""
    extra_tokens: list[str] = field(default_factory=list)

    def arg_values(self) -> list[str]:
        return self.positional + list(self.named.values())


def parse_name(name: str) -> tuple[str, dict[str, str], list[str], str]:
    parts = [p for p in name.split("/") if p and not GB_SUFFIX.match(p)]
    op = parts[0][3:] if parts[0].startswith("BM_") else parts[0]
    named, positional, dtype = {}, [], ""
    tokens = re.split(r"[<>_,:\s]+", op.lower())
    for p in parts[1:]:
        if ":" in p:
            k, v = p.split(":", 1)
            named[k.lower()] = v
            tokens.append(v.lower())
        else:
            positional.append(p)
            tokens.append(p.lower())
    for canon, spellings in DTYPES.items():
        if any(t in spellings for t in tokens):
            dtype = canon
    return op, named, positional, dtype


UNIT_TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def load(paths: list[pathlib.Path]) -> tuple[list[Bench], dict]:
    files: list[pathlib.Path] = []
    for p in paths:
        if not p.exists():
            sys.exit(f"plot_benchmarks: {p}: no such file or folder")
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        sys.exit(f"plot_benchmarks: no JSON files in {', '.join(map(str, paths))}")
    files.sort(key=lambda f: f.stat().st_mtime)  # later files override earlier results
    benches: dict[str, Bench] = {}
    context: dict = {}
    for f in files:
        try:
            data = json.loads(f.read_text())
        except OSError as e:
            sys.exit(f"plot_benchmarks: {f}: cannot read it ({e.strerror})")
        except json.JSONDecodeError as e:
            sys.exit(f"plot_benchmarks: {f}: not JSON ({e})")
        if not isinstance(data, dict):
            sys.exit(f"plot_benchmarks: {f}: not Google Benchmark JSON (a {type(data).__name__}, not an object)")
        if "benchmarks" not in data:
            print(f"plot_benchmarks: {f}: no 'benchmarks' (not Google Benchmark JSON), skipped", file=sys.stderr)
            continue
        context = data.get("context", {}) | {"file": str(f)}
        rows = data["benchmarks"]
        has_median = {r.get("run_name") for r in rows if r.get("aggregate_name") == "median"}
        for r in rows:
            if r.get("error_occurred") or r.get("skipped"):
                continue
            run_name = r.get("run_name", r["name"])
            if r.get("run_type") == "aggregate":
                if r.get("aggregate_name") != "median":
                    continue
            elif run_name in has_median:
                continue  # repetitions: use their median
            op, named, positional, dtype = parse_name(run_name)
            counters = {k: v for k, v in r.items() if isinstance(v, (int, float)) and k not in (
                "real_time", "cpu_time", "iterations", "repetitions", "repetition_index", "threads",
                "family_index", "per_family_instance_index")}
            t = r["real_time"] * UNIT_TO_US.get(r.get("time_unit", "ns"), 1e-3)
            display = "/".join(p for p in run_name.split("/") if p and not GB_SUFFIX.match(p))
            benches[display] = Bench(display, op, named, positional, t, counters, dtype)
    return list(benches.values()), context


def matches(t: Target, b: Bench) -> bool:
    if not (re.search(t.op, b.op) or re.search(t.op, b.name)) or (t.exclude and re.search(t.exclude, b.name.lower())):
        return False
    if t.dtype and b.dtype and b.dtype != t.dtype:
        return False
    for key, want in t.args.items():
        named = [v for k, v in b.named.items() if k in ALIASES.get(key, {key})]
        if named:
            if not any(v == str(want) for v in named):
                return False
        elif str(want) not in b.arg_values():
            return False
    return True


def target_for(b: Bench) -> Target | None:
    for t in TARGETS:
        if matches(t, b):
            return t
    return None


def measured(b: Bench, metric: str) -> float | None:
    return b.time_us if metric == "time_us" else b.counters.get(metric)


def peak_metric(b: Bench) -> str | None:
    for m in ("pct_of_pinned", "pct_of_P"):
        if m in b.counters:
            return m
    return None


# ---------------------------------------------------------------------------------------------
def print_table(benches: list[Bench], ctx: dict) -> int:
    print(f"GPU: {ctx.get('gpu', '?')}  driver API {ctx.get('cuda_driver_api', '?')}  CUDA runtime "
          f"{ctx.get('cuda_runtime', '?')}  commit {ctx.get('day18_commit', '?')}  date {ctx.get('date', '?')}")
    print(f"P (D2D copy, read+write): {float(ctx.get('d2d_copy_GBps', 'nan')):.0f} GB/s   pinned H2D "
          f"{float(ctx.get('pinned_h2d_GBps', 'nan')):.1f} GB/s, D2H {float(ctx.get('pinned_d2h_GBps', 'nan')):.1f} GB/s\n")
    w = max([len(b.name) for b in benches] + [9])
    print(f"{'benchmark':<{w}} {'time us':>10} {'GB/s':>8} {'% peak':>7}  target")
    missed = 0
    for b in sorted(benches, key=lambda b: b.name):
        m = peak_metric(b)
        pct = f"{b.counters[m]:.1f}" if m else "-"
        gbs = f"{b.counters['GB/s']:.0f}" if "GB/s" in b.counters else "-"
        t = target_for(b)
        verdict = ""
        if t:
            v = measured(b, t.metric)
            ok = v is not None and t.met(v)
            missed += not ok
            verdict = f"{t.describe():<16} {'met' if ok else 'MISSED'}"
        print(f"{b.name:<{w}} {b.time_us:>10.2f} {gbs:>8} {pct:>7}  {verdict}")
    hit = {id(t) for b in benches for t in TARGETS if matches(t, b)}
    for t in TARGETS:
        if id(t) not in hit:
            print(f"  (no benchmark matches the target '{t.label}' {t.describe()})")
    return missed


def title(ctx: dict, what: str) -> str:
    p = ctx.get("d2d_copy_GBps")
    ptxt = f", P = {float(p):.0f} GB/s" if p else ""
    return f"{what}\n{ctx.get('gpu', '?')}{ptxt}, commit {ctx.get('day18_commit', '?')}, {str(ctx.get('date', ''))[:10]}"


def label(b: Bench) -> str:
    return b.name[3:] if b.name.startswith("BM_") else b.name


def bar_figure(plt, labels: list[str], height_per_row: float):
    """A horizontal bar chart wide enough for its labels (matplotlib does not size for them)."""
    longest = max(len(s) for s in labels)
    fig, ax = plt.subplots(figsize=(6 + 0.075 * longest, height_per_row * len(labels) + 1.9))
    return fig, ax


def finish(fig, ax, heading: str, ctx: dict, path: pathlib.Path) -> pathlib.Path:
    fig.suptitle(title(ctx, heading), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120)
    return path


def color(t: Target | None, v: float | None) -> str:
    if t is None or v is None:
        return "#9e9e9e"
    return "#2e7d32" if t.met(v) else "#c62828"


def plot_pct(plt, benches: list[Bench], ctx: dict, out: pathlib.Path) -> pathlib.Path | None:
    rows = [(b, peak_metric(b)) for b in sorted(benches, key=lambda b: b.name) if peak_metric(b)]
    if not rows:
        return None
    labels = [f"{label(b)}{'  (of pinned)' if m == 'pct_of_pinned' else ''}" for b, m in rows]
    fig, ax = bar_figure(plt, labels, 0.32)
    ys = range(len(rows))
    vals = [b.counters[m] for b, m in rows]
    tgts = [target_for(b) for b, _ in rows]
    tgts = [t if t and t.metric != "time_us" else None for t in tgts]
    ax.barh(list(ys), vals, color=[color(t, v) for t, v in zip(tgts, vals)])
    for y, t in zip(ys, tgts):
        if t:
            ax.plot([t.value, t.value], [y - 0.4, y + 0.4], color="black", lw=2)
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(100, color="grey", ls=":", lw=1)
    ax.set_xlabel("% of the bandwidth measured in the same run: P (D2D copy), or pinned copies")
    ax.set_xlim(0, max(110, max(vals) * 1.05))
    path = finish(fig, ax, "Share of peak bandwidth (black tick: target; green met, red missed, grey: no target)",
                  ctx, out / "pct_of_peak.png")
    plt.close(fig)
    return path


def plot_latency(plt, benches: list[Bench], ctx: dict, out: pathlib.Path) -> pathlib.Path | None:
    rows = [(b, t) for b in sorted(benches, key=lambda b: b.name) if (t := target_for(b)) and t.metric == "time_us"]
    if not rows:
        return None
    fig, ax = bar_figure(plt, [label(b) for b, _ in rows], 0.45)
    ys = list(range(len(rows)))
    ax.barh(ys, [b.time_us for b, _ in rows], color=[color(t, b.time_us) for b, t in rows])
    for y, (_, t) in zip(ys, rows):
        ax.plot([t.value, t.value], [y - 0.4, y + 0.4], color="black", lw=2)
    ax.set_yticks(ys, [label(b) for b, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("time per call (us, log scale)")
    path = finish(fig, ax, "Latency targets (black tick: target; green met, red missed)", ctx, out / "latency.png")
    plt.close(fig)
    return path


def as_number(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def sweeps(benches: list[Bench]) -> dict[str, tuple[str, list[tuple[float, Bench]], str]]:
    """Families of >= 3 benchmarks that differ in exactly one numeric argument."""
    groups: dict[tuple, list[tuple[float, Bench]]] = {}
    for b in benches:
        args = [(k, v) for k, v in b.named.items()] + [(f"arg{i}", v) for i, v in enumerate(b.positional)]
        for i, (k, v) in enumerate(args):
            x = as_number(v)
            if x is None:
                continue
            rest = tuple(a for j, a in enumerate(args) if j != i)
            groups.setdefault((b.op, k, rest), []).append((x, b))
    out = {}
    for (op, k, rest), pts in groups.items():
        if len({x for x, _ in pts}) >= 3:
            key = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{op}_over_{k}").strip("_")
            n = 2
            while key in out:
                key = re.sub(r"_\d+$", "", key) + f"_{n}"
                n += 1
            out[key] = (k, sorted(pts, key=lambda p: p[0]), ", ".join(f"{a}={v}" for a, v in rest))
    return out


def plot_sweeps(plt, benches: list[Bench], ctx: dict, out: pathlib.Path, limit: int) -> list[pathlib.Path]:
    paths = []
    for key, (arg, pts, fixed) in list(sweeps(benches).items())[:limit]:
        xs = [x for x, _ in pts]
        fig, ax = plt.subplots(figsize=(8, 4.8))
        ax.plot(xs, [b.time_us for _, b in pts], "o-", color="#1565c0", label="time (us)")
        ax.set_xlabel(arg)
        ax.set_ylabel("time per call (us)", color="#1565c0")
        if max(xs) / max(min(xs), 1e-9) >= 16 and min(xs) > 0:
            ax.set_xscale("log", base=2)
        if all("GB/s" in b.counters for _, b in pts):
            ax2 = ax.twinx()
            ax2.plot(xs, [b.counters["GB/s"] for _, b in pts], "s--", color="#ef6c00", label="GB/s")
            ax2.set_ylabel("GB/s", color="#ef6c00")
        ax.set_title(fixed, fontsize=7)
        path = finish(fig, ax, f"{pts[0][1].op}: sweep over {arg}", ctx, out / f"sweep_{key}.png")
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", type=pathlib.Path,
                    help="Google Benchmark JSON files, or folders of them (e.g. reference/results/h100)")
    ap.add_argument("--out", type=pathlib.Path,
                    help="where the PNGs go (default: <first input folder>/plots)")
    ap.add_argument("--table", action="store_true", help="print the table only (no matplotlib needed)")
    ap.add_argument("--max-sweeps", type=int, default=24, help="at most this many sweep plots")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()

    benches, ctx = load(args.inputs)
    if not benches:
        print("plot_benchmarks: no benchmark results (all skipped? run on a GPU)", file=sys.stderr)
        return 1
    missed = print_table(benches, ctx)
    if not args.table:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            sys.exit("plot_benchmarks: matplotlib is missing: run scripts/lab setup and use .venv/bin/python")
        first = args.inputs[0]
        out = args.out or ((first if first.is_dir() else first.parent) / "plots")
        out.mkdir(parents=True, exist_ok=True)
        made = [plot_pct(plt, benches, ctx, out), plot_latency(plt, benches, ctx, out)]
        made += plot_sweeps(plt, benches, ctx, out, args.max_sweeps)
        print("\nwrote " + ", ".join(str(p) for p in made if p))
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
