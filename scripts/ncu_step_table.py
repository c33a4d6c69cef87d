#!/usr/bin/env python3
"""The kernels of ONE engine step, as a markdown table, from an Nsight Compute per-kernel CSV of a
few steps (the details page of `ncu --csv`: one row per kernel launch and metric).

  ncu --clock-control none -k 'regex:gemv|paged_attention|...|sampling|...' -c 440 \\
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__grid_size --csv \\
      build/engine/day18 run --device cuda --preset llama-1b --requests 1 --prompt-len 32 \\
      --output-len 4 --cuda-graphs off > step.csv

What it reads: everything before the header line (the one that starts with "ID": ==PROF== and
==WARNING== lines, the program's own output) is skipped; the columns are found by name ("ID",
"Kernel Name", "Metric Name", "Metric Unit", "Metric Value"). Of each launch it uses
gpu__time_duration.sum (ns / us / ms / s, nsecond ...), dram__bytes_read.sum (byte, Kbyte, Mbyte,
Gbyte, Tbyte, KB ...; Kibyte ... in powers of 1024) and launch__grid_size (blocks); values may
have thousands separators ("3,904", "8,388.608"). Other metrics are ignored.

Steps: the launches in ID order, cut after each launch whose name contains "sampling_kernel" (the
engine samples once per step, last). A step is complete when it ends at such a launch; the
launches after the last one are an unfinished step and left out. The first step is taken to start
at the first launch in the file (ncu without --launch-skip). Default: the LAST complete step (a
decode step of a run with a prefill first); --step N picks another (0-based).

The table: one row per (kernel, grid), sorted by total time; kernel is the short name (no "void ",
no argument list, no anonymous-namespace prefix: "void cuda::<unnamed>::gemv_kernel<__half, 1,
1>(T1 *, ...)" -> "gemv_kernel<__half, 1, 1>"); launches in the step, µs per launch, total µs and
share of the step, MB read from DRAM per launch, TB/s (= MB / µs: bytes read per second while the
kernel runs) and, with --peak-gbps P, that as a % of P (the D2D copy bandwidth of the same GPU).
Under it a total line: kernels, the sum of their durations, DRAM MB read, the effective TB/s.

Each duration is one kernel measured alone by ncu (serialized: no overlap with its neighbours, no
PDL, no CUDA graph), so the sum is more than the step takes in a real run.

Examples:
  python3 scripts/ncu_step_table.py reference/results/h200/ncu_decode_steps/step_llama-1b_b1.csv
  python3 scripts/ncu_step_table.py reference/results/h200/ncu_decode_steps/*.csv --peak-gbps 4194
  python3 scripts/ncu_step_table.py step.csv --step 0 --out /tmp/prefill.md   # the first step

Errors (a missing or unreadable file, no header, missing columns, an unknown unit, a value that is
not a number, no complete step) are one line naming the file (and line and column) and exit 2.
Only the Python standard library is needed.
"""
from __future__ import annotations

import argparse
import csv
import os
import pathlib
import re
import sys
import tempfile
from dataclasses import dataclass, field

PROG = "ncu_step_table"
COLUMNS = ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value")
TIME = "gpu__time_duration.sum"
READ = "dram__bytes_read.sum"
GRID = "launch__grid_size"
STEP_END = "sampling_kernel"

# unit -> factor to the base unit (microseconds, megabytes, blocks)
UNITS = {
    TIME: {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3,
           "s": 1e6, "second": 1e6},
    READ: {"byte": 1e-6, "B": 1e-6, "Kbyte": 1e-3, "KB": 1e-3, "Mbyte": 1.0, "MB": 1.0,
           "Gbyte": 1e3, "GB": 1e3, "Tbyte": 1e6, "TB": 1e6,
           "Kibyte": 1024 / 1e6, "KiB": 1024 / 1e6, "Mibyte": 1024**2 / 1e6, "MiB": 1024**2 / 1e6,
           "Gibyte": 1024**3 / 1e6, "GiB": 1024**3 / 1e6},
    GRID: {"": 1.0, "block": 1.0},
}
NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?|[+-]?\.\d+(?:[eE][+-]?\d+)?")
ANON = re.compile(r"(?:[A-Za-z_]\w*::)*(?:<unnamed>|\(anonymous namespace\))::")


class Refused(Exception):
    """A bad input or option: the one line to print (without the program's name)."""


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class Launch:
    id: int
    name: str
    line: int                                    # the file line of its first row
    values: dict[str, float] = field(default_factory=dict)   # metric -> base units

    @property
    def us(self) -> float:
        return self.values[TIME]

    @property
    def mb(self) -> float:
        return self.values[READ]

    @property
    def grid(self) -> int:
        return int(self.values[GRID])


def number(text: str) -> float | None:
    """A number as ncu writes it ("42", "3,904", "8,388.608", "1.5e-05"), or None."""
    t = text.strip()
    if not NUMBER.fullmatch(t):
        return None
    return float(t.replace(",", ""))


def read_launches(path: pathlib.Path) -> list[Launch]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        raise Refused(f"{path}: cannot read it ({e.strerror or e})")
    except UnicodeDecodeError:
        raise Refused(f"{path}: not a text file (not UTF-8): not an ncu --csv export")
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"') or l.startswith("ID,")), None)
    if start is None:
        raise Refused(f"{path}: no CSV header (a line starting with \"ID\"): not an ncu --csv export")
    body = [(n, l) for n, l in enumerate(lines[start:], start + 1) if not l.startswith("==")]
    reader = csv.reader([l for _, l in body])
    rows = iter(reader)
    try:
        header = next(rows)
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise Refused(
                f"{path}:{start + 1}: the header has no column {', '.join(repr(c) for c in missing)} "
                f"(needs {', '.join(COLUMNS)}: ncu --csv's default details page, one row per "
                f"launch and metric)")
        col = {c: header.index(c) for c in COLUMNS}
        launches: dict[int, Launch] = {}
        for cells in rows:
            line = body[reader.line_num - 1][0]
            if not cells:
                continue
            if len(cells) != len(header):
                raise Refused(f"{path}:{line}: {len(cells)} fields, the header has {len(header)}")
            metric = cells[col["Metric Name"]]
            if metric not in UNITS:
                continue
            raw_id = cells[col["ID"]].strip()
            if not raw_id.isdigit():
                raise Refused(f"{path}:{line}: column \"ID\": \"{raw_id}\" is not a launch number")
            unit = cells[col["Metric Unit"]].strip()
            if unit not in UNITS[metric]:
                known = ", ".join(u if u else "(none)" for u in UNITS[metric])
                raise Refused(f"{path}:{line}: column \"Metric Unit\": unknown unit \"{unit}\" "
                              f"for {metric} (known: {known})")
            text_value = cells[col["Metric Value"]]
            v = number(text_value)
            if v is None:
                raise Refused(f"{path}:{line}: column \"Metric Value\": \"{text_value}\" "
                              f"({metric}) is not a number")
            if metric == GRID and v != int(v):
                raise Refused(f"{path}:{line}: column \"Metric Value\": \"{text_value}\" "
                              f"({metric}) is not a whole number of blocks")
            k = launches.setdefault(int(raw_id), Launch(int(raw_id), cells[col["Kernel Name"]], line))
            if metric in k.values:
                raise Refused(f"{path}:{line}: launch {raw_id} has {metric} twice")
            k.values[metric] = v * UNITS[metric][unit]
    except csv.Error as e:
        raise Refused(f"{path}:{body[reader.line_num - 1][0] if reader.line_num else start + 1}: "
                      f"not CSV ({e})")
    if not launches:
        raise Refused(f"{path}: no launch has {TIME}, {READ} or {GRID} (ncu --metrics "
                      f"{TIME},{READ},{GRID})")
    return [launches[i] for i in sorted(launches)]


# ---------------------------------------------------------------------------------------------
# Steps and the table


def complete_steps(launches: list[Launch]) -> list[list[Launch]]:
    steps, cur = [], []
    for k in launches:
        cur.append(k)
        if STEP_END in k.name:
            steps.append(cur)
            cur = []
    return steps


def short_name(name: str) -> str:
    """ "void cuda::<unnamed>::gemv_kernel<__half, 1, 1>(T1 *, ...)" -> "gemv_kernel<__half, 1, 1>"."""
    n = name.strip()
    if n.startswith("void "):
        n = n[5:]
    if n.endswith(")"):                       # the argument list: its '(' matched from the end
        depth = 0
        for i in range(len(n) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(n[i], 0)
            if depth == 0:
                n = n[:i]
                break
    return ANON.sub("", n).strip()


@dataclass
class Row:
    kernel: str
    grid: int
    launches: int = 0
    us: float = 0.0
    mb: float = 0.0

    @property
    def tbps(self) -> float:
        return self.mb / self.us if self.us else 0.0


@dataclass
class Table:
    path: pathlib.Path
    step: int               # 0-based among the complete steps
    steps: int              # how many complete steps the file has
    first_id: int
    last_id: int
    left_out: int           # launches after the last complete step
    rows: list[Row]
    kernels: int
    us: float
    mb: float

    @property
    def tbps(self) -> float:
        return self.mb / self.us if self.us else 0.0


def step_table(path: pathlib.Path, step: int | None) -> Table:
    launches = read_launches(path)
    steps = complete_steps(launches)
    if not steps:
        raise Refused(f"{path}: no complete step: none of its {len(launches)} launches is a "
                      f"{STEP_END} (a step ends at one; was it in ncu's -k filter, and -c large enough?)")
    n = len(steps) - 1 if step is None else step
    if not 0 <= n < len(steps):
        raise Refused(f"{path}: --step {step}: it has {len(steps)} complete step"
                      f"{'s' if len(steps) != 1 else ''} (0-{len(steps) - 1})")
    chosen = steps[n]
    for k in chosen:
        for m in (TIME, READ, GRID):
            if m not in k.values:
                raise Refused(f"{path}:{k.line}: launch {k.id} ({short_name(k.name)}) has no {m} "
                              f"(ncu --metrics {TIME},{READ},{GRID})")
    rows: dict[tuple[str, int], Row] = {}
    for k in chosen:
        key = (short_name(k.name), k.grid)
        r = rows.setdefault(key, Row(*key))
        r.launches += 1
        r.us += k.us
        r.mb += k.mb
    ordered = sorted(rows.values(), key=lambda r: -r.us)     # stable: first launched first on ties
    total_us = sum(k.us for k in chosen)
    total_mb = sum(k.mb for k in chosen)
    return Table(path, n, len(steps), chosen[0].id, chosen[-1].id,
                 len(launches) - sum(len(s) for s in steps), ordered, len(chosen), total_us, total_mb)


def pct_of(tbps: float, peak_gbps: float) -> str:
    return f"{100 * tbps * 1000 / peak_gbps:.1f}%"


def render(t: Table, peak_gbps: float | None) -> str:
    last = ", the last" if t.step == t.steps - 1 else ""
    out = [f"### `{t.path.name}`: step {t.step} of its complete steps 0-{t.steps - 1}{last} "
           f"(launches {t.first_id}-{t.last_id})", ""]
    header = ["kernel", "grid", "launches", "µs / launch", "total µs", "share", "MB read / launch", "TB/s"]
    if peak_gbps:
        header.append("% of P")
    out.append("| " + " | ".join(header) + " |")
    out.append("|---|" + "---:|" * (len(header) - 1))
    for r in t.rows:
        cells = [f"`{r.kernel}`", str(r.grid), str(r.launches), f"{r.us / r.launches:.2f}", f"{r.us:.1f}",
                 f"{100 * r.us / t.us:.1f}%" if t.us else "-", f"{r.mb / r.launches:.3f}", f"{r.tbps:.2f}"]
        if peak_gbps:
            cells.append(pct_of(r.tbps, peak_gbps))
        out.append("| " + " | ".join(cells) + " |")
    p = f" ({pct_of(t.tbps, peak_gbps)} of P = {peak_gbps:g} GB/s)" if peak_gbps else ""
    out += ["", f"Total: {t.kernels} kernels, {t.us:.1f} µs (the sum of their isolated durations), "
                f"{t.mb:.1f} MB read from DRAM, {t.tbps:.2f} TB/s effective{p}."]
    if t.left_out:
        out.append(f"({t.left_out} launch{'es' if t.left_out != 1 else ''} after the last complete step "
                   f"(an unfinished step) left out.)")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------


def nonempty_path(text: str) -> pathlib.Path:
    """argparse type: a path, never the empty string (which Path() would take as '.')."""
    if not text:
        raise argparse.ArgumentTypeError("the path is empty ('')")
    return pathlib.Path(text)


def write_atomically(path: pathlib.Path, text: str) -> None:
    """The whole text or nothing: a temporary file beside it, renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main() -> int:
    ap = argparse.ArgumentParser(prog="ncu_step_table.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", type=nonempty_path, help="ncu --csv exports (one table each)")
    ap.add_argument("--step", type=int, metavar="N",
                    help="the N-th complete step, 0-based (default: the last complete step)")
    ap.add_argument("--peak-gbps", type=float, metavar="P",
                    help="add a column: TB/s as a %% of P GB/s (the D2D copy bandwidth of the GPU)")
    ap.add_argument("--out", type=nonempty_path, metavar="FILE",
                    help="write the markdown to FILE (whole, or not at all) instead of stdout")
    a = ap.parse_args()
    try:
        if a.step is not None and a.step < 0:
            raise Refused(f"--step {a.step}: must be >= 0 (0-based among the complete steps)")
        if a.peak_gbps is not None and not a.peak_gbps > 0:
            raise Refused(f"--peak-gbps {a.peak_gbps:g}: must be > 0 (GB/s)")
        if a.out is not None:
            if a.out.is_dir():
                raise Refused(f"--out {a.out}: is a folder; give the markdown file's name")
            if not a.out.parent.is_dir():
                raise Refused(f"--out {a.out}: its folder {a.out.parent} does not exist")
        text = "\n".join(render(step_table(p, a.step), a.peak_gbps) for p in a.csv)
        if a.out is None:
            sys.stdout.write(text)
        else:
            try:
                write_atomically(a.out, text)
            except OSError as e:
                raise Refused(f"--out {a.out}: cannot write it ({e.strerror or e})")
            print(f"{PROG}: wrote {a.out}")
    except Refused as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
