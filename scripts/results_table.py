#!/usr/bin/env python3
"""The recorded results of several GPUs side by side, as markdown: issue 12's table, the course's
targets, the decode step's targets, the headline benchmarks and the transformers comparison.

Reads, for each GPU folder under --results (default reference/results/h100 and h200):
  benchmarks.json              day18_bench (Google Benchmark JSON; % of P is of the P measured in
                               the same run: the context's d2d_copy_GBps)
  decode_sweep.json            scripts/bench_decode.py (the floor is weight bytes / the sweep's P)
  transformers_throughput.json scripts/check_against_transformers.py --throughput
Every number printed comes from those files: a GPU whose file is absent gets "pending" in its
column, a benchmark its run did not have gets "not in this run". The targets are constants here
(issue 12's, and the course's as scripts/plot_benchmarks.py and scripts/bench_decode.py define
them).

Blocks (each one markdown section of docs/benchmarks.md, between the markers
`<!-- BEGIN results_table.py NAME -->` and `<!-- END results_table.py NAME -->`):
  sources         which file, GPU, commit, date and P each column is
  issue12         issue 12's table: paged decode, RMSNorm (fp16 and bf16), decode steps vs floor
  targets         the course's kernel targets (plot_benchmarks.py's), met or missed per GPU
  decode_targets  the decode step's targets (bench_decode.py's), per GPU
  headline        time and share of the reference bandwidth of the headline benchmarks
  transformers    decode tokens/s of the engine and of transformers' generate, per GPU

Examples:
  python3 scripts/results_table.py                                # every block, to stdout
  python3 scripts/results_table.py --block issue12 --gpus h100 h200
  python3 scripts/results_table.py --all                          # every benchmark, side by side
  python3 scripts/results_table.py --write-doc docs/benchmarks.md # regenerate the marked blocks
  python3 scripts/results_table.py --check-doc docs/benchmarks.md # exit 1 if they are stale

Only the Python standard library is needed.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import pathlib
import re
import sys
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = pathlib.Path(__file__).resolve().parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)
    spec.loader.exec_module(mod)
    return mod


pb = _module("plot_benchmarks")   # the benchmark JSON reader, the course's targets, the rows
bd = _module("bench_decode")      # the decode sweep's targets (evaluate)


def fail(msg: str) -> None:
    sys.exit(f"results_table: {msg}")


# ---------------------------------------------------------------------------------------------
# Issue 12's targets (docs/benchmarks.md, "The H200: issue 12's numbers and its targets"): fp16,
# head 128, 32 query / 8 KV heads, 16-token blocks; bf16 at the same shares of P as fp16.


@dataclass(frozen=True)
class KernelTarget:
    label: str
    names: dict[str, str]      # dtype -> benchmark name
    metric: str                # "pct_of_P" or "time_us"
    goal: str                  # ">=" or "<="
    value: float


@dataclass(frozen=True)
class StepTarget:
    label: str
    preset: str
    batch: int
    max_ratio: float           # decode step (CUDA graphs) <= max_ratio x the weight-read floor
    tokens_per_s: bool = False


ISSUE12_KERNELS = [
    KernelTarget("paged decode B=64, context 4096",
                 {"fp16": "BM_paged_attention/target_b64_ctx4096",
                  "bf16": "BM_paged_attention/bf16/target_b64_ctx4096"}, "pct_of_P", ">=", 90),
    KernelTarget("paged decode B=1, context 4096",
                 {"fp16": "BM_paged_attention/target_b1_ctx4096",
                  "bf16": "BM_paged_attention/bf16/target_b1_ctx4096"}, "time_us", "<=", 15),
    KernelTarget("paged decode B=256, context 8192",
                 {"fp16": "BM_paged_attention/batch:256/ctx:8192/version:0/threads:128",
                  "bf16": "BM_paged_attention/bf16/batch:256/ctx:8192/version:0/threads:128"},
                 "pct_of_P", ">=", 90),
    KernelTarget("RMSNorm 16384 x 8192",
                 {"fp16": "BM_rms_norm/tokens:16384/hidden:8192",
                  "bf16": "BM_rms_norm/bf16/tokens:16384/hidden:8192"}, "pct_of_P", ">=", 90),
    KernelTarget("fused add + RMSNorm 16384 x 8192",
                 {"fp16": "BM_fused_add_rms_norm/tokens:16384/hidden:8192",
                  "bf16": "BM_fused_add_rms_norm/bf16/tokens:16384/hidden:8192"},
                 "pct_of_P", ">=", 90),
]
ISSUE12_STEPS = [
    StepTarget("decode step llama-1b B=1, CUDA graphs", "llama-1b", 1, 1.25),
    StepTarget("decode step llama-8b B=1, CUDA graphs", "llama-8b", 1, 1.08),
    StepTarget("decode step llama-1b B=64, CUDA graphs", "llama-1b", 64, 1.6, tokens_per_s=True),
]
DTYPES = ("fp16", "bf16")


# ---------------------------------------------------------------------------------------------
# One GPU's recorded results


@dataclass
class Gpu:
    slug: str
    folder: pathlib.Path
    benches: dict | None = None          # name -> plot_benchmarks.Bench; None: no benchmarks.json
    ctx: dict = field(default_factory=dict)
    sweep: dict | None = None
    tf: dict | None = None

    @property
    def label(self) -> str:
        return self.slug.upper()


def read_json(f: pathlib.Path):
    try:
        return json.loads(f.read_text())
    except OSError as e:
        fail(f"{f}: cannot read it ({e.strerror})")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(f"{f}: not JSON ({e})")


def load_gpu(results: pathlib.Path, slug: str) -> Gpu:
    g = Gpu(slug, results / slug)
    bj = g.folder / "benchmarks.json"
    if bj.exists():
        data = read_json(bj)
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
            fail(f"{bj}: not Google Benchmark JSON (no 'benchmarks' list)")
        g.benches = {b.name: b for b in pb.read_rows(bj, data)}
        g.ctx = data.get("context", {}) if isinstance(data.get("context"), dict) else {}
    sj = g.folder / "decode_sweep.json"
    if sj.exists():
        doc = read_json(sj)
        missing = [k for k in ("provenance", "points", "floor_ms") if not isinstance(doc, dict) or k not in doc]
        if missing:
            fail(f"{sj}: not a decode-sweep JSON of scripts/bench_decode.py (missing {', '.join(missing)})")
        g.sweep = doc
    tj = g.folder / "transformers_throughput.json"
    if tj.exists():
        doc = read_json(tj)
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            fail(f"{tj}: not a transformers_throughput.json of check_against_transformers.py (no 'rows')")
        g.tf = doc
    return g


# ---------------------------------------------------------------------------------------------
# Cells


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def meets(goal: str, value: float, measured: float) -> bool:
    return measured >= value if goal == ">=" else measured <= value


def fmt_us(us: float) -> str:
    return f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"


def fmt_pct(p: float) -> str:
    return f"{p:.1f}%"


def digits_vs(measured: float, target: float, start: int = 1) -> int:
    """`start` decimals, or as many as it takes (up to start + 2) for the number not to print as
    the target when it is not the target (15.01 us against <= 15 us is not "15.0 us: missed")."""
    for d in range(start, start + 2):
        if measured == target or round(measured, d) != round(target, d):
            return d
    return start + 2


def pending(what: str) -> str:
    return f"pending (no {what})"


def kernel_cell(g: Gpu, t: KernelTarget, dtype: str) -> str:
    if g.benches is None:
        return pending("benchmarks.json")
    b = g.benches.get(t.names[dtype])
    if b is None:
        return "not in this run"
    pct = b.counters.get("pct_of_P")
    if t.metric == "time_us":
        ok = meets(t.goal, t.value, b.time_us)
        extra = f" ({fmt_pct(pct)} of P)" if pct is not None else ""
        return f"{b.time_us:.{digits_vs(b.time_us, t.value)}f} µs{extra}: {verdict(ok)}"
    if pct is None:
        return f"{fmt_us(b.time_us)}, no pct_of_P"
    return (f"{pct:.{digits_vs(pct, t.value)}f}% of P ({fmt_us(b.time_us)}): "
            f"{verdict(meets(t.goal, t.value, pct))}")


def sweep_point(g: Gpu, preset: str, batch: int, graphs: bool = True) -> dict | None:
    for p in g.sweep.get("points", []):
        if (p.get("preset"), p.get("batch"), p.get("cuda_graphs")) == (preset, batch, graphs) \
                and "error" not in p and p.get("decode_step_ms"):
            return p
    return None


def step_cell(g: Gpu, t: StepTarget) -> str:
    if g.sweep is None:
        return pending("decode_sweep.json")
    p = sweep_point(g, t.preset, t.batch)
    floor = g.sweep.get("floor_ms", {}).get(t.preset)
    if p is None or not floor:
        return "not in this run"
    ratio = p["decode_step_ms"] / floor
    rd = digits_vs(ratio, t.max_ratio, 2)
    tps = f", {p['decode_tokens_per_s'] / 1000:.1f}k tok/s" if t.tokens_per_s else ""
    return (f"{p['decode_step_ms']:.3f} ms = {ratio:.{rd}f}x the {floor:.3f} ms floor{tps}: "
            f"{verdict(ratio <= t.max_ratio)}")


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


# ---------------------------------------------------------------------------------------------
# Blocks


def block_sources(gpus: list[Gpu]) -> list[str]:
    out = []
    for g in gpus:
        parts = []
        if g.benches is not None:
            c = g.ctx
            p = pb.ctx_float(c, "d2d_copy_GBps")
            parts.append(f"`benchmarks.json`: {c.get('gpu', '?')}, commit {c.get('day18_commit', '?')}, "
                         f"{str(c.get('date', '?'))[:10]}, P = {p:.0f} GB/s" if p else
                         f"`benchmarks.json`: {c.get('gpu', '?')}, commit {c.get('day18_commit', '?')}")
        else:
            parts.append("`benchmarks.json` pending")
        if g.sweep is not None:
            pv = g.sweep.get("provenance", {})
            parts.append(f"`decode_sweep.json`: commit {pv.get('engine_commit', '?')}, "
                         f"{str(g.sweep.get('date', '?'))[:10]}, P = {pv.get('P_GBps', float('nan')):.0f} GB/s")
        else:
            parts.append("`decode_sweep.json` pending")
        if g.tf is not None:
            v = g.tf.get("versions", {})
            parts.append(f"`transformers_throughput.json`: commit {v.get('engine_commit', '?')}, "
                         f"{str(g.tf.get('date', '?'))[:10]}")
        else:
            parts.append("`transformers_throughput.json` pending")
        out.append(f"- **{g.label}** (`{g.folder.relative_to(ROOT) if g.folder.is_relative_to(ROOT) else g.folder}/`): "
                   + "; ".join(parts) + ".")
    return out


def block_issue12(gpus: list[Gpu]) -> list[str]:
    rows = []
    for dtype in DTYPES:
        for t in ISSUE12_KERNELS:
            goal = f"{t.goal} {t.value:g}% of P" if t.metric == "pct_of_P" else f"{t.goal} {t.value:g} µs"
            rows.append([f"{t.label}, {dtype}", goal] + [kernel_cell(g, t, dtype) for g in gpus])
    for t in ISSUE12_STEPS:
        rows.append([f"{t.label}, fp16", f"<= {t.max_ratio:g}x the floor"] + [step_cell(g, t) for g in gpus])
    return table(["issue 12 row", "target"] + [g.label for g in gpus], rows)


def block_targets(gpus: list[Gpu]) -> list[str]:
    per_gpu = {}
    for g in gpus:
        if g.benches is not None:
            vs, _ = pb.verdicts(list(g.benches.values()))
            per_gpu[g.slug] = {v.name: v for v in vs}
    rows = []
    for t in pb.TARGETS:
        for n in t.names:
            cells = []
            for g in gpus:
                if g.benches is None:
                    cells.append(pending("benchmarks.json"))
                    continue
                v = per_gpu[g.slug].get(n)
                if v is None:
                    cells.append("not in this run")
                elif v.measured is None:
                    cells.append(f"no {t.metric}")
                else:
                    b = g.benches[n]
                    d = digits_vs(v.measured, t.value)
                    if t.metric == "time_us":
                        m = fmt_us(v.measured) if v.measured >= 100 else f"{v.measured:.{d}f} µs"
                    else:
                        m = f"{v.measured:.{d}f}% ({fmt_us(b.time_us)})"
                    cells.append(f"{m}: {verdict(v.met)}")
            rows.append([t.label, f"`{n}`", t.describe().replace(" us", " µs")] + cells)
    out = table(["target", "benchmark", "goal"] + [g.label for g in gpus], rows)
    counts = []
    for g in gpus:
        if g.benches is None:
            counts.append(f"{g.label}: pending")
            continue
        vs = list(per_gpu[g.slug].values())
        missed = sum(not v.met for v in vs)
        counts.append(f"{g.label}: {len(vs) - missed} of {len(vs)} verdicts met, {missed} missed")
    return out + ["", "; ".join(counts) + "."]


def block_decode_targets(gpus: list[Gpu]) -> list[str]:
    order: list[str] = []
    by_gpu: dict[str, dict[str, dict]] = {}
    for g in gpus:
        if g.sweep is None:
            continue
        ts = bd.evaluate(g.sweep) if g.sweep.get("points") and g.sweep.get("floor_ms") else []
        by_gpu[g.slug] = {t["target"]: t for t in ts}
        order += [t["target"] for t in ts if t["target"] not in order]
    rows = []
    for name in order:
        cells = []
        for g in gpus:
            if g.sweep is None:
                cells.append(pending("decode_sweep.json"))
            elif name not in by_gpu[g.slug]:
                cells.append("not in this run")
            else:
                t = by_gpu[g.slug][name]
                cells.append(f"{t['measured']}: {verdict(t['met'])}")
        rows.append([name] + cells)
    if not rows:
        return [f"(no decode_sweep.json in {', '.join(g.label for g in gpus)}: pending)"]
    return table(["target (scripts/bench_decode.py)"] + [g.label for g in gpus], rows)


# What an alternative row ("cuBLAS", "unfused") is beside, where the row above does not say it.
ALT_PARENT = {"BM_swap_blocks_naive/": "swap_blocks, 256 x 32 KiB"}


def headline_rows() -> list[tuple[str, str, str]]:
    """(label, dtype, benchmark name) of plot_benchmarks' headline rows, each name once; an
    alternative row (what the engine's path replaced) is labelled with the row it is beside."""
    out, seen, parent = [], set(), ""
    for r in pb.ROOF_ROWS + pb.SMALL_ROWS:
        label = r.label.strip()
        if r.alt:
            base = next((v for k, v in ALT_PARENT.items() if r.name.startswith(k)), parent.split(": ")[0])
            label = f"{base}: {label}"
        else:
            parent = label
        pairs = [(dt, r.name.replace("{dt}", dt)) for dt in r.dtypes] + list(r.extra)
        for dt, n in pairs:
            if n not in seen:
                seen.add(n)
                out.append((label, dt, n))
    return out + PREFILL_HEADLINE


# Prefill attention (compute-bound: its share is of a cuBLAS GEMM's TFLOP/s in the same run).
PREFILL_HEADLINE = [
    (f"prefill attention {s} x {n}, head {h}: {'tensor-core kernel' if k == 'prefill' else 'decode kernels'}",
     dt, f"BM_prefill_attention/dtype:{ {'fp16': 'float16', 'bf16': 'bfloat16'}[dt]}/head:{h}/seqs:{s}/len:{n}"
         f"/kernel:{k}")
    for dt, h, s, n, k in [("fp16", 64, 4, 2048, "prefill"), ("fp16", 64, 4, 2048, "decode"),
                           ("fp16", 64, 64, 128, "prefill"), ("bf16", 128, 4, 2048, "prefill")]
]


def bench_cells(g: Gpu, name: str) -> list[str]:
    if g.benches is None:
        return ["pending", ""]
    b = g.benches.get(name)
    if b is None:
        return ["-", "-"]
    m = b.ref_metric()
    pct = "-" if m is None else fmt_pct(b.counters[m]) + {"pct_of_pinned": " of pinned",
                                                          "pct_of_gemm": " of GEMM"}.get(m, "")
    return [f"{b.time_us:.1f}", pct]


def block_headline(gpus: list[Gpu], every: bool = False) -> list[str]:
    if every:
        names = sorted({n for g in gpus if g.benches for n in g.benches})
        rows_in = [(n, "", n) for n in names]
    else:
        rows_in = headline_rows()
    rows = []
    for label, dt, name in rows_in:
        if not any(g.benches and name in g.benches for g in gpus) and any(g.benches is not None for g in gpus):
            continue  # measured by no GPU that has results
        cells = [c for g in gpus for c in bench_cells(g, name)]
        first = f"`{name}`" if every else f"{label} ({dt})" if dt not in ("", "-") else label
        rows.append([first] + cells)
    header = ["benchmark"] + [h for g in gpus for h in (f"{g.label} µs", f"{g.label} % of ref")]
    align = ["---"] + ["---:"] * (2 * len(gpus))
    return table(header, rows, align)


def tf_cell(d: dict | None) -> str:
    if not d or not d.get("decode_tokens_per_s"):
        return "-"
    return f"{d['decode_tokens_per_s']:,.0f} tok/s ({d['decode_ms_per_step']:.2f} ms)"


def block_transformers(gpus: list[Gpu]) -> list[str]:
    kinds = [("engine, graphs", "engine", "graphs"), ("engine, eager", "engine", "eager"),
             ("transformers `generate`", "transformers", "dynamic"),
             ("transformers, static cache", "transformers", "static")]
    batches = sorted({r["batch"] for g in gpus if g.tf for r in g.tf["rows"]})
    rows = []
    for b in batches:
        for label, side, mode in kinds:
            cells = []
            for g in gpus:
                if g.tf is None:
                    cells.append(pending("transformers_throughput.json"))
                    continue
                row = next((r for r in g.tf["rows"] if r.get("batch") == b), None)
                cells.append(tf_cell((row or {}).get(side, {}).get(mode)) if row else "not in this run")
            rows.append([str(b), label] + cells)
    if not rows:
        return [f"(no transformers_throughput.json in {', '.join(g.label for g in gpus)}: pending)"]
    return table(["batch", "decode"] + [g.label for g in gpus], rows)


BLOCKS = {
    "sources": block_sources,
    "issue12": block_issue12,
    "targets": block_targets,
    "decode_targets": block_decode_targets,
    "headline": block_headline,
    "transformers": block_transformers,
}


def render(name: str, gpus: list[Gpu]) -> str:
    return "\n".join(BLOCKS[name](gpus)) + "\n"


# ---------------------------------------------------------------------------------------------
# The doc's marked blocks


def marker_re(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- BEGIN results_table.py {re.escape(name)} -->\n)(.*?)(<!-- END results_table.py "
                      rf"{re.escape(name)} -->)", re.S)


def blocks_in(text: str) -> list[str]:
    return re.findall(r"<!-- BEGIN results_table.py (\S+) -->", text)


def regenerate(text: str, gpus: list[Gpu], doc: pathlib.Path) -> str:
    names = blocks_in(text)
    if not names:
        fail(f"{doc}: no '<!-- BEGIN results_table.py NAME -->' marker (blocks: {', '.join(BLOCKS)})")
    for n in names:
        if n not in BLOCKS:
            fail(f"{doc}: unknown block '{n}' (blocks: {', '.join(BLOCKS)})")
        rx = marker_re(n)
        if len(rx.findall(text)) != 1:
            fail(f"{doc}: block '{n}' needs exactly one BEGIN and one END marker")
        body = render(n, gpus)
        text = rx.sub(lambda m: m.group(1) + body + m.group(3), text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=pathlib.Path, default=ROOT / "reference" / "results",
                    help="the folder of the GPU folders (default reference/results)")
    ap.add_argument("--gpus", nargs="+", default=["h100", "h200"],
                    help="GPU folders under --results, one column each, in this order (default h100 h200)")
    ap.add_argument("--block", action="append", choices=list(BLOCKS),
                    help="print only this block (repeatable; default: every block)")
    ap.add_argument("--all", action="store_true", help="print every benchmark of every GPU side by side")
    ap.add_argument("--write-doc", type=pathlib.Path, metavar="MD",
                    help="regenerate the marked blocks of this markdown file in place")
    ap.add_argument("--check-doc", type=pathlib.Path, metavar="MD",
                    help="exit 1 (and print a diff) if the marked blocks of this file are stale")
    a = ap.parse_args()

    if not a.results.is_dir():
        fail(f"--results {a.results}: no such folder")
    gpus = [load_gpu(a.results, s) for s in a.gpus]
    if all(g.benches is None and g.sweep is None and g.tf is None for g in gpus):
        fail(f"no results in {', '.join(str(g.folder) for g in gpus)}")

    for flag, doc in (("--write-doc", a.write_doc), ("--check-doc", a.check_doc)):
        if doc is None:
            continue
        try:
            old = doc.read_text()
        except OSError as e:
            fail(f"{flag} {doc}: cannot read it ({e.strerror})")
        new = regenerate(old, gpus, doc)
        if flag == "--write-doc":
            if new != old:
                tmp = doc.with_name(doc.name + ".tmp")
                tmp.write_text(new)
                tmp.replace(doc)
                print(f"results_table: {doc}: blocks {', '.join(blocks_in(new))} regenerated")
            else:
                print(f"results_table: {doc}: up to date")
        elif new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                       str(doc), f"{doc} (regenerated)"))
            print(f"results_table: {doc} is stale: run python3 scripts/results_table.py --write-doc {doc}")
            return 1
        else:
            print(f"results_table: {doc}: up to date")
    if a.write_doc or a.check_doc:
        return 0

    if a.all:
        sys.stdout.write(render_all(gpus))
        return 0
    for n in a.block or list(BLOCKS):
        print(f"<!-- {n} -->")
        sys.stdout.write(render(n, gpus))
        print()
    return 0


def render_all(gpus: list[Gpu]) -> str:
    return "\n".join(block_headline(gpus, every=True)) + "\n"


if __name__ == "__main__":
    sys.exit(main())
