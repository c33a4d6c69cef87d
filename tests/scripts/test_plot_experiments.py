#!/usr/bin/env python3
"""Tests of scripts/plot_experiments.py on the experiment fixtures of tests/engine/report/data
(hand-made files in the day18.tune.v1 contract). The checks and the knee are tested without
matplotlib; the drawing is tested where matplotlib is installed and skipped otherwise.

  python3 tests/scripts/test_plot_experiments.py   (ctest runs it: PlotExperiments.ItsPythonTestsPass)
"""
from __future__ import annotations

import copy
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "plot_experiments.py"
DATA = ROOT / "tests" / "engine" / "report" / "data"
FILES = [DATA / "block_size.json", DATA / "batch_size.json", DATA / "precision.json"]

spec = importlib.util.spec_from_file_location("plot_experiments", SCRIPT)
pe = importlib.util.module_from_spec(spec)
sys.modules["plot_experiments"] = pe
spec.loader.exec_module(pe)

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


class Reading(unittest.TestCase):
    def test_the_fixtures_pass_the_checks(self):
        for f in FILES:
            d = pe.load(f)
            self.assertIn(d["experiment"], pe.KINDS)

    def test_the_knee_is_the_largest_batch_within_125_percent_of_the_smallest(self):
        d = pe.load(DATA / "batch_size.json")
        g = d["groups"][0]
        k = pe.knee(g)
        self.assertEqual(g["points"][k]["label"], "batch 16")
        self.assertTrue(g["points"][k]["extra"].get("knee"))  # day18 tune's mark agrees

    def test_no_knee_with_fewer_than_two_timed_points(self):
        g = {"points": [{"correct": True, "median_us": 1.0, "p20_us": 1.0, "p80_us": 1.0}]}
        self.assertEqual(pe.knee(g), -1)

    def test_failed_points_are_out_of_the_knee(self):
        g = {"points": [{"correct": True, "median_us": 10.0},
                        {"correct": False},
                        {"correct": True, "median_us": 12.0},
                        {"correct": True, "median_us": 20.0}]}
        self.assertEqual(pe.knee(g), 2)

    def test_noise_is_overlapping_p20_p80_ranges(self):
        a = {"p20_us": 1.0, "p80_us": 2.0}
        self.assertTrue(pe.within_noise(a, {"p20_us": 1.9, "p80_us": 3.0}))
        self.assertFalse(pe.within_noise(a, {"p20_us": 2.1, "p80_us": 3.0}))


class BadInput(unittest.TestCase):
    def check_one_line_error(self, p: subprocess.CompletedProcess, *words: str):
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        for w in words:
            self.assertIn(w, p.stderr)

    def edited(self, edit) -> pathlib.Path:
        d = json.loads((DATA / "block_size.json").read_text())
        edit(d)
        tmp = pathlib.Path(tempfile.mkdtemp()) / "edited.json"
        tmp.write_text(json.dumps(d))
        return tmp

    def test_a_missing_file(self):
        self.check_one_line_error(run("/no/such.json", "--check"), "/no/such.json", "cannot read it")

    def test_a_malformed_file(self):
        tmp = pathlib.Path(tempfile.mkdtemp()) / "bad.json"
        tmp.write_text("{\"schema\": ")
        self.check_one_line_error(run(str(tmp), "--check"), "not JSON")

    def test_another_schema(self):
        self.check_one_line_error(run(str(DATA / "analysis.json"), "--check"), "schema is None", "day18.tune.v1")

    def test_a_best_that_failed_its_check(self):
        p = self.edited(lambda d: d["groups"][0].__setitem__("best", 4))
        self.check_one_line_error(run(str(p), "--check"), "groups[0]", "the best (point 4) failed")

    def test_a_timed_point_without_its_median(self):
        p = self.edited(lambda d: d["groups"][1]["points"][0].pop("median_us"))
        self.check_one_line_error(run(str(p), "--check"), "groups[1].points[0]", "median_us")

    def test_two_files_of_one_name(self):
        tmp = pathlib.Path(tempfile.mkdtemp()) / "block_size.json"
        tmp.write_text((DATA / "block_size.json").read_text())
        self.check_one_line_error(run(str(DATA / "block_size.json"), str(tmp), "--check"), "same name")

    def test_best_minus_one_is_accepted_but_not_minus_two(self):
        p = self.edited(lambda d: d["groups"][0].__setitem__("best", -2))
        self.check_one_line_error(run(str(p), "--check"), "is not -1 or a point index")

    def test_drawing_needs_out(self):
        self.check_one_line_error(run(str(FILES[0])), "--out DIR is required")


class Check(unittest.TestCase):
    def test_check_prints_each_figure_without_matplotlib(self):
        p = run(*map(str, FILES), "--check")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("block_size.json -> block_size.png: block_size, 3 group(s), 12 timed point(s), 1 failed its check", p.stdout)
        self.assertIn("best 256 threads vs baseline 128 threads 1.03x (within noise)", p.stdout)
        self.assertIn("knee batch 16", p.stdout)

    def test_help_teaches_without_matplotlib(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("weight-read floor", p.stdout)


def failed(p: dict) -> dict:
    return {"config": p["config"], "label": p["label"], "correct": False, "max_abs_err": 0.5,
            "tolerance": p["tolerance"], "extra": {}}


def no_result_and_no_baseline() -> pathlib.Path:
    """block_size.json with day18 tune's two degenerate groups: every point failed (best -1) and
    the baseline failed."""
    d = json.loads((DATA / "block_size.json").read_text())
    g = d["groups"][1]
    g["points"] = [failed(p) for p in g["points"]]
    g.update(best=-1, speedup=0, within_noise=False)
    g0 = d["groups"][0]
    g0["points"][1] = failed(g0["points"][1])
    g0["speedup"] = 0
    tmp = pathlib.Path(tempfile.mkdtemp()) / "degenerate.json"
    tmp.write_text(json.dumps(d))
    return tmp


class Degenerate(unittest.TestCase):
    def test_check_says_there_is_no_result(self):
        p = run(str(no_result_and_no_baseline()), "--check")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("no configuration passed its check", p.stdout)
        self.assertIn("the baseline failed its check: no speedup", p.stdout)

    @unittest.skipUnless(HAVE_MPL, "no matplotlib")
    def test_it_still_draws(self):
        f = no_result_and_no_baseline()
        p = run(str(f), "--out", str(f.parent))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue((f.parent / "degenerate.png").exists())


@unittest.skipUnless(HAVE_MPL, "no matplotlib (scripts/lab setup makes .venv with it)")
class Drawing(unittest.TestCase):
    def test_one_png_per_experiment_sized_for_a_screen(self):
        out = pathlib.Path(tempfile.mkdtemp())
        p = run(*map(str, FILES), "--out", str(out))
        self.assertEqual(p.returncode, 0, p.stderr)
        for f in FILES:
            png = out / f"{f.stem}.png"
            self.assertTrue(png.exists(), png)
            # PNG header: width and height (big-endian) at bytes 16..24; 10 x 5.5 in at 110 dpi.
            head = png.read_bytes()[:24]
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
            w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            self.assertEqual((w, h), (1100, 605), png)

    def test_a_group_without_a_failed_point_or_decode_step_still_draws(self):
        d = json.loads((DATA / "precision.json").read_text())
        d["groups"] = [g for g in d["groups"] if g["kernel"] != "decode_step"]
        tmp = pathlib.Path(tempfile.mkdtemp())
        (tmp / "kernels_only.json").write_text(json.dumps(d))
        p = run(str(tmp / "kernels_only.json"), "--out", str(tmp))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue((tmp / "kernels_only.png").exists())


if __name__ == "__main__":
    unittest.main(verbosity=2)
