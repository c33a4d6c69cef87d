#!/usr/bin/env python3
"""Draw the seed's execution timeline diagram from a real trace (`day18 trace --out TRACE.json`).

The seed (Day 18, Task 1) sketches one step as two lanes:

    CPU (Host):   | Schedule | Prepare Inputs | Launch | Wait | Process Outputs | Repeat |
    GPU (Device):            | Attention | MLP | Norm | Sample | (Idle) |

This script draws that diagram for N consecutive steps of your own run, to scale:

  CPU lane      the engine thread's stages: Schedule, Prepare Inputs, Launch, Wait, Process
                Outputs (the top-level ranges Scheduler, PrepareInputs, Launch, Wait,
                ProcessOutputs), each labelled with its step
  GPU lanes     one per stream of the executor: H2D (the input copy), compute (every kernel,
                coloured Attention / MLP / Norm / Sample / other, with the idle gaps hatched),
                D2H (the sampled tokens), cache (swaps, if any)

so the overlap shows (step N+1's H2D under step N's compute; the CPU scheduling N+1 while the GPU
runs N) and so do the gaps. A kernel's class comes from the engine range its launch call ran in
(the trace's args.range / args.range_path: Attention, MLP, Norm, Sampling), else from its name.
On a CPU-backend trace (no GPU records) the second lane is the host's own forward pass, from the
nested ranges (Attention, MLP, Norm, Sampling), and the title says so.

Writes PNG (--out) and SVG (same name, .svg) unless --no-svg. Needs matplotlib (scripts/lab setup
puts it in .venv); --summary prints the per-step table without drawing (no matplotlib needed).

Examples:
  build/engine/day18 trace --device cpu --out /tmp/t.json
  .venv/bin/python scripts/plot_timeline.py /tmp/t.json --out /tmp/timeline.png --steps 3
  python3 scripts/plot_timeline.py reference/results/h200/trace_tour.json --summary
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
import sys
from dataclasses import dataclass, field

# The seed's names for the engine's stage ranges, in step order.
STAGES = {
    "Scheduler": "Schedule",
    "PrepareInputs": "Prepare Inputs",
    "Launch": "Launch",
    "Wait": "Wait",
    "ProcessOutputs": "Process Outputs",
}
STAGE_COLORS = {
    "Schedule": "#8da0cb",
    "Prepare Inputs": "#a6d854",
    "Launch": "#ffd92f",
    "Wait": "#e5c494",
    "Process Outputs": "#b3b3b3",
}
CLASSES = ["Attention", "MLP", "Norm", "Sample", "Other"]
CLASS_COLORS = {
    "Attention": "#e41a1c",
    "MLP": "#377eb8",
    "Norm": "#4daf4a",
    "Sample": "#984ea3",
    "Other": "#999999",
}
COPY_COLORS = {"HtoD": "#ff7f00", "DtoH": "#a65628", "other": "#f781bf"}
STREAM_ORDER = ["h2d", "compute", "d2h", "cache"]
STREAM_LABELS = {"h2d": "H2D", "compute": "compute", "d2h": "D2H", "cache": "cache"}

# Engine range -> class (the innermost range that names one wins).
RANGE_CLASSES = {"Attention": "Attention", "MLP": "MLP", "Norm": "Norm", "Sampling": "Sample"}
# By name, when no range says (vLLM's and this engine's kernel names).
NAME_CLASSES = [
    (re.compile(r"paged_attention|attention|rotary|reshape_and_cache|flash", re.I), "Attention"),
    (re.compile(r"rms_norm|layernorm|layer_norm", re.I), "Norm"),
    (re.compile(r"silu|gelu|act_and_mul|mlp", re.I), "MLP"),
    (re.compile(r"sampl|argmax|softmax|top_?k|top_?p", re.I), "Sample"),
]


@dataclass
class Block:
    start: float  # us, as in the trace
    end: float
    label: str
    kind: str      # a stage name, a class, "HtoD"/"DtoH", or "idle"
    step: int = -1

    @property
    def dur(self) -> float:
        return self.end - self.start


@dataclass
class Lane:
    name: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Timeline:
    cpu: Lane
    gpu: list[Lane]
    window: tuple[float, float]
    steps: list[int]
    gpu_traced: bool
    title: str


# ---- reading a trace ----------------------------------------------------------------------------
def load_trace(path: str | pathlib.Path) -> dict:
    try:
        trace = json.loads(pathlib.Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"plot_timeline: cannot read {path}: {e}")
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise SystemExit(f"plot_timeline: {path} is not a Chrome trace (no traceEvents list); "
                         "make one with `day18 trace --out FILE.json`")
    check_events(trace, path)
    return trace


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_events(trace: dict, path: str | pathlib.Path) -> None:
    """Every field the figure reads, with the type it needs, before anything is drawn: a wrong one
    is one line naming the file, the event and the key, never a TypeError later."""
    def bad(i: int, key: str, want: str, v: object) -> None:
        raise SystemExit(f"plot_timeline: {path}: traceEvents[{i}].{key}: expected {want}, got "
                         f"{json.dumps(v)[:60]}")
    if "otherData" in trace and not isinstance(trace["otherData"], dict):
        raise SystemExit(f"plot_timeline: {path}: otherData: expected an object, got "
                         f"{json.dumps(trace['otherData'])[:60]}")
    for i, e in enumerate(trace["traceEvents"]):
        if not isinstance(e, dict):
            raise SystemExit(f"plot_timeline: {path}: traceEvents[{i}]: expected an event (an "
                             f"object), got {json.dumps(e)[:60]}")
        for k in ("ph", "cat", "name"):
            if k in e and not isinstance(e[k], str):
                bad(i, k, "a string", e[k])
        for k in ("pid", "tid"):
            if k in e and not (isinstance(e[k], (int, str)) and not isinstance(e[k], bool)):
                bad(i, k, "an integer or a string", e[k])
        if e.get("ph") not in ("X", "M"):
            continue
        need = ("pid", "tid") if e.get("ph") == "X" or e.get("name") == "thread_name" else \
            ("pid",) if e.get("name") == "process_name" else ()
        for k in need:
            if k not in e:
                bad(i, k, "an id (required)", None)
        if e.get("ph") == "X":
            if "name" not in e:
                bad(i, "name", "a string (required)", None)
            for k in ("ts", "dur"):
                if not _is_num(e.get(k)):
                    bad(i, k, "a number (required)", e.get(k))
        args = e.get("args", {})
        if not isinstance(args, dict):
            bad(i, "args", "an object", args)
        if e.get("ph") == "M" and e.get("name") in ("process_name", "thread_name") and \
                not isinstance(args.get("name"), str):
            bad(i, "args.name", "a string (required)", args.get("name"))
        for k in ("step", "depth"):
            if k in args and not (isinstance(args[k], int) and not isinstance(args[k], bool)):
                bad(i, f"args.{k}", "an integer", args[k])
        for k in ("range_path", "range", "copy_kind"):
            if k in args and not isinstance(args[k], str):
                bad(i, f"args.{k}", "a string", args[k])


def names(trace: dict) -> tuple[dict[int, str], dict[tuple[int, int], str]]:
    """process names by pid, thread names by (pid, tid), from the metadata events."""
    procs, threads = {}, {}
    for e in trace["traceEvents"]:
        if e.get("ph") != "M":
            continue
        if e.get("name") == "process_name":
            procs[e["pid"]] = e["args"]["name"]
        elif e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    return procs, threads


def slices(trace: dict) -> list[dict]:
    return [e for e in trace["traceEvents"] if e.get("ph") == "X"]


def engine_thread(trace: dict) -> tuple[int, int] | None:
    """(pid, tid) of the thread with the most engine ranges."""
    count: dict[tuple[int, int], int] = {}
    for e in slices(trace):
        if e.get("cat") == "engine":
            key = (e["pid"], e["tid"])
            count[key] = count.get(key, 0) + 1
    return max(count, key=count.get) if count else None


# ---- classification -----------------------------------------------------------------------------
def classify_kernel(event: dict) -> str:
    """Attention / MLP / Norm / Sample / Other for a kernel slice: the innermost engine range of its
    launch that names a class (a fused Norm+GEMV belongs to its layer's Attention or MLP), else its
    name."""
    args = event.get("args", {})
    path = args.get("range_path")
    ranges = [p.strip() for p in path.split(">")] if path else ([args["range"]] if args.get("range") else [])
    for r in reversed(ranges):
        if r in RANGE_CLASSES:
            return RANGE_CLASSES[r]
    for pattern, cls in NAME_CLASSES:
        if pattern.search(event.get("name", "")):
            return cls
    return "Other"


# ---- choosing steps and building the lanes ------------------------------------------------------
def stage_blocks(trace: dict, thread: tuple[int, int]) -> list[Block]:
    out = []
    for e in slices(trace):
        if (e["pid"], e["tid"]) != thread or e.get("cat") != "engine":
            continue
        if e.get("args", {}).get("depth", 0) != 0 or e["name"] not in STAGES:
            continue
        label = STAGES[e["name"]]
        out.append(Block(e["ts"], e["ts"] + e["dur"], label, label, e.get("args", {}).get("step", -1)))
    return sorted(out, key=lambda b: b.start)


def complete_steps(stages: list[Block]) -> list[int]:
    """Steps whose five stages are all in the trace, in order."""
    have: dict[int, set[str]] = {}
    for b in stages:
        have.setdefault(b.step, set()).add(b.kind)
    return sorted(s for s, k in have.items() if s >= 0 and k >= set(STAGES.values()))


def select_steps(stages: list[Block], n: int, first: int | None) -> list[int]:
    steps = complete_steps(stages)
    if not steps:
        raise SystemExit("plot_timeline: no step with all five stages (Scheduler, PrepareInputs, "
                         "Launch, Wait, ProcessOutputs) in the trace: trace more steps (--steps)")
    if first is not None:
        if first not in steps:
            raise SystemExit(f"plot_timeline: --first-step {first}: not a complete step of the trace "
                             f"(complete: {steps[0]}..{steps[-1]})")
        i = steps.index(first)
    else:
        i = len(steps) // 2 - n // 2 if len(steps) > n else 0  # the middle: past the warm-up
        i = max(0, min(i, len(steps) - n))
    return steps[i:i + n]


def window_of(stages: list[Block], steps: list[int]) -> tuple[float, float]:
    """From the first chosen step's Schedule to the last chosen step's Process Outputs."""
    chosen = [b for b in stages if b.step in steps]
    return min(b.start for b in chosen), max(b.end for b in chosen)


def idle_gaps(blocks: list[Block], window: tuple[float, float]) -> list[Block]:
    """The times in `window` no block covers, between the first block and the last."""
    spans = sorted((max(b.start, window[0]), min(b.end, window[1])) for b in blocks
                   if b.end > window[0] and b.start < window[1])
    gaps, cursor = [], None
    for a, b in spans:
        if cursor is not None and a > cursor:
            gaps.append(Block(cursor, a, "(Idle)", "idle"))
        cursor = b if cursor is None else max(cursor, b)
    return gaps


def in_window(b: Block, w: tuple[float, float]) -> bool:
    return b.end > w[0] and b.start < w[1]


def gpu_lanes(trace: dict, window: tuple[float, float]) -> list[Lane]:
    procs, threads = names(trace)
    gpu_pids = sorted(p for p, n in procs.items() if n.startswith("GPU"))
    lanes: dict[tuple[int, int], Lane] = {}
    for e in slices(trace):
        if e["pid"] not in gpu_pids:
            continue
        key = (e["pid"], e["tid"])
        stream = threads.get(key, f"stream {e['tid']}")
        lane = lanes.setdefault(key, Lane(STREAM_LABELS.get(stream, stream)))
        step = e.get("args", {}).get("step", -1)
        if e.get("cat") == "kernel":
            cls = classify_kernel(e)
            b = Block(e["ts"], e["ts"] + e["dur"], cls, cls, step)
        else:
            kind = e.get("args", {}).get("copy_kind", "other")
            b = Block(e["ts"], e["ts"] + e["dur"], "H2D" if kind == "HtoD" else "D2H" if kind == "DtoH"
                      else e["name"], kind if kind in COPY_COLORS else "other", step)
        if in_window(b, window):
            lane.blocks.append(b)

    def order(item):
        (pid, tid), lane = item
        stream = threads.get((pid, tid), "")
        return (pid, STREAM_ORDER.index(stream) if stream in STREAM_ORDER else 10 + tid)

    out = []
    for key, lane in sorted(lanes.items(), key=order):
        if not lane.blocks:
            continue
        if any(b.kind in CLASSES for b in lane.blocks):
            lane.blocks += idle_gaps(lane.blocks, window)
        out.append(lane)
    return out


def host_forward_lane(trace: dict, thread: tuple[int, int], window: tuple[float, float]) -> Lane:
    """CPU backend: the forward pass on the host, from the ranges nested in Launch (innermost
    classified range wins)."""
    ranges = [e for e in slices(trace) if (e["pid"], e["tid"]) == thread and e.get("cat") == "engine"
              and e["name"] in RANGE_CLASSES]
    ranges.sort(key=lambda e: (e["ts"], e.get("args", {}).get("depth", 0)))
    lane = Lane("host forward")
    for e in ranges:  # deeper ranges are drawn later, on top of their parents
        cls = RANGE_CLASSES[e["name"]]
        b = Block(e["ts"], e["ts"] + e["dur"], cls, cls, e.get("args", {}).get("step", -1))
        if in_window(b, window):
            lane.blocks.append(b)
    models = [Block(e["ts"], e["ts"] + e["dur"], "", "", -1) for e in slices(trace)
              if (e["pid"], e["tid"]) == thread and e["name"] in ("ModelExecutor", "Sampling")]
    lane.blocks += idle_gaps([b for b in models if in_window(b, window)], window)
    return lane


def build_timeline(trace: dict, n_steps: int = 3, first: int | None = None) -> Timeline:
    thread = engine_thread(trace)
    if thread is None:
        raise SystemExit("plot_timeline: the trace has no engine ranges (cat 'engine'): was it "
                         "written by `day18 trace`?")
    stages = stage_blocks(trace, thread)
    steps = select_steps(stages, n_steps, first)
    window = window_of(stages, steps)
    cpu = Lane("CPU (host)", [b for b in stages if in_window(b, window)])
    gpu = gpu_lanes(trace, window)
    traced = bool(gpu)
    if not traced:
        gpu = [host_forward_lane(trace, thread, window)]
    other = trace.get("otherData", {})
    parts = [str(other[k]) for k in ("model", "dtype") if other.get(k)]
    if other.get("device"):
        parts.append(f"on {other['device']}")
    gpus = [n for n in names(trace)[0].values() if n.startswith("GPU")]
    if traced and gpus:
        parts.append(f"({', '.join(gpus)})")
    steps_txt = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
    title = (f"The execution timeline, {steps_txt}" if traced else
             f"CPU backend (no GPU lanes: the forward runs on the host), {steps_txt}")
    if parts:
        title += ": " + " ".join(parts)
    return Timeline(cpu, gpu, window, steps, traced, title)


# ---- numbers ------------------------------------------------------------------------------------
def summary(t: Timeline) -> str:
    lines = [t.title, f"window {t.window[0]:.1f} .. {t.window[1]:.1f} us ({t.window[1] - t.window[0]:.1f} us)"]
    for s in t.steps:
        parts = [f"{b.label} {b.dur:.1f}" for b in t.cpu.blocks if b.step == s]
        lines.append(f"  step {s}: CPU " + ", ".join(parts) + " (us)")
    for lane in t.gpu:
        busy = sum(b.dur for b in lane.blocks if b.kind != "idle")
        idle = sum(b.dur for b in lane.blocks if b.kind == "idle")
        by = {}
        for b in lane.blocks:
            by[b.kind] = by.get(b.kind, 0.0) + b.dur
        detail = ", ".join(f"{k} {v:.1f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))
        lines.append(f"  {lane.name}: busy {busy:.1f} us, idle {idle:.1f} us ({detail})")
    return "\n".join(lines)


# ---- drawing ------------------------------------------------------------------------------------
def draw(t: Timeline, out: pathlib.Path, svg: bool) -> list[pathlib.Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise SystemExit("plot_timeline: matplotlib is missing: `scripts/lab setup` makes .venv with it "
                         "(then .venv/bin/python scripts/plot_timeline.py ...), or use --summary")
    lanes = [t.cpu] + t.gpu
    origin = t.window[0]
    # Microseconds for a short window (one decode step of a small model), else milliseconds.
    scale, unit = (1.0, "us") if t.window[1] - t.window[0] < 2000 else (1e3, "ms")
    span_ms = (t.window[1] - t.window[0]) / scale
    fig, ax = plt.subplots(figsize=(14, 1.1 * len(lanes) + 1.8))
    height = 0.7
    for row, lane in enumerate(lanes):
        y = len(lanes) - 1 - row
        for b in sorted(lane.blocks, key=lambda b: b.kind != "idle"):
            x0, w = (b.start - origin) / scale, b.dur / scale
            if b.kind == "idle":
                ax.broken_barh([(x0, w)], (y - height / 2, height), facecolors="white",
                               edgecolors="#bbbbbb", hatch="///", linewidth=0.5, zorder=1)
                continue
            color = STAGE_COLORS.get(b.kind) or CLASS_COLORS.get(b.kind) or COPY_COLORS.get(b.kind, "#cccccc")
            ax.broken_barh([(x0, w)], (y - height / 2, height), facecolors=color,
                           edgecolors="black", linewidth=0.3, zorder=2)
            # A label where it fits: the stage (and its step) on the CPU lane, the copy's step.
            if w > span_ms * (0.045 if lane is t.cpu else 0.03):
                text = f"{b.label}\n{b.step}" if lane is t.cpu and b.step >= 0 else b.label
                ax.text(x0 + w / 2, y, text, ha="center", va="center", fontsize=7, zorder=3)
            elif b.kind in COPY_COLORS and b.step >= 0:  # a copy: which step's it is
                ax.text(x0 + w / 2, y + height / 2 + 0.03, str(b.step), ha="center", va="bottom",
                        fontsize=7, zorder=3)
        # The span of each step's kernels, under the lane: the overlap with the next step's H2D.
        spans: dict[int, list[float]] = {}
        for b in lane.blocks:
            if b.kind in CLASSES and b.step >= 0:
                lo, hi = spans.get(b.step, [b.start, b.end])
                spans[b.step] = [min(lo, b.start), max(hi, b.end)]
        for step, (lo, hi) in spans.items():
            yb = y - height / 2 - 0.06
            ax.plot([(lo - origin) / scale, (hi - origin) / scale], [yb, yb], color="black", linewidth=1)
            ax.text((lo - origin) / scale, yb - 0.02, f"step {step}", fontsize=6.5, va="top")
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([lane.name for lane in reversed(lanes)])
    ax.set_xlim(0, span_ms)
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    ax.set_xlabel(f"{unit} since the first chosen step's Schedule")
    ax.axhline(len(lanes) - 1.5, color="black", linewidth=0.8)
    ax.text(0, len(lanes) - 1.5, " CPU above, " + ("GPU streams below" if t.gpu_traced else
            "the host's forward below (CPU backend)"), va="bottom", fontsize=7, color="#444444")
    # Step boundaries: where each chosen step's Schedule starts.
    for b in t.cpu.blocks:
        if b.kind == "Schedule" and b.step in t.steps:
            ax.axvline((b.start - origin) / scale, color="#555555", linestyle=":", linewidth=0.8)
            ax.text((b.start - origin) / scale, len(lanes) - 0.35, f" step {b.step}", fontsize=7,
                    va="bottom")
    kinds = {b.kind for lane in lanes for b in lane.blocks}
    handles = [Patch(facecolor=c, edgecolor="black", label=k) for k, c in STAGE_COLORS.items() if k in kinds]
    handles += [Patch(facecolor=CLASS_COLORS[k], edgecolor="black", label=k) for k in CLASSES if k in kinds]
    handles += [Patch(facecolor=COPY_COLORS[k], edgecolor="black", label={"HtoD": "H2D", "DtoH": "D2H"}.get(k, k))
                for k in COPY_COLORS if k in kinds]
    if "idle" in kinds:
        handles.append(Patch(facecolor="white", edgecolor="#999999", hatch="///", label="(Idle)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=min(len(handles), 8),
              fontsize=8, frameon=False)
    ax.set_title(t.title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out]
    fig.savefig(out, dpi=130)
    if svg:
        written.append(out.with_suffix(".svg"))
        fig.savefig(written[-1])
    plt.close(fig)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", help="a Chrome trace written by `day18 trace --out`")
    ap.add_argument("--out", type=pathlib.Path, help="the PNG to write (an SVG is written beside it)")
    ap.add_argument("--steps", type=int, default=3, help="how many consecutive steps to draw (default 3)")
    ap.add_argument("--first-step", type=int, help="the first step to draw (default: the middle ones)")
    ap.add_argument("--no-svg", action="store_true", help="write the PNG only")
    ap.add_argument("--summary", action="store_true", help="print the per-step numbers (no drawing "
                    "unless --out is given too)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps {args.steps}: draw at least one step")
    if not args.out and not args.summary:
        ap.error("give --out PNG (and/or --summary)")
    t = build_timeline(load_trace(args.trace), args.steps, args.first_step)
    if args.summary:
        print(summary(t))
    if args.out:
        for p in draw(t, args.out, not args.no_svg):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
