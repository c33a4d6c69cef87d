#!/usr/bin/env python3
"""Decode sweep: how long one decode step takes, and how many tokens/s it gives, vs batch size.

Why this sweep matters: a decode step reads every weight once, whatever the batch size. At small
batch the step cannot be faster than

    floor = weight bytes / P

where P is the device-to-device copy bandwidth measured on this GPU in this same run (the
probe that heads `day18 tour --ops embedding`: a 1 GiB copy timed with CUDA events, read + write
counted). The gap between
the measured step and the floor is what launch overhead, small kernels and CPU work cost; CUDA
graphs remove most of the launch overhead. As the batch grows, the same weight read serves more
tokens, so tokens/s grows almost linearly until the step stops being weight-bound.

What it runs, for each preset (llama-1b, llama-8b: random weights, fp16) and each batch size B:

    build/engine/day18 run --preset P --dtype fp16 --device cuda --requests B --max-num-seqs B
                           --prompt-len 32 --output-len 64 --cuda-graphs on|off --json ...

so every request is prefilled in the first step and the next 63 steps are decode steps of exactly
B sequences. It reads from each run's JSON: the median decode step time (GPU compute interval,
CUDA events; with graphs it includes sampling), decode tokens/s, and the GPU idle between decode
steps in the steady state: over consecutive decode-only steps N, N+1 (N+1 not capturing a CUDA
graph, no swaps), the gap from N's compute end to N+1's compute start; its median (us) and the
idle fraction = sum of gaps / sum of (compute end of N+1 - compute end of N), busy = 1 - idle. The
whole-run busy fraction (compute intervals / first start .. last end, which also holds the
prefill and the one-off graph capture) and the capture count and time are kept next to it. The
KV pool is sized to the workload (--num-gpu-blocks) so that llama-8b at B=256 fits and the pool
allocation does not dominate the run.

Outputs (reference/results/<gpu>/ by default, <gpu> from the GPU's name: h100, h200):
  decode_sweep.json  provenance (GPU, driver, CUDA, commit), P, floors, every point, targets
  decode_sweep.png   step time vs batch with the floor line; tokens/s vs batch; graphs on/off

Examples:
  python3 scripts/bench_decode.py                      # full sweep (about 5 minutes on an H100)
  python3 scripts/bench_decode.py --presets llama-1b --batches 1 8 64 --out /tmp/sweep
  python3 scripts/bench_decode.py --plot-only reference/results/h100/decode_sweep.json

Only the Python standard library is needed; matplotlib only for the plot (skipped if missing).
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]

# The issue's targets (issue 3, section 4).
FLOOR_RATIO_MAX = 1.3        # batch-1 decode step with graphs <= 1.3 x floor
GRAPH_CUT_MIN = 0.30         # graphs cut the llama-1b batch-1 step by >= 30% vs eager
IDLE_MAX = 0.05              # GPU idle between decode steps <= 5% at batch 64 with graphs


def log(msg: str) -> None:
    print(msg, flush=True)


def sh(cmd: list[str], timeout: float = 60) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


# The kernel tour's header is the probe (GPU, CUDA, commit, P); one small op after it, timed once.
# (`--ops none`, used before, is refused since --ops accepts only the names of ops.)
PROBE_CMD = ["tour", "--device", "cuda", "--ops", "embedding", "--reps", "1"]


def provenance(day18: pathlib.Path) -> dict:
    """GPU, driver, CUDA, commit and P from the header of `day18 tour --ops embedding`."""
    tour = sh([str(day18), *PROBE_CMD], timeout=120)
    info: dict = {"tour_header": [l for l in tour.splitlines() if l.strip()][:6]}
    m = re.search(r"P = ([\d.]+) GB/s", tour)
    if not m:
        sys.exit(f"bench_decode: `day18 {' '.join(PROBE_CMD)}` printed no 'P = ... GB/s' (no GPU?):\n"
                 + tour)
    info["P_GBps"] = float(m.group(1))
    m = re.search(r"GPU: (.*?) \(sm_(\d+), (\d+) SMs.*CUDA runtime ([\d.]+), driver API ([\d.]+)", tour)
    if m:
        info.update(gpu=m.group(1), sm=m.group(2), num_sms=int(m.group(3)), cuda_runtime=m.group(4),
                    cuda_driver_api=m.group(5))
    m = re.search(r"engine commit (\S+)", tour)
    info["engine_commit"] = m.group(1) if m else "unknown"
    smi = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
              "--format=csv,noheader"]).strip()
    if smi:
        info["nvidia_smi"] = smi
        info["driver"] = smi.split(",")[1].strip()
    return info


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100' (the rule of scripts/gpu_check.sh)."""
    words = re.sub(r"[^a-z0-9]", " ", name.lower()).split()
    skip = re.compile(r"^(nvidia|geforce|tesla|[0-9]+gb|hbm[0-9a-z]*)$")
    return "-".join(w for w in words if not skip.match(w)) or "gpu"


def run_point(day18: pathlib.Path, preset: str, batch: int, graphs: bool, a, tmp: pathlib.Path) -> dict:
    out = tmp / f"{preset}_b{batch}_{'gon' if graphs else 'goff'}.json"
    blocks_per_seq = -(-(a.prompt_len + a.output_len) // 16) + 1
    cmd = [str(day18), "run", "--preset", preset, "--dtype", "fp16", "--device", "cuda",
           "--requests", str(batch), "--max-num-seqs", str(batch),
           "--max-num-batched-tokens", str(min(2048, max(1024, batch * a.prompt_len))),
           "--prompt-len", str(a.prompt_len), "--output-len", str(a.output_len),
           # max-model-len must fit in the pool for one sequence: size it to the workload.
           "--max-model-len", str(a.prompt_len + a.output_len + 16),
           "--num-gpu-blocks", str(batch * blocks_per_seq + 64), "--num-cpu-blocks", "16",
           "--cuda-graphs", "on" if graphs else "off", "--quiet", "--json", str(out)]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    if r.returncode != 0 or not out.exists():
        log(f"  FAILED ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        return {"preset": preset, "batch": batch, "cuda_graphs": graphs, "error": r.stderr[-500:]}
    j = json.loads(out.read_text())
    steps = j.get("decode_step_ms_by_batch", {})
    step_ms = steps.get(str(batch))
    if step_ms is None and steps:  # fewer sequences than asked (should not happen): take the biggest
        step_ms = steps[max(steps, key=int)]
    return {"preset": preset, "batch": batch, "cuda_graphs": graphs, "decode_step_ms": step_ms,
            "decode_tokens_per_s": j["decode_tokens_per_s"],
            # Steady-state decode idle (None when the run had no two consecutive decode steps).
            "gpu_busy_fraction": j["gpu_busy_fraction"], "decode_idle_fraction": j["decode_idle_fraction"],
            "decode_gap_median_us": j["decode_gap_median_us"], "decode_steady_pairs": j["decode_steady_pairs"],
            "gpu_busy_fraction_all": j["gpu_busy_fraction_all"], "graph_captures": j["graph_captures"],
            "graph_capture_ms": j["graph_capture_ms"],
            "weight_bytes": j["weight_bytes"], "steps": j["steps"], "graph_replays": j["graph_replays"],
            "stage_ms": j["stage_ms"], "wall_s": j["wall_s"], "run_s": round(time.time() - t0, 2)}


def steady_busy(p: dict) -> float | None:
    """The steady-state decode busy fraction of a point. Sweeps from before it was measured
    (no "decode_idle_fraction") only have the whole-run busy, under the name gpu_busy_fraction."""
    if "decode_idle_fraction" not in p:
        return p.get("gpu_busy_fraction")
    return None if p["decode_idle_fraction"] is None else 1 - p["decode_idle_fraction"]


def evaluate(doc: dict) -> list[dict]:
    """The issue's targets, measured."""
    pts = {(p["preset"], p["batch"], p["cuda_graphs"]): p for p in doc["points"] if "error" not in p}
    res = []
    for preset, floor_ms in doc["floor_ms"].items():
        p = pts.get((preset, 1, True))
        if p:
            ratio = p["decode_step_ms"] / floor_ms
            res.append({"target": f"{preset} batch-1 decode step, graphs <= {FLOOR_RATIO_MAX}x floor",
                        "measured": f"{p['decode_step_ms']:.3f} ms = {ratio:.2f}x floor {floor_ms:.3f} ms",
                        "met": ratio <= FLOOR_RATIO_MAX})
    on, off = pts.get(("llama-1b", 1, True)), pts.get(("llama-1b", 1, False))
    if on and off:
        cut = 1 - on["decode_step_ms"] / off["decode_step_ms"]
        res.append({"target": f"llama-1b batch 1: graphs cut the step >= {GRAPH_CUT_MIN:.0%} vs eager",
                    "measured": f"{off['decode_step_ms']:.3f} -> {on['decode_step_ms']:.3f} ms ({cut:.0%})",
                    "met": cut >= GRAPH_CUT_MIN})
    for preset in doc["floor_ms"]:
        p = pts.get((preset, 64, True))
        if p and steady_busy(p) is not None:
            target = f"{preset} batch 64, graphs: GPU idle between decode steps <= {IDLE_MAX:.0%}"
            idle = 1 - steady_busy(p)
            if "decode_idle_fraction" in p:
                measured = (f"{idle:.2%} idle, median gap {p['decode_gap_median_us']:.1f} us over "
                            f"{p['decode_steady_pairs']} step pairs (whole run, with "
                            f"{p['graph_captures']} graph capture(s) of {p['graph_capture_ms']:.0f} ms: "
                            f"busy {p['gpu_busy_fraction_all']:.2%})")
            else:
                measured = f"{idle:.2%} idle over the whole run (a sweep from before the steady-state measure)"
            res.append({"target": target, "measured": measured, "met": idle <= IDLE_MAX})
    return res


def print_table(doc: dict) -> None:
    log(f"\nP = {doc['provenance']['P_GBps']:.0f} GB/s; floor = weight bytes / P")
    log(f"{'preset':9} {'batch':>5} {'floor ms':>9} {'eager ms':>9} {'graphs ms':>9} {'x floor':>8} "
        f"{'eager tok/s':>12} {'graphs tok/s':>12} {'busy(g)':>8} {'gap us(g)':>9}")
    pts = {(p["preset"], p["batch"], p["cuda_graphs"]): p for p in doc["points"] if "error" not in p}
    for preset, floor_ms in doc["floor_ms"].items():
        for b in doc["batches"]:
            off, on = pts.get((preset, b, False), {}), pts.get((preset, b, True), {})
            f = lambda p, k, fmt: format(p[k], fmt) if p.get(k) is not None else "-"
            ratio = f"{on['decode_step_ms'] / floor_ms:.2f}" if on.get("decode_step_ms") else "-"
            busy = format(steady_busy(on), "8.3f") if on and steady_busy(on) is not None else "-"
            log(f"{preset:9} {b:5d} {floor_ms:9.3f} {f(off, 'decode_step_ms', '9.3f'):>9} "
                f"{f(on, 'decode_step_ms', '9.3f'):>9} {ratio:>8} {f(off, 'decode_tokens_per_s', '12.0f'):>12} "
                f"{f(on, 'decode_tokens_per_s', '12.0f'):>12} {busy:>8} {f(on, 'decode_gap_median_us', '9.1f'):>9}")
    old = any("decode_idle_fraction" not in p for p in doc["points"] if "error" not in p)
    log("busy(g), gap us(g): GPU busy and median idle gap between steady-state decode steps, graphs on"
        + (" (this sweep predates that measure: its busy(g) is over the whole run)" if old else ""))
    log("\ntargets:")
    for t in doc.get("targets", []):
        log(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}")


def plot(doc: dict, png: pathlib.Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot (pip install matplotlib)")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {"llama-1b": "tab:blue", "llama-8b": "tab:red"}
    for preset, floor_ms in doc["floor_ms"].items():
        c = colors.get(preset, None)
        for graphs, style in ((True, "-o"), (False, "--s")):
            pts = sorted((p for p in doc["points"] if p["preset"] == preset and p["cuda_graphs"] == graphs
                          and p.get("decode_step_ms")), key=lambda p: p["batch"])
            if not pts:
                continue
            label = f"{preset} {'graphs' if graphs else 'eager'}"
            ax1.plot([p["batch"] for p in pts], [p["decode_step_ms"] for p in pts], style, color=c,
                     label=label, ms=4)
            ax2.plot([p["batch"] for p in pts], [p["decode_tokens_per_s"] for p in pts], style, color=c,
                     label=label, ms=4)
        ax1.axhline(floor_ms, color=c, ls=":", lw=1.2, label=f"{preset} floor (weights / P) {floor_ms:.2f} ms")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size (sequences per decode step)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("decode step (ms, median, CUDA events)")
    ax1.set_title("Decode step time vs batch: flat while the weight read dominates")
    ax2.set_yscale("log")
    ax2.set_ylabel("decode tokens/s")
    ax2.set_title("Decode throughput vs batch")
    prov = doc["provenance"]
    fig.suptitle(f"{prov.get('gpu', '?')}, fp16, prompt {doc['prompt_len']} / output {doc['output_len']} "
                 f"tokens, P = {prov['P_GBps']:.0f} GB/s, commit {prov.get('engine_commit', '?')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    log(f"wrote {png}")


def check_sweep(doc: dict, src: pathlib.Path) -> None:
    """The fields the table and the figure read, with their types, before either is made: one line
    naming the file and the key instead of a TypeError half-way through the table."""
    def bad(where: str, want: str, v: object) -> None:
        sys.exit(f"bench_decode: --plot-only {src}: {where}: expected {want}, got {json.dumps(v)[:60]}")

    def num(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def integer(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    prov = doc["provenance"]
    if not isinstance(prov, dict):
        bad("provenance", "an object", prov)
    if not num(prov.get("P_GBps")) or prov["P_GBps"] <= 0:
        bad("provenance.P_GBps", "a bandwidth in GB/s (> 0)", prov.get("P_GBps"))
    for k in ("prompt_len", "output_len"):
        if not integer(doc[k]):
            bad(k, "an integer", doc[k])
    if not isinstance(doc["floor_ms"], dict) or not all(num(v) and v > 0 for v in doc["floor_ms"].values()):
        bad("floor_ms", "an object of times in ms (> 0) by preset", doc["floor_ms"])
    if "batches" in doc and not (isinstance(doc["batches"], list) and all(integer(b) for b in doc["batches"])):
        bad("batches", "a list of integers", doc["batches"])
    if not isinstance(doc["points"], list):
        bad("points", "a list", doc["points"])
    numbers = ("decode_step_ms", "decode_tokens_per_s", "gpu_busy_fraction", "decode_idle_fraction",
               "decode_gap_median_us", "gpu_busy_fraction_all", "graph_capture_ms", "weight_bytes")
    for i, p in enumerate(doc["points"]):
        if not isinstance(p, dict):
            bad(f"points[{i}]", "an object", p)
        if "error" in p:
            continue
        if not isinstance(p.get("preset"), str):
            bad(f"points[{i}].preset", "a preset name", p.get("preset"))
        if not integer(p.get("batch")):
            bad(f"points[{i}].batch", "an integer", p.get("batch"))
        if not isinstance(p.get("cuda_graphs"), bool):
            bad(f"points[{i}].cuda_graphs", "true/false", p.get("cuda_graphs"))
        for k in ("decode_step_ms", "decode_tokens_per_s"):  # every point that ran has them
            if not num(p.get(k)):
                bad(f"points[{i}].{k}", "a number (required)", p.get(k))
        for k in numbers:
            if p.get(k) is not None and not num(p[k]):
                bad(f"points[{i}].{k}", "a number", p[k])
        for k in ("decode_steady_pairs", "graph_captures"):
            if p.get(k) is not None and not integer(p[k]):
                bad(f"points[{i}].{k}", "an integer", p[k])
    if not isinstance(doc.get("targets", []), list):
        bad("targets", "a list", doc["targets"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--day18", default=str(ROOT / "build/engine/day18"), help="the day18 binary (CUDA build)")
    ap.add_argument("--presets", nargs="+", default=["llama-1b", "llama-8b"], help="built-in random models")
    ap.add_argument("--batches", nargs="+", type=int, default=DEFAULT_BATCHES, help="batch sizes B")
    ap.add_argument("--graphs", choices=["both", "on", "off"], default="both", help="CUDA graphs on, off or both")
    ap.add_argument("--prompt-len", type=int, default=32, help="prompt tokens per request (default 32)")
    ap.add_argument("--output-len", type=int, default=64, help="generated tokens per request (default 64)")
    ap.add_argument("--gpu", default=None,
                    help="results folder name under reference/results/ (default: from the GPU's name, "
                         "e.g. h100, h200)")
    ap.add_argument("--out", help="output folder (default reference/results/<gpu>)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds allowed per day18 run")
    ap.add_argument("--plot-only", metavar="JSON", help="re-draw the plot and table from a sweep JSON; runs nothing")
    a = ap.parse_args()
    for flag, v in (("--prompt-len", a.prompt_len), ("--output-len", a.output_len)):
        if v < 1:
            ap.error(f"{flag} {v}: must be >= 1")
    if any(b < 1 for b in a.batches):
        ap.error(f"--batches {' '.join(map(str, a.batches))}: every batch size must be >= 1")
    if not a.timeout > 0:
        ap.error(f"--timeout {a.timeout}: must be > 0 seconds")
    for flag, v in (("--out", a.out), ("--plot-only", a.plot_only), ("--day18", a.day18)):
        if v is not None and not v:
            ap.error(f"{flag}: the path is empty ('')")
    if a.out and pathlib.Path(a.out).exists() and not pathlib.Path(a.out).is_dir():
        ap.error(f"--out {a.out}: is a file; give a folder")

    if a.plot_only:
        src = pathlib.Path(a.plot_only)
        try:
            doc = json.loads(src.read_text())
        except OSError as e:
            sys.exit(f"bench_decode: --plot-only {src}: cannot read it ({e.strerror})")
        except json.JSONDecodeError as e:
            sys.exit(f"bench_decode: --plot-only {src}: not JSON ({e})")
        missing = [k for k in ("provenance", "points", "floor_ms", "prompt_len", "output_len")
                   if not isinstance(doc, dict) or k not in doc]
        if missing:
            sys.exit(f"bench_decode: --plot-only {src}: not a decode-sweep JSON of this script "
                     f"(missing {', '.join(missing)})")
        check_sweep(doc, src)
        if doc.get("points") and doc.get("floor_ms"):
            doc["targets"] = evaluate(doc)  # with today's definitions (old sweeps: whole-run busy)
        print_table(doc)
        # The figure goes into --out when given (never beside a tracked input unless asked).
        png = (pathlib.Path(a.out) / src.with_suffix(".png").name) if a.out else src.with_suffix(".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        plot(doc, png)
        return 0

    day18 = pathlib.Path(a.day18)
    if not day18.exists():
        sys.exit(f"bench_decode: {day18} not found: build first (cmake --preset gpu && cmake --build build)")
    t_start = time.time()
    log(f"probing the GPU (day18 {' '.join(PROBE_CMD)})...")
    prov = provenance(day18)
    out_dir = (pathlib.Path(a.out) if a.out
               else ROOT / "reference/results" / (a.gpu or gpu_slug(prov.get("gpu", ""))))
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"  {prov.get('gpu', '?')}, driver {prov.get('driver', '?')}, CUDA {prov.get('cuda_runtime', '?')}, "
        f"P = {prov['P_GBps']:.0f} GB/s, commit {prov['engine_commit']}")
    modes = {"both": [True, False], "on": [True], "off": [False]}[a.graphs]
    doc = {"what": "day18 run decode sweep: median decode step and decode tokens/s vs batch size",
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "provenance": prov,
           "dtype": "fp16", "prompt_len": a.prompt_len, "output_len": a.output_len, "batches": a.batches,
           "floor_definition": "weight_bytes / P (P = D2D copy bandwidth, read+write, same run)",
           "floor_ms": {}, "points": []}
    n_total, n = len(a.presets) * len(a.batches) * len(modes), 0
    with tempfile.TemporaryDirectory() as tmp:
        for preset in a.presets:
            for graphs in modes:
                for b in a.batches:
                    n += 1
                    p = run_point(day18, preset, b, graphs, a, pathlib.Path(tmp))
                    doc["points"].append(p)
                    if "error" in p:
                        continue
                    doc["floor_ms"].setdefault(preset, p["weight_bytes"] / (prov["P_GBps"] * 1e9) * 1e3)
                    busy = "-" if p["gpu_busy_fraction"] is None else f"{p['gpu_busy_fraction']:.3f}"
                    log(f"[{n:2d}/{n_total}] {preset} B={b:3d} graphs {'on ' if graphs else 'off'}: "
                        f"step {p['decode_step_ms']:.3f} ms ({p['decode_step_ms'] / doc['floor_ms'][preset]:.2f}x "
                        f"floor), {p['decode_tokens_per_s']:8.0f} tok/s, decode busy {busy} "
                        f"(whole run {p['gpu_busy_fraction_all']:.3f}, {p['graph_captures']} captures) "
                        f"[{p['run_s']:.1f} s, total {time.time() - t_start:.0f} s]")
                    # Save as we go: a sweep cut short still leaves its points.
                    (out_dir / "decode_sweep.json").write_text(json.dumps(doc, indent=2) + "\n")
    doc["targets"] = evaluate(doc)
    doc["sweep_s"] = round(time.time() - t_start, 1)
    js = out_dir / "decode_sweep.json"
    js.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {js}")
    print_table(doc)
    plot(doc, out_dir / "decode_sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
