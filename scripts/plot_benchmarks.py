#!/usr/bin/env python3
"""Day 18 kernel benchmarks: a table against the course's targets, and up to five figures.

Reads the Google Benchmark JSON that `day18_bench --benchmark_format=json` writes (through
`scripts/lab bench` or scripts/gpu_check.sh, into reference/results/<gpu>/), prints every
benchmark with its time, GB/s and share of the bandwidth it is measured against, then each
target of the course with the number measured for it and "met" or "MISSED". Then it draws one
figure per question a learner asks (10 x 5.5 inches or a little taller, 110 dpi):

  memory_roof.png              How close does each kernel family get to the memory roof? The
                               % of P (the D2D copy bandwidth measured in the same run) of each
                               op at its headline shape, one marker per dtype; swap_blocks
                               against the pinned host link instead. Targets as ticks, a missed
                               one in red.
  paged_attention_scaling.png  How does PagedAttention scale with batch and context? Time and
                               % of P against the context (log2), one panel per batch size, one
                               line per kernel version (auto, v1, v2, readable).
  paged_attention_knobs.png    What do v1's threads per block and v2's partition size change?
  small_kernels.png            How long do the small per-token kernels of a decode step take?
                               The engine's path beside what it replaced (unfused ops, cuBLAS).
  prefill_attention.png        How fast is prefill attention on tensor cores? TFLOP/s of the
                               prefill kernel and of the decode kernels, against a cuBLAS GEMM.

Each figure names the GPU, the commit, the date and P from the JSON's context. Benchmarks that
a figure does not show are counted in its footnote; the table lists them all. A figure whose
benchmarks are all absent (a --benchmark_filter run) is not drawn. Files go into --out only
(default: a plots/ folder beside the input), each written through a temporary file there.

Examples:
  .venv/bin/python scripts/plot_benchmarks.py reference/results/h100     # table + figures
  python3 scripts/plot_benchmarks.py --table reference/results/h100/benchmarks.json  # no matplotlib
  .venv/bin/python scripts/plot_benchmarks.py my_run.json --out /tmp/plots --strict

Benchmark names are those of engine/benchmarks/*.cu (BM_<op>/<variant>/<name>:<value>/...).
Repetitions (--benchmark_repetitions) are read through their median.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import re
import sys
import tempfile
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# Targets of the course (H100, fp16 unless stated, % of P measured in the same run, L2 flushed),
# as engine/benchmarks/*.cu define them. Each names the benchmarks it judges exactly: the
# engine's automatic choice at the target's shape, not the tuning variants around it.
# Keep in sync with docs/benchmarks.md ("Targets").


@dataclass(frozen=True)
class Target:
    label: str
    names: tuple[str, ...]     # benchmark names (without GB's /manual_time suffix)
    metric: str                # "pct_of_P", "pct_of_pinned" or "time_us"
    goal: str                  # ">=" or "<="
    value: float

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.goal == ">=" else measured <= self.value

    def describe(self) -> str:
        unit = {"time_us": " us", "pct_of_pinned": "% of pinned"}.get(self.metric, "% of P")
        return f"{self.goal} {self.value:g}{unit}"


TARGETS = [
    Target("paged attention B=64 ctx 4096", ("BM_paged_attention/target_b64_ctx4096",),
           "pct_of_P", ">=", 90),
    Target("paged attention B=1 ctx 4096", ("BM_paged_attention/target_b1_ctx4096",),
           "time_us", "<=", 20),
    Target("rms_norm 16384x8192", ("BM_rms_norm/tokens:16384/hidden:8192",), "pct_of_P", ">=", 85),
    Target("fused_add_rms_norm 16384x8192", ("BM_fused_add_rms_norm/tokens:16384/hidden:8192",),
           "pct_of_P", ">=", 85),
    Target("rotary neox 4096 tokens",
           ("BM_rotary_embedding/neox/fp16/tokens:4096/heads:32/kv_heads:8/head:128",),
           "pct_of_P", ">=", 70),
    Target("reshape_and_cache 4096 tokens",
           ("BM_reshape_and_cache/fp16/tokens:4096/kv_heads:8/head:128",), "pct_of_P", ">=", 70),
    Target("silu_and_mul 4096x14336", ("BM_silu_and_mul/tokens:4096/d:14336",), "pct_of_P", ">=", 85),
    # BM_sample: B=256 x vocab 128256 fp32; mix 1 = top-k 50 + top-p 0.9, mix 2 = top-p 0.95.
    Target("top-k/top-p sampling B=256 vocab 128256", ("BM_sample/mix:1", "BM_sample/mix:2"),
           "time_us", "<=", 1000),
    # 256 blocks x 32 KiB, scattered, the engine's automatic strategy.
    Target("swap_blocks 256 blocks x 32 KiB",
           ("BM_swap_blocks/out/random/automatic", "BM_swap_blocks/in/random/automatic"),
           "pct_of_pinned", ">=", 80),
]

# Name parts Google Benchmark adds that are not arguments. (threads:N is GB's only after the
# time kind: BM_paged_attention/.../threads:128/manual_time is a kernel argument.)
GB_SUFFIX = re.compile(r"^(manual_time|real_time|process_time|iterations:\d+|repeats:\d+|min_time:.*)$")
DTYPES = ("fp16", "bf16", "fp32")
UNIT_TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


# ---------------------------------------------------------------------------------------------
@dataclass
class Bench:
    name: str                          # BM_op/variant/key:value/... without GB's suffixes
    time_us: float
    counters: dict[str, float]
    label: str = ""
    args: dict[str, str] = field(default_factory=dict)   # key:value parts
    tags: list[str] = field(default_factory=list)        # bare parts after the op (neox, fp16)

    @property
    def op(self) -> str:
        return self.name.split("/")[0]

    def ref_metric(self) -> str | None:
        """The share this benchmark reports: of the pinned link, of a cuBLAS GEMM's TFLOP/s
        (compute-bound prefill), or of P."""
        for m in ("pct_of_pinned", "pct_of_gemm", "pct_of_P"):
            if m in self.counters:
                return m
        return None


def strip_suffixes(run_name: str) -> str:
    parts = [p for p in run_name.split("/") if p]
    out: list[str] = []
    after_time_kind = False
    for p in parts:
        if p in ("manual_time", "real_time", "process_time"):
            after_time_kind = True
            continue
        if GB_SUFFIX.match(p) or (after_time_kind and re.fullmatch(r"threads:\d+", p)):
            continue
        out.append(p)
    return "/".join(out)


def parse_name(name: str) -> tuple[dict[str, str], list[str]]:
    args, tags = {}, []
    for p in name.split("/")[1:]:
        if ":" in p:
            k, v = p.split(":", 1)
            args[k] = v
        else:
            tags.append(p)
    return args, tags


def fail(msg: str) -> None:
    sys.exit(f"plot_benchmarks: {msg}")


def read_rows(f: pathlib.Path, data: dict) -> list[Bench]:
    rows = data["benchmarks"]
    if not isinstance(rows, list):
        fail(f"{f}: 'benchmarks' is a {type(rows).__name__}, not a list")
    has_median = {r.get("run_name") for r in rows if isinstance(r, dict) and r.get("aggregate_name") == "median"}
    out = []
    for r in rows:
        if not isinstance(r, dict) or r.get("error_occurred") or r.get("skipped"):
            continue
        run_name = r.get("run_name", r.get("name"))
        if not isinstance(run_name, str) or not isinstance(r.get("real_time"), (int, float)):
            fail(f"{f}: a benchmark without a name or a real_time: {json.dumps(r)[:120]}")
        if r.get("run_type") == "aggregate":
            if r.get("aggregate_name") != "median":
                continue
        elif run_name in has_median:
            continue  # repetitions: their median stands for them
        counters = {k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                    and k not in ("real_time", "cpu_time", "iterations", "repetitions", "repetition_index",
                                  "threads", "family_index", "per_family_instance_index")}
        name = strip_suffixes(run_name)
        args, tags = parse_name(name)
        t = r["real_time"] * UNIT_TO_US.get(r.get("time_unit", "ns"), 1e-3)
        out.append(Bench(name, t, counters, str(r.get("label", "")), args, tags))
    return out


def load(paths: list[pathlib.Path]) -> tuple[list[Bench], dict]:
    """Every benchmark of the files (a folder: its *.json), later files overriding earlier ones."""
    files: list[pathlib.Path] = []
    for p in paths:
        if not p.exists():
            fail(f"{p}: no such file or folder")
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        fail(f"no JSON files in {', '.join(map(str, paths))}")
    files.sort(key=lambda f: f.stat().st_mtime)
    benches: dict[str, Bench] = {}
    context: dict = {}
    for f in files:
        try:
            data = json.loads(f.read_text())
        except OSError as e:
            fail(f"{f}: cannot read it ({e.strerror})")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            fail(f"{f}: not JSON ({e})")
        if not isinstance(data, dict):
            fail(f"{f}: not Google Benchmark JSON (a {type(data).__name__}, not an object)")
        if "benchmarks" not in data:
            print(f"plot_benchmarks: {f}: no 'benchmarks' (not Google Benchmark JSON), skipped", file=sys.stderr)
            continue
        ctx = data.get("context", {})
        context = (ctx if isinstance(ctx, dict) else {}) | {"file": str(f)}
        for b in read_rows(f, data):
            benches[b.name] = b
    return list(benches.values()), context


# ---------------------------------------------------------------------------------------------
# Targets: the verdicts


@dataclass
class Verdict:
    target: Target
    name: str
    measured: float | None   # None: the benchmark ran but lacks the metric

    @property
    def met(self) -> bool:
        return self.measured is not None and self.target.met(self.measured)


def value_of(b: Bench, metric: str) -> float | None:
    return b.time_us if metric == "time_us" else b.counters.get(metric)


def verdicts(benches: list[Bench]) -> tuple[list[Verdict], list[tuple[Target, str]]]:
    """(a verdict for each target's benchmark that ran, the (target, name)s that did not run)."""
    by_name = {b.name: b for b in benches}
    out, absent = [], []
    for t in TARGETS:
        for n in t.names:
            if n in by_name:
                out.append(Verdict(t, n, value_of(by_name[n], t.metric)))
            else:
                absent.append((t, n))
    return out, absent


def verdict_for(name: str, vs: list[Verdict]) -> Verdict | None:
    return next((v for v in vs if v.name == name), None)


def fnum(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def ctx_float(ctx: dict, key: str) -> float | None:
    try:
        return float(ctx[key])
    except (KeyError, TypeError, ValueError):
        return None


def print_table(benches: list[Bench], ctx: dict) -> int:
    """The benchmarks, then the targets; returns the number of targets missed."""
    p = ctx_float(ctx, "d2d_copy_GBps")
    print(f"GPU: {ctx.get('gpu', '?')}  CUDA runtime {ctx.get('cuda_runtime', '?')}  driver API "
          f"{ctx.get('cuda_driver_api', '?')}  commit {ctx.get('day18_commit', '?')}  date {ctx.get('date', '?')}")
    print(f"P (D2D copy, read+write): {fnum(p, 0)} GB/s   pinned H2D {fnum(ctx_float(ctx, 'pinned_h2d_GBps'))} GB/s, "
          f"D2H {fnum(ctx_float(ctx, 'pinned_d2h_GBps'))} GB/s\n")
    vs, absent = verdicts(benches)
    w = max([len(b.name) for b in benches] + [9])
    print("(% of ref: of P; 'pin': of the pinned host copy; 'mm': of a cuBLAS GEMM's TFLOP/s)")
    print(f"{'benchmark':<{w}} {'time us':>10} {'GB/s':>8} {'% of ref':>9}  target")
    for b in sorted(benches, key=lambda b: b.name):
        m = b.ref_metric()
        pct = fnum(b.counters[m]) + {"pct_of_pinned": " pin", "pct_of_gemm": " mm"}.get(m, "") if m else "-"
        v = verdict_for(b.name, vs)
        note = f"{v.target.describe()} {'met' if v.met else 'MISSED'}" if v else ""
        print(f"{b.name:<{w}} {b.time_us:>10.2f} {fnum(b.counters.get('GB/s'), 0):>8} {pct:>9}  {note}")
    print("\nTargets (each judged on the engine's own choice at the target's shape):")
    lw = max(len(t.label) for t in TARGETS)
    print(f"  {'target':<{lw}}  {'goal':<17} {'measured':>9}  {'':<6}  benchmark")
    for v in vs:
        unit = " us" if v.target.metric == "time_us" else "%"
        print(f"  {v.target.label:<{lw}}  {v.target.describe():<17} {fnum(v.measured) + unit:>9}  "
              f"{'met' if v.met else 'MISSED':<6}  {v.name}")
    for t, n in absent:
        print(f"  {t.label:<{lw}}  {t.describe():<17} {'-':>9}  {'absent':<6}  {n} (not in this run)")
    missed = sum(not v.met for v in vs)
    print(f"  {len(vs) - missed} met, {missed} missed, {len(absent)} not measured")
    return missed


# ---------------------------------------------------------------------------------------------
# What each figure shows (names as engine/benchmarks/*.cu registers them; {dt} = each dtype)


@dataclass(frozen=True)
class Row:
    label: str
    name: str                  # may hold {dt}
    dtypes: tuple[str, ...] = ("fp16",)   # the dtypes to look for; the name without {dt}: its own
    alt: bool = False          # what the engine's path replaced or is compared with
    extra: tuple[tuple[str, str], ...] = ()  # (dtype, name) of other dtypes named otherwise


ROOF_ROWS = [
    Row("paged_attention B=64, ctx 4096", "BM_paged_attention/target_b64_ctx4096",
        extra=(("bf16", "BM_paged_attention/bf16/target_b64_ctx4096"),)),
    Row("paged_attention B=256, ctx 8192", "BM_paged_attention/batch:256/ctx:8192/version:0/threads:128",
        extra=(("bf16", "BM_paged_attention/bf16/batch:256/ctx:8192/version:0/threads:128"),)),
    Row("paged_attention B=1, ctx 4096", "BM_paged_attention/target_b1_ctx4096",
        extra=(("bf16", "BM_paged_attention/bf16/target_b1_ctx4096"),)),
    Row("reshape_and_cache, 4096 tokens", "BM_reshape_and_cache/{dt}/tokens:4096/kv_heads:8/head:128", DTYPES),
    Row("  one cudaMemcpy of its bytes", "BM_reshape_and_cache/memcpy_ceiling/{dt}/tokens:4096/kv_heads:8/head:128",
        DTYPES, alt=True),
    Row("copy_blocks, 32 layers x 64 pairs", "BM_copy_blocks/{dt}/layers:32/pairs:64", DTYPES),
    Row("rotary_embedding neox, 4096 tokens",
        "BM_rotary_embedding/neox/{dt}/tokens:4096/heads:32/kv_heads:8/head:128", DTYPES),
    Row("rotary_embedding gptj, 4096 tokens",
        "BM_rotary_embedding/gptj/{dt}/tokens:4096/heads:32/kv_heads:8/head:128", DTYPES),
    Row("rotary_and_cache, 4096 tokens", "BM_rotary_and_cache/{dt}/tokens:4096/heads:32/kv_heads:8/head:128",
        DTYPES),
    Row("  unfused (3 launches)", "BM_rotary_and_cache/unfused/{dt}/tokens:4096/heads:32/kv_heads:8/head:128",
        DTYPES, alt=True),
    Row("rms_norm 16384 x 8192", "BM_rms_norm/tokens:16384/hidden:8192",
        extra=(("bf16", "BM_rms_norm/bf16/tokens:16384/hidden:8192"),)),
    Row("fused_add_rms_norm 16384 x 8192", "BM_fused_add_rms_norm/tokens:16384/hidden:8192",
        extra=(("bf16", "BM_fused_add_rms_norm/bf16/tokens:16384/hidden:8192"),)),
    Row("silu_and_mul 4096 x 14336", "BM_silu_and_mul/tokens:4096/d:14336"),
    Row("embedding 8192 tokens, 128256 x 4096", "BM_embedding/tokens:8192/vocab:128256/hidden:4096"),
    Row("linear M=1, LM head 128256 x 2048: GEMV", "BM_linear/M:1/K:2048/N:128256/algo:2"),
    Row("  cuBLAS", "BM_linear/M:1/K:2048/N:128256/algo:1", alt=True),
    Row("linear M=16, 14336 x 4096 (auto)", "BM_linear/M:16/K:4096/N:14336/algo:0"),
    Row("linear_silu_mul M=1, 4096 x 14336: fused", "BM_linear_silu_mul/M:1/K:14336/N:4096/fused:1"),
    Row("  unfused", "BM_linear_silu_mul/M:1/K:14336/N:4096/fused:0", alt=True),
    Row("softmax 256 x 128256", "BM_softmax", ("fp32",)),
    Row("argmax 256 x 128256", "BM_argmax", ("fp32",)),
    # against the pinned link, not P:
    Row("swap_blocks out (D2H), 256 x 32 KiB", "BM_swap_blocks/out/random/automatic", ("-",)),
    Row("swap_blocks in (H2D), 256 x 32 KiB", "BM_swap_blocks/in/random/automatic", ("-",)),
    Row("  one copy per block (the trap), out", "BM_swap_blocks_naive/out/random", ("-",), alt=True),
    Row("  one copy per block (the trap), in", "BM_swap_blocks_naive/in/random", ("-",), alt=True),
]

SMALL_ROWS = [
    Row("paged_attention B=1, ctx 4096, head 128", "BM_paged_attention/target_b1_ctx4096"),
    Row("paged_attention B=1, ctx 48 (planned 256), head 64",
        "BM_paged_attention/head:64/batch:1/ctx:48/max_ctx:256/version:0"),
    Row("paged_attention B=1, ctx 1000 (planned 1024), head 64",
        "BM_paged_attention/head:64/batch:1/ctx:1000/max_ctx:1024/version:0"),
    Row("paged_attention B=64, ctx 48 (planned 256), head 64",
        "BM_paged_attention/head:64/batch:64/ctx:48/max_ctx:256/version:0"),
    Row("paged_attention B=64, ctx 200 (planned 256), head 64",
        "BM_paged_attention/head:64/batch:64/ctx:200/max_ctx:256/version:0"),
    Row("rotary_and_cache, 1 token, head 64", "BM_rotary_and_cache/fp16/tokens:1/heads:32/kv_heads:8/head:64"),
    Row("  unfused (3 launches)", "BM_rotary_and_cache/unfused/fp16/tokens:1/heads:32/kv_heads:8/head:64",
        alt=True),
    Row("rotary_and_cache, 64 tokens, head 64", "BM_rotary_and_cache/fp16/tokens:64/heads:32/kv_heads:8/head:64"),
    Row("  unfused (3 launches)", "BM_rotary_and_cache/unfused/fp16/tokens:64/heads:32/kv_heads:8/head:64",
        alt=True),
    Row("linear M=1, o_proj 2048 x 2048: GEMV", "BM_linear/M:1/K:2048/N:2048/algo:2"),
    Row("  cuBLAS", "BM_linear/M:1/K:2048/N:2048/algo:1", alt=True),
    Row("linear M=1, qkv 3072 x 2048: GEMV", "BM_linear/M:1/K:2048/N:3072/algo:2"),
    Row("  cuBLAS", "BM_linear/M:1/K:2048/N:3072/algo:1", alt=True),
    Row("linear M=1, gate_up 16384 x 2048: GEMV", "BM_linear/M:1/K:2048/N:16384/algo:2"),
    Row("  cuBLAS", "BM_linear/M:1/K:2048/N:16384/algo:1", alt=True),
    Row("linear_silu_mul M=1, down 2048 x 8192: fused", "BM_linear_silu_mul/M:1/K:8192/N:2048/fused:1"),
    Row("  silu_and_mul + linear", "BM_linear_silu_mul/M:1/K:8192/N:2048/fused:0", alt=True),
    Row("rms_norm 256 x 8192", "BM_rms_norm/tokens:256/hidden:8192"),
    Row("fused_add_rms_norm 256 x 8192", "BM_fused_add_rms_norm/tokens:256/hidden:8192"),
    Row("silu_and_mul 64 x 14336", "BM_silu_and_mul/tokens:64/d:14336"),
    Row("embedding 64 tokens", "BM_embedding/tokens:64/vocab:128256/hidden:4096"),
    Row("sample B=256: greedy", "BM_sample/mix:0", ("fp32",)),
    Row("sample B=256: top-k 50 + top-p 0.9", "BM_sample/mix:1", ("fp32",)),
    Row("sample B=256: top-p 0.95", "BM_sample/mix:2", ("fp32",)),
    Row("sample B=256: plain (T = 1)", "BM_sample/mix:3", ("fp32",)),
]

MAX_ROWS = 30  # rows per figure; more are counted in the footnote

PREFILL_RE = re.compile(r"BM_prefill_attention/dtype:(\w+)/head:(\d+)/seqs:(\d+)/len:(\d+)/kernel:(prefill|decode)")
VERSIONS = {"0": "auto (the engine's choice)", "1": "v1", "2": "v2", "3": "readable"}
SWEEP_RE = re.compile(r"BM_paged_attention/batch:(\d+)/ctx:(\d+)/version:(\d+)/threads:128")
THREADS_RE = re.compile(r"BM_paged_attention/batch:(\d+)/ctx:(\d+)/version:1/threads:(\d+)")
PARTITION_RE = re.compile(r"BM_paged_attention/batch:(\d+)/ctx:(\d+)/version:2/partition:(\d+)")


@dataclass
class Entry:
    row: Row
    dtype: str
    bench: Bench


def select_rows(benches: list[Bench], rows: list[Row]) -> tuple[list[tuple[Row, list[Entry]]], int]:
    """Each row with the benchmarks found for it (rows with none are dropped); beyond MAX_ROWS
    rows, the number left out."""
    by_name = {b.name: b for b in benches}
    found = []
    for r in rows:
        es = [Entry(r, dt, by_name[n]) for dt in r.dtypes if (n := r.name.replace("{dt}", dt)) in by_name]
        es += [Entry(r, dt, by_name[n]) for dt, n in r.extra if n in by_name]
        if es:
            found.append((r, es))
    return found[:MAX_ROWS], max(0, len(found) - MAX_ROWS)


def shown_names(found: list[tuple[Row, list[Entry]]]) -> set[str]:
    return {e.bench.name for _, es in found for e in es}


def sweep_grid(benches: list[Bench]) -> dict[int, dict[str, list[tuple[int, Bench]]]]:
    """batch -> version label -> [(context, bench)] over the contexts every version of that
    batch was measured at (v1's extra threads-sweep points would otherwise stand alone)."""
    raw: dict[int, dict[str, dict[int, Bench]]] = {}
    for b in benches:
        m = SWEEP_RE.fullmatch(b.name)
        if m:
            batch, ctx, v = int(m[1]), int(m[2]), m[3]
            raw.setdefault(batch, {}).setdefault(VERSIONS.get(v, f"version {v}"), {})[ctx] = b
    grid = {}
    for batch, by_v in sorted(raw.items()):
        common = set.intersection(*(set(d) for d in by_v.values()))
        if len(common) < 2:
            common = set().union(*(set(d) for d in by_v.values()))
        grid[batch] = {v: sorted((c, d[c]) for c in common if c in d) for v, d in by_v.items()}
    return grid


def knob_series(benches: list[Bench], pattern: re.Pattern) -> dict[str, list[tuple[int, Bench]]]:
    """'B=.., ctx ..' -> [(knob value, bench)] for a sweep over one knob (threads, partition)."""
    out: dict[str, list[tuple[int, Bench]]] = {}
    for b in benches:
        m = pattern.fullmatch(b.name)
        if m:
            out.setdefault(f"B={m[1]}, ctx {m[2]}", []).append((int(m[3]), b))
    # a shape with one value of the knob is no sweep of it (the batch x context grid runs v1 at
    # threads 128 only)
    out = {k: v for k, v in out.items() if len(v) >= 2}
    return {k: sorted(v, key=lambda p: p[0]) for k, v in sorted(out.items(), key=lambda kv: (
        int(re.search(r"B=(\d+)", kv[0])[1]), int(re.search(r"ctx (\d+)", kv[0])[1])))}


def prefill_shapes(benches: list[Bench]) -> list[tuple[str, dict[str, Bench]]]:
    """'fp16, head 64, 4 x 2048' -> {'prefill': bench, 'decode': bench}, in registration order."""
    out: dict[str, dict[str, Bench]] = {}
    for b in benches:
        m = PREFILL_RE.fullmatch(b.name)
        if m:
            out.setdefault(f"{m[1]}, head {m[2]}, {m[3]} x {m[4]} tokens", {})[m[5]] = b
    return list(out.items())


# ---------------------------------------------------------------------------------------------
# Drawing (matplotlib only from here on)

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 5.5, 110
UMASK = os.umask(0)
os.umask(UMASK)
MAX_HEIGHT_IN = 12.5  # 1375 px at 110 dpi
DTYPE_STYLE = {"fp16": ("o", "#1565c0"), "bf16": ("s", "#ef6c00"), "fp32": ("^", "#6a1b9a"),
               "-": ("D", "#00838f")}
ENGINE, ALT, MET, MISSED = "#1565c0", "#b0bec5", "#2e7d32", "#c62828"


def provenance(ctx: dict) -> str:
    p = ctx_float(ctx, "d2d_copy_GBps")
    parts = [str(ctx.get("gpu", "GPU ?")), f"commit {ctx.get('day18_commit', '?')}",
             str(ctx.get("date", "date ?"))[:10]]
    if p:
        parts.append(f"P = {p:.0f} GB/s (D2D copy, read + write)")
    return ", ".join(parts)


def rows_height(n: int) -> float:
    return min(MAX_HEIGHT_IN, max(HEIGHT_IN, 1.9 + 0.2 * n))


def save(fig, out: pathlib.Path, name: str) -> pathlib.Path:
    """Writes out/name through a temporary file in out, so a reader never sees half a PNG."""
    path = out / name
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes it 0600; give it an ordinary file's mode
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def heading(fig, question: str, ctx: dict, foot: str = "") -> None:
    fig.suptitle(question, fontsize=12, x=0.01, ha="left", y=0.985)
    fig.text(0.01, 0.935, provenance(ctx), fontsize=8, color="#455a64", ha="left")
    if foot:
        fig.text(0.01, 0.01, foot, fontsize=7.5, color="#455a64", ha="left", va="bottom")


def left_margin(labels: list[str]) -> float:
    return min(0.45, 0.03 + 0.0068 * max(len(s) for s in labels))


def footnote(left_out: int, total: int, shown: int, extra: str) -> str:
    bits = [extra] if extra else []
    rest = total - shown
    if rest > 0:
        bits.append(f"{rest} other benchmarks (sweeps, other shapes) are not drawn here: see the printed table")
    if left_out:
        bits.append(f"{left_out} more rows did not fit")
    return ". ".join(bits)


def plot_roof(plt, benches: list[Bench], ctx: dict, out: pathlib.Path) -> pathlib.Path | None:
    found, left_out = select_rows(benches, ROOF_ROWS)
    found = [(r, [e for e in es if e.bench.ref_metric()]) for r, es in found]
    found = [(r, es) for r, es in found if es]
    if not found:
        return None
    vs, _ = verdicts(benches)
    labels = [r.label for r, _ in found]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, rows_height(len(found))))
    ys = list(range(len(found)))
    xmax = 110.0
    first_pinned = None
    for y, (r, es) in zip(ys, found):
        if first_pinned is None and es[0].bench.ref_metric() == "pct_of_pinned":
            first_pinned = y
        ax.axhline(y, color="#eceff1", lw=0.8, zorder=0)
        for e in es:
            m = e.bench.ref_metric()
            x = e.bench.counters[m]
            xmax = max(xmax, x * 1.08)
            marker, col = DTYPE_STYLE.get(e.dtype, ("o", "grey"))
            ax.scatter([x], [y], marker=marker, s=36, color=ALT if r.alt else col,
                       edgecolor=col, linewidth=1.0, zorder=3)
            v = verdict_for(e.bench.name, vs)
            if v and v.target.metric == m:
                ax.plot([v.target.value] * 2, [y - 0.38, y + 0.38], color="black", lw=2, zorder=2)
                ax.text(1.005, y, f"{v.target.describe()}: {'met' if v.met else 'MISSED'} ({x:.0f}%)",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
                        color=MET if v.met else MISSED, fontweight="normal" if v.met else "bold")
            elif v and v.target.metric == "time_us":
                ax.text(1.005, y, f"target {v.target.describe()}: see small_kernels.png",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="#455a64")
    if first_pinned is not None and first_pinned > 0:
        ax.axhline(first_pinned - 0.5, color="#455a64", lw=0.8, ls="--")
        ax.text(2, first_pinned - 0.45, "below: % of the pinned host copy (PCIe), not of P",
                fontsize=7, color="#455a64", va="top")
    ax.axvline(100, color="grey", ls=":", lw=1)
    ax.set_yticks(ys, labels, fontsize=8)
    for tick, (r, _) in zip(ax.get_yticklabels(), found):
        if r.alt:
            tick.set_color("#607d8b")
    ax.set_ylim(len(found) - 0.5, -0.5)
    ax.set_xlim(0, xmax)
    ax.set_xlabel("% of P, the D2D copy bandwidth measured in the same run (swap_blocks: % of pinned copy)")
    handles = [plt.Line2D([], [], ls="", marker=DTYPE_STYLE[d][0], color=DTYPE_STYLE[d][1], label=d)
               for d in DTYPES if any(e.dtype == d for _, es in found for e in es)]
    handles.append(plt.Line2D([], [], ls="", marker="o", markerfacecolor=ALT, markeredgecolor="#607d8b",
                              label="grey label: what the engine's op replaced / is compared with"))
    handles.append(plt.Line2D([], [], color="black", lw=2, label="target"))
    ax.legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(handles),
              frameon=False, borderaxespad=0.2)
    foot = footnote(left_out, len(benches), len(shown_names(found)),
                    "Headline shapes (the largest of each op); fp16 where the name has no dtype")
    heading(fig, "How close does each kernel get to the memory roof?", ctx, foot)
    fig.subplots_adjust(left=left_margin(labels), right=0.76, top=0.86, bottom=0.1)
    path = save(fig, out, "memory_roof.png")
    plt.close(fig)
    return path


def log2_axis(ax, xs: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.minorticks_off()


def plot_scaling(plt, benches: list[Bench], ctx: dict, out: pathlib.Path) -> pathlib.Path | None:
    grid = sweep_grid(benches)
    if not grid:
        return None
    by_name = {b.name: b for b in benches}
    vs, _ = verdicts(benches)
    batches = list(grid)
    contexts = sorted({c for by_v in grid.values() for pts in by_v.values() for c, _ in pts}
                      | ({4096} if any(f"BM_paged_attention/target_b{b}_ctx4096" in by_name for b in batches) else set()))
    fig, axes = plt.subplots(2, len(batches), figsize=(WIDTH_IN, HEIGHT_IN + 0.6), sharex=True,
                             sharey="row", squeeze=False)
    colours = {"auto (the engine's choice)": "#212121", "v1": "#1565c0", "v2": "#ef6c00", "readable": "#2e7d32"}
    styles = {"auto (the engine's choice)": ("o", "-"), "v1": ("s", "--"), "v2": ("^", "--"), "readable": ("D", ":")}
    shown = 0
    for j, batch in enumerate(batches):
        top, bot = axes[0][j], axes[1][j]
        for v, pts in grid[batch].items():
            if not pts:
                continue
            xs = [c for c, _ in pts]
            mk, ls = styles.get(v, ("o", "-"))
            auto = v.startswith("auto")
            kw = dict(marker=mk, ls=ls, color=colours.get(v, "grey"), lw=1.8 if auto else 1.1,
                      ms=4.5, label=v, zorder=3 if auto else 2)
            top.plot(xs, [b.time_us for _, b in pts], **kw)
            bot.plot(xs, [b.counters.get("pct_of_P", float("nan")) for _, b in pts], **kw)
            shown += len(pts)
        # the target shapes, run through the automatic choice
        for name in (f"BM_paged_attention/target_b{batch}_ctx4096",):
            b = by_name.get(name)
            if b is None:
                continue
            shown += 1
            v = verdict_for(name, vs)
            col = MISSED if v and not v.met else MET
            top.plot([4096], [b.time_us], marker="*", ms=11, color=col, ls="", zorder=4)
            bot.plot([4096], [b.counters.get("pct_of_P", float("nan"))], marker="*", ms=11, color=col,
                     ls="", zorder=4)
            if v and v.target.metric == "pct_of_P":
                bot.axhline(v.target.value, color="black", lw=1, ls="-.")
                bot.text(512, v.target.value + 2, f"target {v.target.describe()}", fontsize=7)
            elif v:
                top.axhline(v.target.value, color="black", lw=1, ls="-.")
                top.text(512, v.target.value * 1.15, f"target {v.target.describe()}", fontsize=7)
        top.set_title(f"batch {batch}", fontsize=10)
        top.set_yscale("log")
        log2_axis(bot, contexts)
        bot.set_xlabel("context (tokens, log2)")
        for a in (top, bot):
            a.grid(True, which="major", color="#eceff1")
    axes[0][0].set_ylabel("time per call (us, log)")
    axes[1][0].set_ylabel("% of P")
    axes[1][0].set_ylim(0, 105)
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="*", ms=10, ls="", color=MISSED))
    labels.append("target shape (auto), red: target missed")
    fig.legend(handles, labels, loc="upper left", fontsize=7.5, ncol=len(labels), frameon=False,
               bbox_to_anchor=(0.07, 0.915))
    foot = footnote(0, len(benches), shown,
                    "fp16, 32 query heads / 8 KV heads, head 128, 16-token blocks at shuffled ids, threads 128")
    heading(fig, "How does PagedAttention scale with batch and context?", ctx, foot)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.82, bottom=0.13, wspace=0.08, hspace=0.12)
    path = save(fig, out, "paged_attention_scaling.png")
    plt.close(fig)
    return path


def plot_knobs(plt, benches: list[Bench], ctx: dict, out: pathlib.Path) -> pathlib.Path | None:
    panels = [("v1: threads per block", "threads per block (log2)", knob_series(benches, THREADS_RE)),
              ("v2: partition size", "partition size (tokens, log2)", knob_series(benches, PARTITION_RE))]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH_IN, HEIGHT_IN), sharey=True, squeeze=False)
    shown = 0
    for ax, (title, xlabel, series) in zip(axes[0], panels):
        xs_all: set[int] = set()
        for i, (shape, pts) in enumerate(series.items()):
            xs = [x for x, _ in pts]
            xs_all |= set(xs)
            ax.plot(xs, [b.counters.get("pct_of_P", float("nan")) for _, b in pts], marker="os^Dv"[i % 5],
                    label=shape, lw=1.3, ms=5)
            shown += len(pts)
        log2_axis(ax, sorted(xs_all))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(True, color="#eceff1")
        ax.legend(fontsize=8, title="shape", title_fontsize=8)
    axes[0][0].set_ylabel("% of P")
    axes[0][0].set_ylim(0, 105)
    foot = footnote(0, len(benches), shown,
                    "fp16, 32 query heads / 8 KV heads, head 128, 16-token blocks; v1 at 128 threads unless swept")
    heading(fig, "What do v1's block size and v2's partition size change?", ctx, foot)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.84, bottom=0.14, wspace=0.06)
    path = save(fig, out, "paged_attention_knobs.png")
    plt.close(fig)
    return path


def plot_small(plt, benches: list[Bench], ctx: dict, out: pathlib.Path) -> pathlib.Path | None:
    found, left_out = select_rows(benches, SMALL_ROWS)
    if not found:
        return None
    vs, _ = verdicts(benches)
    labels = [r.label for r, _ in found]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, rows_height(len(found))))
    ys = list(range(len(found)))
    times = [es[0].bench.time_us for _, es in found]
    ax.barh(ys, times, color=[ALT if r.alt else ENGINE for r, _ in found], height=0.7)
    for y, t in zip(ys, times):
        ax.text(t * 1.04, y, f"{t:.1f}", va="center", fontsize=7)
    for y, (r, es) in zip(ys, found):
        v = verdict_for(es[0].bench.name, vs)
        if v and v.target.metric == "time_us":
            ax.plot([v.target.value] * 2, [y - 0.42, y + 0.42], color="black", lw=2)
            ax.text(1.005, y, f"{v.target.describe()}: {'met' if v.met else 'MISSED'}",
                    transform=ax.get_yaxis_transform(), va="center", fontsize=7.5,
                    color=MET if v.met else MISSED, fontweight="normal" if v.met else "bold")
    ax.set_xscale("log")
    ax.set_xlim(min(times) * 0.5, max(times) * 2.5)
    ax.set_yticks(ys, labels, fontsize=8)
    for tick, (r, _) in zip(ax.get_yticklabels(), found):
        if r.alt:
            tick.set_color("#607d8b")
    ax.set_ylim(len(found) - 0.5, -0.5)
    ax.set_xlabel("time per call (us, log scale; CUDA events, L2 flushed, launch included)")
    ax.grid(True, axis="x", color="#eceff1")
    ax.set_axisbelow(True)
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=ENGINE, label="the engine's path"),
                       plt.Rectangle((0, 0), 1, 1, color=ALT, label="what it replaced / is compared with"),
                       plt.Line2D([], [], color="black", lw=2, label="target")],
              fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False, borderaxespad=0.2)
    foot = footnote(left_out, len(benches), len(shown_names(found)),
                    "fp16 unless named; decode shapes of llama-1b (head 64) and Llama-3-8B (head 128)")
    heading(fig, "How long do the small per-token kernels take?", ctx, foot)
    fig.subplots_adjust(left=left_margin(labels), right=0.84, top=0.86, bottom=0.1)
    path = save(fig, out, "small_kernels.png")
    plt.close(fig)
    return path


def plot_prefill(plt, benches: list[Bench], ctx: dict, out: pathlib.Path) -> pathlib.Path | None:
    shapes = prefill_shapes(benches)
    if not shapes:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
    ys = list(range(len(shapes)))
    gemm = {}
    for y, (shape, kb) in zip(ys, shapes):
        for dy, kind, col in ((-0.2, "prefill", ENGINE), (0.2, "decode", ALT)):
            b = kb.get(kind)
            if b is None or "TFLOP/s" not in b.counters:
                continue
            v = b.counters["TFLOP/s"]
            ax.barh(y + dy, v, height=0.38, color=col)
            pct = b.counters.get("pct_of_gemm")
            ax.text(v * 1.02, y + dy, f"{v:.0f}" + (f" ({pct:.0f}% of GEMM)" if pct is not None else ""),
                    va="center", fontsize=7)
            if "gemm_TFLOP/s" in b.counters:
                gemm[shape.split(",")[0]] = b.counters["gemm_TFLOP/s"]
    for dt, g in gemm.items():
        ax.axvline(g, color="black", ls="--", lw=1)
        ax.text(g, -0.6, f"cuBLAS GEMM 8192^3, {dt}: {g:.0f} ", fontsize=7, va="bottom", ha="right")
    tops = [b.counters.get("TFLOP/s", 0) for _, kb in shapes for b in kb.values()] + list(gemm.values())
    ax.set_xlim(0, max(tops + [1]) * 1.2)
    ax.set_yticks(ys, [s for s, _ in shapes], fontsize=8)
    ax.set_ylim(len(shapes) - 0.5, -0.9)
    ax.set_xlabel("TFLOP/s (causal FLOPs: 4 H D L (L + 1) / 2 per prompt)")
    ax.grid(True, axis="x", color="#eceff1")
    ax.set_axisbelow(True)
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=ENGINE, label="prefill kernel (tensor cores)"),
                       plt.Rectangle((0, 0), 1, 1, color=ALT, label="the decode kernels (the old path)")],
              fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, borderaxespad=0.2)
    shown = sum(len(kb) for _, kb in shapes)
    foot = footnote(0, len(benches), shown, "One layer's attention of one prefill step; llama-1b heads (32 / 8)")
    heading(fig, "How fast is prefill attention on tensor cores?", ctx, foot)
    fig.subplots_adjust(left=0.25, right=0.97, top=0.84, bottom=0.12)
    path = save(fig, out, "prefill_attention.png")
    plt.close(fig)
    return path


FIGURES = [plot_roof, plot_scaling, plot_knobs, plot_small, plot_prefill]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", type=pathlib.Path,
                    help="Google Benchmark JSON files, or folders of them (e.g. reference/results/h100)")
    ap.add_argument("--out", type=pathlib.Path,
                    help="the folder the PNGs go into, created if needed (default: plots/ beside the "
                         "first input: <folder>/plots for a folder, <file's folder>/plots for a file)")
    ap.add_argument("--table", action="store_true", help="print the table only (no matplotlib needed)")
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
            fail("matplotlib is missing: run scripts/lab setup and use .venv/bin/python (or --table)")
        first = args.inputs[0]
        out = args.out or ((first if first.is_dir() else first.parent) / "plots")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            fail(f"--out {out}: cannot create the folder ({e.strerror})")
        made = [p for fig in FIGURES if (p := fig(plt, benches, ctx, out))]
        print("\nwrote:" if made else "\nno figure: none of their benchmarks is in the input")
        for p in made:
            print(f"  {p}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
