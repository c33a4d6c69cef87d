#!/usr/bin/env python3
"""Tests of scripts/plot_timeline.py on a small trace fixture (tests/scripts/fixtures/
timeline_two_steps.json: what `day18 trace` writes for the hand-made records of
tests/labs/05/fixture_two_steps.json, two decode steps; test_chrome_trace.cpp keeps the two in
step). The lanes and their numbers are checked without matplotlib; the drawing (PNG and SVG) is
checked where matplotlib is installed and skipped otherwise.

  python3 tests/scripts/test_plot_timeline.py        (ctest runs it: PlotTimeline.ItsPythonTestsPass)
"""
from __future__ import annotations

import copy
import importlib.util
import io
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plot_timeline.py"
FIXTURE = ROOT / "tests" / "scripts" / "fixtures" / "timeline_two_steps.json"

spec = importlib.util.spec_from_file_location("plot_timeline", SCRIPT)
pt = importlib.util.module_from_spec(spec)
sys.modules["plot_timeline"] = pt
spec.loader.exec_module(pt)

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def cpu_only(trace: dict) -> dict:
    """The fixture as the CPU backend would write it: no GPU process, no CUDA calls."""
    t = copy.deepcopy(trace)
    t["traceEvents"] = [e for e in t["traceEvents"] if e["pid"] == 1 and e.get("cat", "engine") == "engine"
                        and e.get("tid") != 0x7fff0000]
    return t


class Classification(unittest.TestCase):
    def test_the_innermost_engine_range_decides(self):
        k = {"name": "sm90_xmma_gemm", "args": {"range": "Norm", "range_path": "Launch > ModelExecutor > Attention > Norm"}}
        self.assertEqual(pt.classify_kernel(k), "Norm")
        k["args"] = {"range": "MLP", "range_path": "Launch > ModelExecutor > MLP"}
        self.assertEqual(pt.classify_kernel(k), "MLP")
        k["args"] = {"range": "Sampling", "range_path": "Launch > Sampling"}
        self.assertEqual(pt.classify_kernel(k), "Sample")

    def test_a_fused_norm_gemv_belongs_to_its_layer_part(self):
        k = {"name": "rms_norm_linear_kernel", "args": {"range": "Norm+GEMV",
                                                        "range_path": "Launch > ModelExecutor > MLP > Norm+GEMV"}}
        self.assertEqual(pt.classify_kernel(k), "MLP")

    def test_without_a_range_the_name_decides(self):
        for name, cls in [("void paged_attention_v1_kernel<half>", "Attention"),
                          ("rotary_embedding_kernel", "Attention"), ("fused_add_rms_norm_kernel", "Norm"),
                          ("silu_and_mul_kernel", "MLP"), ("argmax_kernel", "Sample"),
                          ("embedding_kernel", "Other")]:
            self.assertEqual(pt.classify_kernel({"name": name, "args": {}}), cls, name)
        # The engine's model-level range alone (embedding, LM head) says nothing: the name decides.
        self.assertEqual(pt.classify_kernel({"name": "gemv_kernel", "args": {"range_path": "Launch > ModelExecutor"}}),
                         "Other")


class Lanes(unittest.TestCase):
    def test_steps_window_and_cpu_lane(self):
        t = pt.build_timeline(fixture(), n_steps=2)
        self.assertEqual(t.steps, [5, 6])
        self.assertTrue(t.gpu_traced)
        self.assertEqual(t.window, (0.0, 210.0))
        labels = [(b.label, b.step) for b in t.cpu.blocks]
        self.assertEqual(labels, [("Schedule", 5), ("Prepare Inputs", 5), ("Launch", 5), ("Schedule", 6),
                                  ("Prepare Inputs", 6), ("Launch", 6), ("Wait", 5), ("Process Outputs", 5),
                                  ("Wait", 6), ("Process Outputs", 6)])

    def test_gpu_lanes_are_the_streams_in_step_order_with_classes_and_idle(self):
        t = pt.build_timeline(fixture(), n_steps=2)
        self.assertEqual([lane.name for lane in t.gpu], ["H2D", "compute", "D2H"])
        compute = t.gpu[1]
        kernels = sorted((b for b in compute.blocks if b.kind != "idle"), key=lambda b: b.start)
        self.assertEqual([b.kind for b in kernels],
                         ["Norm", "Attention", "MLP", "Sample", "Norm", "Attention", "MLP", "Sample"])
        idle = sorted((b.start, b.end) for b in compute.blocks if b.kind == "idle")
        self.assertEqual(idle, [(40.0, 42.0), (92.0, 100.0), (104.0, 106.0), (120.0, 130.0)])
        h2d = [(b.start, b.end, b.step) for b in t.gpu[0].blocks]
        self.assertEqual(h2d, [(23.0, 25.0, 5), (83.0, 85.0, 6)])
        # The overlap the diagram is for: step 6's H2D runs during step 5's kernels [30, 104].
        s5 = [b for b in kernels if b.step == 5]
        self.assertTrue(min(b.start for b in s5) < 83.0 < max(b.end for b in s5))

    def test_idle_gaps_lie_between_blocks_inside_the_window(self):
        B = pt.Block
        blocks = [B(0, 10, "", "x"), B(5, 12, "", "x"), B(20, 30, "", "x"), B(50, 60, "", "x")]
        self.assertEqual([(g.start, g.end) for g in pt.idle_gaps(blocks, (0, 55))], [(12, 20), (30, 50)])
        self.assertEqual(pt.idle_gaps([], (0, 10)), [])

    def test_choosing_steps(self):
        stages = pt.stage_blocks(fixture(), pt.engine_thread(fixture()))
        self.assertEqual(pt.complete_steps(stages), [5, 6])
        self.assertEqual(pt.select_steps(stages, 1, None), [6])  # the middle one: past the warm-up
        self.assertEqual(pt.select_steps(stages, 5, None), [5, 6])  # all there are
        self.assertEqual(pt.select_steps(stages, 1, 6), [6])
        with self.assertRaises(SystemExit):
            pt.select_steps(stages, 1, 9)

    def test_a_cpu_backend_trace_draws_the_hosts_forward_instead(self):
        t = pt.build_timeline(cpu_only(fixture()), n_steps=2)
        self.assertFalse(t.gpu_traced)
        self.assertIn("CPU backend", t.title)
        self.assertEqual([lane.name for lane in t.gpu], ["host forward"])
        kinds = {b.kind for b in t.gpu[0].blocks}
        self.assertTrue({"Attention", "MLP", "Norm", "Sample"} <= kinds, kinds)

    def test_summary_has_a_line_per_step_and_lane(self):
        text = pt.summary(pt.build_timeline(fixture(), n_steps=2))
        self.assertIn("step 5: CPU Schedule 10.0", text)
        self.assertIn("compute: busy 82.0 us, idle 22.0 us", text)

    def test_not_a_trace_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as d:
            p = pathlib.Path(d) / "x.json"
            p.write_text('{"events": []}')
            with self.assertRaises(SystemExit) as e:
                pt.load_trace(p)
            self.assertIn("traceEvents", str(e.exception))


class CommandLine(unittest.TestCase):
    def run_script(self, *args):
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)

    def test_help_works_and_teaches(self):
        r = self.run_script("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("--steps", "--out", "Schedule", "Attention", "day18 trace"):
            self.assertIn(word, r.stdout)

    def test_bad_arguments_exit_2(self):
        self.assertEqual(self.run_script(str(FIXTURE), "--out", "/tmp/x.png", "--steps", "0").returncode, 2)
        self.assertEqual(self.run_script(str(FIXTURE)).returncode, 2)  # neither --out nor --summary

    def test_summary_needs_no_matplotlib(self):
        r = self.run_script(str(FIXTURE), "--summary", "--steps", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("steps 5-6", r.stdout)

    @unittest.skipUnless(HAVE_MPL, "matplotlib is not installed (scripts/lab setup puts it in .venv)")
    def test_draws_png_and_svg(self):
        with tempfile.TemporaryDirectory() as d:
            out = pathlib.Path(d) / "timeline.png"
            with redirect_stdout(io.StringIO()):
                self.assertEqual(pt.main([str(FIXTURE), "--out", str(out), "--steps", "2"]), 0)
            self.assertEqual(out.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
            svg = out.with_suffix(".svg").read_text()
            self.assertIn("<svg", svg)
            cpu = pathlib.Path(d) / "cpu.png"
            trace = pathlib.Path(d) / "cpu.json"
            trace.write_text(json.dumps(cpu_only(fixture())))
            with redirect_stdout(io.StringIO()):
                self.assertEqual(pt.main([str(trace), "--out", str(cpu), "--no-svg"]), 0)
            self.assertTrue(cpu.exists())
            self.assertFalse(cpu.with_suffix(".svg").exists())


if __name__ == "__main__":
    unittest.main(verbosity=2)
