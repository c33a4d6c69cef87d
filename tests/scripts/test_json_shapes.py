#!/usr/bin/env python3
"""Every entry point that reads a JSON file answers a file of the wrong shape with one clear line
that names the file (and the key, when a key is at fault), a non-zero exit, and no output
written: never a traceback, a library's bare type error ("[json.exception.type_error.302]"),
an "unexpected error", or a figure or page half made (issue 11, section 2).

  python3 tests/scripts/test_json_shapes.py --day18 build/engine/day18
  (ctest runs it: CliBadInput.JsonOfTheWrongShapeIsNamedWithItsFileAndKey)

Each entry point is run on a valid file it reads (a test fixture), mutated: a key removed, a
number where an object is expected (and where a list is), a string where a number is, an object
where a string is, the file cut in half, a bare number instead of the document. The mutations are
spread over the whole document (every level, the first and last element of each list) and are
the same on every run. A mutation the entry point does not care about (a field it does not read)
may succeed; one it does care about must be refused as above.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
DAY18 = os.environ.get("DAY18_BIN", str(ROOT / "build" / "engine" / "day18"))
REPORT = ROOT / "tests/engine/report/data"
PROFILING = ROOT / "tests/engine/profiling/data"
TRACE_ARGS = ["--peak-bw", "4000", "--preset", "llama-1b", "--batch", "1", "--context", "512"]
PATHS_PER_FILE = int(os.environ.get("JSON_SHAPES_PATHS", "10"))
ONLY = os.environ.get("JSON_SHAPES_ONLY", "")  # run the entry points whose name contains this


def day18(*args: str):
    return lambda f, o: [DAY18, *[a.format(f=f, o=o) for a in args]]


def script(name: str, *args: str):
    return lambda f, o: [sys.executable, str(ROOT / "scripts" / name), *[a.format(f=f, o=o) for a in args]]


# name, fixture, command (input {f}, output folder {o}), outputs that must not exist after a
# refusal (relative to {o}), needs matplotlib to get past its import.
ENTRIES = [
    ("report --probe", REPORT / "bandwidth.json", day18("report", "--no-plots", "--probe", "{f}", "--out", "{o}/r"), ["r"], False),
    ("report --roof", REPORT / "roof.json", day18("report", "--no-plots", "--roof", "{f}", "--out", "{o}/r"), ["r"], False),
    ("report --trace-metrics", REPORT / "trace.metrics.json", day18("report", "--no-plots", "--trace-metrics", "{f}", "--out", "{o}/r"), ["r"], False),
    ("report --analysis", REPORT / "analysis.json", day18("report", "--no-plots", "--analysis", "{f}", "--out", "{o}/r"), ["r"], False),
    ("report --tune (block size)", REPORT / "block_size.json", day18("report", "--no-plots", "--tune", "{f}", "--out", "{o}/r"), ["r"], False),
    ("report --tune (batch size)", REPORT / "batch_size.json", day18("report", "--no-plots", "--tune", "{f}", "--out", "{o}/r"), ["r"], False),
    ("report --tune (precision)", REPORT / "precision.json", day18("report", "--no-plots", "--tune", "{f}", "--out", "{o}/r"), ["r"], False),
    ("tune show", REPORT / "block_size.json", day18("tune", "show", "{f}"), [], False),
    ("classify --trace", PROFILING / "decode_trace_handmade.json", day18("classify", "--trace", "{f}", *TRACE_ARGS, "--json", "{o}/a.json"), ["a.json"], False),
    ("analyze --trace", PROFILING / "decode_trace_handmade.json", day18("analyze", "--trace", "{f}", *TRACE_ARGS, "--out", "{o}/a.md"), ["a.md"], False),
    ("analyze --roof", REPORT / "roof.json", day18("analyze", "--ncu", str(PROFILING / "details_page.csv"), "--roof", "{f}", "--out", "{o}/a.md"), ["a.md"], False),
    ("plot_bandwidth.py", ROOT / "reference/results/h200/bandwidth/bandwidth.json", script("plot_bandwidth.py", "{f}", "--check"), [], False),
    ("plot_roofline.py", REPORT / "analysis.json", script("plot_roofline.py", "{f}", "--out", "{o}/roof.png"), ["roof.png"], True),
    ("plot_timeline.py", ROOT / "tests/scripts/fixtures/timeline_two_steps.json", script("plot_timeline.py", "{f}", "--summary"), [], False),
    ("plot_experiments.py", REPORT / "block_size.json", script("plot_experiments.py", "{f}", "--check"), [], False),
    ("bench_decode.py --plot-only", ROOT / "reference/results/h100/decode_sweep.json", script("bench_decode.py", "--plot-only", "{f}", "--out", "{o}/b"), ["b/in_decode_sweep.png"], True),
    ("plot_lab.py", ROOT / "reference/results/h200/labs/lab02_solution.json", script("plot_lab.py", "{f}", "--out", "{o}/lab.png"), ["lab.png"], True),
]

FORBIDDEN = ("Traceback", "unexpected error", "terminate called", "json.exception", "Segmentation")


def paths(j: object, pre: tuple = ()) -> list[tuple]:
    """Every path into the document: each key of each object, the first and last element of
    each list (breadth first, so that a spread over the list covers every level)."""
    out, level = [], [(pre, j)]
    while level:
        nxt = []
        for p, v in level:
            if isinstance(v, dict):
                nxt += [(p + (k,), x) for k, x in v.items()]
            elif isinstance(v, list) and v:
                nxt += [(p + (i,), v[i]) for i in sorted({0, len(v) - 1})]
        out += [p for p, _ in nxt]
        level = nxt
    return out


def get(j: object, p: tuple) -> object:
    for k in p:
        j = j[k]
    return j


def mutations(j: object) -> list[tuple[str, object, str]]:
    """(what, the mutated document, the key at fault) for paths spread over the document."""
    ps = paths(j)
    step = max(1, len(ps) // PATHS_PER_FILE)
    out = []
    for p in ps[::step][:PATHS_PER_FILE]:
        v, key = get(j, p), str(p[-1])
        kinds = []
        if isinstance(p[-1], str):
            kinds.append(("missing", None))
        if isinstance(v, dict):
            kinds.append(("a number where an object is", 7))
        if isinstance(v, list):
            kinds.append(("a number where a list is", 7))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            kinds.append(("a string where a number is", "abc"))
        if isinstance(v, str):
            kinds.append(("an object where a string is", {"x": 1}))
        for what, rep in kinds:
            m = copy.deepcopy(j)
            parent = get(m, p[:-1])
            if what == "missing":
                del parent[p[-1]]
            else:
                parent[p[-1]] = rep
            out.append((f"{'.'.join(map(str, p))}: {what}", m, key))
    return out


def run_case(entry, what: str, text: str, key: str | None) -> str | None:
    """The problem with one run, or None."""
    name, fixture, command, outputs, _ = entry
    with tempfile.TemporaryDirectory() as d:
        f = pathlib.Path(d) / f"in_{fixture.name}"
        f.write_text(text)
        o = pathlib.Path(d) / "out"
        o.mkdir()
        try:
            r = subprocess.run(command(str(f), str(o)), capture_output=True, text=True, timeout=120,
                               cwd=d)
        except subprocess.TimeoutExpired:
            return f"{name} [{what}]: hangs"
        said = (r.stdout + r.stderr).strip()
        for bad in FORBIDDEN:
            if bad in said:
                return f"{name} [{what}]: '{bad}' in the output:\n{said[-1500:]}"
        if r.returncode == 0:
            return None
        if r.returncode < 0 or r.returncode not in (1, 2):
            return f"{name} [{what}]: exit {r.returncode}:\n{said[-1500:]}"
        err = [ln for ln in r.stderr.splitlines() if ln.strip()]
        if len(err) != 1:
            return f"{name} [{what}]: {len(err)} lines on stderr, not one:\n{r.stderr[-1500:]}"
        if f.name not in err[0]:
            return f"{name} [{what}]: the message does not name the file:\n{err[0]}"
        if key is not None and key not in err[0]:
            return f"{name} [{what}]: the message does not name the key '{key}':\n{err[0]}"
        for out in outputs:
            if (o / out).exists():
                return f"{name} [{what}]: refused but wrote {out}"
    return None


class JsonShapes(unittest.TestCase):
    def test_every_entry_point_on_every_mutation(self) -> None:
        self.assertTrue(pathlib.Path(DAY18).exists(), f"{DAY18} not found: build day18, or pass --day18")
        jobs = []
        for entry in ENTRIES:
            name, fixture, _, _, needs_mpl = entry
            if (needs_mpl and not HAVE_MPL) or ONLY not in name:
                continue
            text = fixture.read_text()
            doc = json.loads(text)
            cases = [(w, json.dumps(m), k) for w, m, k in mutations(doc)]
            cases += [("cut in half", text[: len(text) // 2], None), ("a bare number", "7", None)]
            jobs += [(entry, *c) for c in cases]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            problems = [p for p in pool.map(lambda j: run_case(*j), jobs) if p]
        self.assertEqual(problems, [], f"{len(problems)} of {len(jobs)} runs:\n\n" + "\n\n".join(problems))
        self.assertGreater(len(jobs), 200 if not ONLY else 0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--day18", help="the day18 executable (default: build/engine/day18, or $DAY18_BIN)")
    a, rest = ap.parse_known_args()
    if a.day18:
        DAY18 = str(pathlib.Path(a.day18).resolve())
    unittest.main(argv=[sys.argv[0], *rest], verbosity=1)
