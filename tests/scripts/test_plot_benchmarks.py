#!/usr/bin/env python3
"""Tests of scripts/plot_benchmarks.py on a fixture cut from the H100 reference run
(tests/scripts/fixtures/benchmarks_h100_cut.json: 157 of the 256 results of
reference/results/h100/benchmarks.json, unchanged; left out are most BM_linear shapes, the
swap_blocks layouts other than random, the bf16/fp32 decode rotary_and_cache and the head-64
paged attention shapes planned for themselves). The selection and the verdicts are checked
without matplotlib; the figures (count, size) and where files go are checked where matplotlib is
installed and skipped otherwise.

  python3 tests/scripts/test_plot_benchmarks.py      (.venv/bin/python to draw the figures too)
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plot_benchmarks.py"
FIXTURE = ROOT / "tests" / "scripts" / "fixtures" / "benchmarks_h100_cut.json"

spec = importlib.util.spec_from_file_location("plot_benchmarks", SCRIPT)
pb = importlib.util.module_from_spec(spec)
sys.modules["plot_benchmarks"] = pb
spec.loader.exec_module(pb)

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
FIGURES = {"memory_roof.png", "paged_attention_scaling.png", "paged_attention_knobs.png", "small_kernels.png"}


def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def benches_of(data: dict) -> list:
    with tempfile.TemporaryDirectory() as d:
        f = pathlib.Path(d) / "b.json"
        f.write_text(json.dumps(data))
        return pb.load([f])[0]


def run(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


class Names(unittest.TestCase):
    def test_gb_suffixes_go_but_a_threads_argument_stays(self):
        self.assertEqual(pb.strip_suffixes("BM_paged_attention/batch:1/ctx:512/version:1/threads:128/manual_time"),
                         "BM_paged_attention/batch:1/ctx:512/version:1/threads:128")
        self.assertEqual(pb.strip_suffixes("BM_x/n:4/min_time:0.5/repeats:3/real_time/threads:8"), "BM_x/n:4")

    def test_threads_variants_are_distinct_benchmarks(self):
        names = {b.name for b in benches_of(fixture())}
        for t in (64, 128, 256, 512):
            self.assertIn(f"BM_paged_attention/batch:64/ctx:4096/version:1/threads:{t}", names)

    def test_repetitions_are_read_through_their_median(self):
        rows = [{"name": "BM_a/manual_time", "run_name": "BM_a/manual_time", "run_type": "iteration",
                 "real_time": t, "time_unit": "us", "pct_of_P": p} for t, p in ((10, 50), (30, 20))]
        rows.append({"name": "BM_a/manual_time_median", "run_name": "BM_a/manual_time", "run_type": "aggregate",
                     "aggregate_name": "median", "real_time": 20, "time_unit": "us", "pct_of_P": 35})
        rows.append({"name": "BM_a/manual_time_mean", "run_name": "BM_a/manual_time", "run_type": "aggregate",
                     "aggregate_name": "mean", "real_time": 99, "time_unit": "us", "pct_of_P": 1})
        bs = benches_of({"context": {}, "benchmarks": rows})
        self.assertEqual(len(bs), 1)
        self.assertEqual((bs[0].name, bs[0].time_us, bs[0].counters["pct_of_P"]), ("BM_a", 20, 35))

    def test_skipped_benchmarks_and_time_units(self):
        rows = [{"name": "BM_gone", "run_type": "iteration", "real_time": 0, "error_occurred": True},
                {"name": "BM_ns", "run_type": "iteration", "real_time": 2500, "time_unit": "ns"},
                {"name": "BM_ms", "run_type": "iteration", "real_time": 1.5, "time_unit": "ms"}]
        bs = {b.name: b.time_us for b in benches_of({"benchmarks": rows})}
        self.assertEqual(bs, {"BM_ns": 2.5, "BM_ms": 1500})


class Targets(unittest.TestCase):
    def setUp(self):
        self.benches = benches_of(fixture())
        self.vs, self.absent = pb.verdicts(self.benches)
        self.by = {v.name: v for v in self.vs}

    def test_every_target_is_judged_on_the_fixture(self):
        self.assertEqual(self.absent, [])
        self.assertEqual(len(self.vs), sum(len(t.names) for t in pb.TARGETS))

    def test_the_h100_verdicts(self):
        missed = {v.name for v in self.vs if not v.met}
        self.assertEqual(missed, {"BM_paged_attention/target_b64_ctx4096", "BM_paged_attention/target_b1_ctx4096",
                                  "BM_reshape_and_cache/fp16/tokens:4096/kv_heads:8/head:128"})
        self.assertAlmostEqual(self.by["BM_paged_attention/target_b64_ctx4096"].measured, 73.43, places=1)
        self.assertAlmostEqual(self.by["BM_paged_attention/target_b1_ctx4096"].measured, 24.37, places=1)
        self.assertAlmostEqual(self.by["BM_reshape_and_cache/fp16/tokens:4096/kv_heads:8/head:128"].measured,
                               67.3, places=1)
        self.assertTrue(self.by["BM_rms_norm/tokens:16384/hidden:8192"].met)
        self.assertTrue(self.by["BM_swap_blocks/in/random/automatic"].met)

    def test_tuning_variants_and_other_ops_are_not_judged(self):
        # the v2 partition sweep at the target's shape, and rotary_and_cache, have no target
        for n in ("BM_paged_attention/batch:64/ctx:4096/version:2/partition:512",
                  "BM_rotary_and_cache/fp16/tokens:4096/heads:32/kv_heads:8/head:128",
                  "BM_rotary_embedding/gptj/fp16/tokens:4096/heads:32/kv_heads:8/head:128",
                  "BM_sample/mix:0"):
            self.assertIsNone(pb.verdict_for(n, self.vs), n)

    def test_a_target_turns_with_the_number(self):
        data = fixture()
        for r in data["benchmarks"]:
            if r["name"].startswith("BM_paged_attention/target_b64_ctx4096"):
                r["pct_of_P"] = 91.0
        vs, _ = pb.verdicts(benches_of(data))
        self.assertTrue(pb.verdict_for("BM_paged_attention/target_b64_ctx4096", vs).met)

    def test_the_table_says_missed_and_counts(self):
        buf = io.StringIO()
        with redirect_stdout(buf):
            missed = pb.print_table(self.benches, {"gpu": "G", "d2d_copy_GBps": "2986.9"})
        text = buf.getvalue()
        self.assertEqual(missed, 3)
        self.assertIn("8 met, 3 missed, 0 not measured", text)
        line = next(l for l in text.splitlines() if "BM_paged_attention/target_b64_ctx4096" in l and "goal" not in l
                    and l.startswith("  paged"))
        self.assertIn("MISSED", line)
        self.assertIn("73.4%", line)
        self.assertIn("P (D2D copy, read+write): 2987 GB/s", text)

    def test_an_absent_target_benchmark_is_said(self):
        data = fixture()
        data["benchmarks"] = [r for r in data["benchmarks"] if not r["name"].startswith("BM_silu_and_mul")]
        buf = io.StringIO()
        with redirect_stdout(buf):
            pb.print_table(benches_of(data), {})
        self.assertRegex(buf.getvalue(), r"silu_and_mul 4096x14336 .* absent .*not in this run")
        self.assertIn("1 not measured", buf.getvalue())


class Selection(unittest.TestCase):
    def setUp(self):
        self.benches = benches_of(fixture())

    def test_the_roof_has_the_headline_shapes_and_at_most_30_rows(self):
        found, left_out = pb.select_rows(self.benches, pb.ROOF_ROWS)
        self.assertEqual(left_out, 0)
        self.assertLessEqual(len(found), pb.MAX_ROWS)
        labels = [r.label for r, _ in found]
        self.assertEqual(len(found), len(pb.ROOF_ROWS))  # the fixture has every row
        rope = dict(found)[next(r for r in pb.ROOF_ROWS if r.label.startswith("rotary_embedding neox"))]
        self.assertEqual(sorted(e.dtype for e in rope), ["bf16", "fp16", "fp32"])
        self.assertIn("paged_attention B=64, ctx 4096", labels)
        names = pb.shown_names(found)
        self.assertNotIn("BM_paged_attention/batch:64/ctx:4096/version:2/partition:512", names)

    def test_rows_beyond_30_are_counted_not_drawn(self):
        many = [pb.Row(f"r{i}", "BM_rms_norm/tokens:16384/hidden:8192") for i in range(33)]
        found, left_out = pb.select_rows(self.benches, many)
        self.assertEqual((len(found), left_out), (30, 3))

    def test_the_scaling_grid_is_batch_by_context_by_version(self):
        grid = pb.sweep_grid(self.benches)
        self.assertEqual(list(grid), [1, 16, 64, 256])
        for batch, by_v in grid.items():
            self.assertEqual(set(by_v), {"auto (the engine's choice)", "v1", "v2"})
            for v, pts in by_v.items():
                # the threads sweep's v1 points at ctx 4096 / threads 128 stay out of the lines
                self.assertEqual([c for c, _ in pts], [512, 2048, 8192], (batch, v))
        self.assertAlmostEqual(grid[64]["v1"][2][1].counters["pct_of_P"], 22.5, places=1)

    def test_knobs_are_sweeps_of_one_knob(self):
        threads = pb.knob_series(self.benches, pb.THREADS_RE)
        self.assertEqual(list(threads), ["B=16, ctx 4096", "B=64, ctx 4096", "B=256, ctx 2048"])
        self.assertEqual([t for t, _ in threads["B=64, ctx 4096"]], [64, 128, 256, 512])
        parts = pb.knob_series(self.benches, pb.PARTITION_RE)
        self.assertEqual(list(parts), ["B=1, ctx 4096", "B=16, ctx 4096", "B=64, ctx 4096", "B=256, ctx 8192"])

    def test_small_kernels_pair_the_engine_with_what_it_replaced(self):
        found, _ = pb.select_rows(self.benches, pb.SMALL_ROWS)
        self.assertLessEqual(len(found), pb.MAX_ROWS)
        alt = [r.label for r, _ in found if r.alt]
        self.assertIn("  cuBLAS", alt)
        self.assertTrue(all(len(es) == 1 for _, es in found))
        b1 = next(es[0].bench for r, es in found if es[0].bench.name == "BM_paged_attention/target_b1_ctx4096")
        self.assertAlmostEqual(b1.time_us, 24.37, places=1)

    def test_a_filtered_run_draws_only_what_it_has(self):
        data = fixture()
        data["benchmarks"] = [r for r in data["benchmarks"] if r["name"].startswith("BM_rms_norm")]
        bs = benches_of(data)
        self.assertEqual(pb.sweep_grid(bs), {})
        self.assertEqual(pb.knob_series(bs, pb.THREADS_RE), {})
        found, _ = pb.select_rows(bs, pb.ROOF_ROWS)
        self.assertEqual([r.label for r, _ in found], ["rms_norm 16384 x 8192"])


def with_prefill(data: dict) -> dict:
    """The fixture plus made-up BM_prefill_attention rows (the H100 run predates them): two
    shapes, the second without its decode-kernel row."""
    rows = []
    for shape, kinds in (("dtype:fp16/head:64/seqs:4/len:2048", ("prefill", "decode")),
                         ("dtype:fp16/head:64/seqs:1/len:8192", ("prefill",))):
        for i, kind in enumerate(kinds):
            tf = 300.0 if kind == "prefill" else 30.0
            n = f"BM_prefill_attention/{shape}/kernel:{kind}/manual_time"
            rows.append({"name": n, "run_name": n, "run_type": "iteration", "real_time": 100.0 * (1 + 9 * i),
                         "time_unit": "us", "TFLOP/s": tf, "gemm_TFLOP/s": 600.0, "pct_of_gemm": tf / 6,
                         "pct_of_P": 5.0, "GB/s": 150.0})
    data["benchmarks"] += rows
    return data


class Prefill(unittest.TestCase):
    def test_shapes_pair_the_two_kernels(self):
        shapes = pb.prefill_shapes(benches_of(with_prefill(fixture())))
        self.assertEqual([s for s, _ in shapes], ["fp16, head 64, 4 x 2048 tokens", "fp16, head 64, 1 x 8192 tokens"])
        self.assertEqual(sorted(shapes[0][1]), ["decode", "prefill"])
        self.assertEqual(sorted(shapes[1][1]), ["prefill"])

    def test_the_table_shows_prefill_against_the_gemm_not_p(self):
        bs = benches_of(with_prefill(fixture()))
        b = next(b for b in bs if b.name.startswith("BM_prefill_attention"))
        self.assertEqual(b.ref_metric(), "pct_of_gemm")


class CommandLine(unittest.TestCase):
    def test_table_writes_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            d = pathlib.Path(d)
            src = d / "in.json"
            src.write_text(FIXTURE.read_text())
            r = run("--table", str(src), cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("3 missed", r.stdout)
            self.assertEqual(sorted(p.name for p in d.iterdir()), ["in.json"])

    def test_strict_fails_on_a_missed_target(self):
        r = run("--table", "--strict", str(FIXTURE))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_only_wrong_inputs_fail(self):
        with tempfile.TemporaryDirectory() as d:
            bad = pathlib.Path(d) / "rows.json"
            bad.write_text(json.dumps({"benchmarks": [{"name": "BM_x"}]}))
            r = run("--table", str(bad))
            self.assertNotEqual(r.returncode, 0)
            self.assertNotIn("Traceback", r.stderr)
            self.assertIn("rows.json", r.stderr)


@unittest.skipUnless(HAVE_MPL, "matplotlib is not installed (use .venv/bin/python to draw)")
class Figures(unittest.TestCase):
    def snapshot(self, d: pathlib.Path) -> dict[str, float]:
        return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*")}

    def test_four_screen_sized_figures_only_inside_out(self):
        import matplotlib.image as mpimg
        with tempfile.TemporaryDirectory() as d:
            d = pathlib.Path(d)
            (d / "results").mkdir()
            src = d / "results" / "benchmarks.json"
            src.write_text(FIXTURE.read_text())
            out = d / "elsewhere" / "figs"
            before = self.snapshot(d)
            r = run(str(src), "--out", str(out), cwd=d / "results")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            after = self.snapshot(d)
            new = {p for p in after if p not in before or after[p] != before[p]}
            self.assertEqual(new, {"elsewhere", "elsewhere/figs"} | {f"elsewhere/figs/{f}" for f in FIGURES})
            for f in FIGURES:
                self.assertIn(str(out / f), r.stdout)
                umask = os.umask(0)
                os.umask(umask)
                self.assertEqual((out / f).stat().st_mode & 0o777, 0o666 & ~umask, f"{f}: its mode")
                h, w = mpimg.imread(out / f).shape[:2]
                self.assertEqual(w, 1100, f)
                self.assertGreaterEqual(h, 600, f)
                self.assertLessEqual(h, 1400, f)

    def test_prefill_rows_get_their_figure(self):
        import matplotlib.image as mpimg
        with tempfile.TemporaryDirectory() as d:
            d = pathlib.Path(d)
            src = d / "b.json"
            src.write_text(json.dumps(with_prefill(fixture())))
            r = run(str(src), "--out", str(d / "o"))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual({p.name for p in (d / "o").iterdir()}, FIGURES | {"prefill_attention.png"})
            self.assertEqual(mpimg.imread(d / "o" / "prefill_attention.png").shape[:2], (605, 1100))

    def test_default_out_is_plots_beside_the_input(self):
        with tempfile.TemporaryDirectory() as d:
            d = pathlib.Path(d)
            src = d / "benchmarks.json"
            data = fixture()
            data["benchmarks"] = [r for r in data["benchmarks"] if r["name"].startswith("BM_rms_norm")]
            src.write_text(json.dumps(data))
            r = run(str(src), cwd=ROOT)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # a filtered run: the figures without benchmarks are not drawn
            self.assertEqual(sorted(p.name for p in (d / "plots").iterdir()), ["memory_roof.png", "small_kernels.png"])
            self.assertEqual(sorted(p.name for p in d.iterdir()), ["benchmarks.json", "plots"])

    def test_an_out_that_cannot_be_made_is_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            blocker = pathlib.Path(d) / "file"
            blocker.write_text("x")
            r = run(str(FIXTURE), "--out", str(blocker / "sub"))
            self.assertNotEqual(r.returncode, 0)
            self.assertNotIn("Traceback", r.stderr)
            self.assertTrue(r.stderr.strip().splitlines()[-1].startswith("plot_benchmarks: --out"), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=1)
