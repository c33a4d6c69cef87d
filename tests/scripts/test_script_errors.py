#!/usr/bin/env python3
"""Every script that reads a file a user names answers a missing, malformed or wrong file with
a one-line message that names the file and exits non-zero: never a Python traceback (issue 11).

  python3 tests/scripts/test_script_errors.py   (ctest runs it: PythonScripts.BadInputsGiveOneLineErrors)

Each script is run as a user would run it, on four bad inputs: a path that does not exist, a file
that is not JSON, JSON of the wrong kind (an object without the script's fields), and a JSON
array. Scripts that need matplotlib before they read their input are run only where it is found.
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None

# script, its arguments with {f} for the input and {o} for an output folder, needs matplotlib first
CASES = [
    ("plot_bandwidth.py", ["{f}", "--out", "{o}/bw"], False),
    ("plot_timeline.py", ["{f}", "--summary"], False),
    ("plot_roofline.py", ["{f}", "--out", "{o}/roof.png"], False),
    ("plot_benchmarks.py", ["{f}", "--out", "{o}"], False),
    ("bench_decode.py", ["--plot-only", "{f}", "--out", "{o}"], False),
    ("plot_experiments.py", ["{f}", "--out", "{o}"], False),
    ("plot_lab.py", ["{f}", "--out", "{o}/lab.png"], True),
    ("ncu_step_table.py", ["{f}"], False),  # a CSV reader: none of the four has its "ID" header
]


class BadInputs(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        d = pathlib.Path(self.tmp.name)
        (d / "not_json.json").write_text("{bad json")
        (d / "wrong_kind.json").write_text('{"a": 1}')
        (d / "array.json").write_text("[1, 2]")
        self.inputs = {"missing": d / "does_not_exist.json", "not JSON": d / "not_json.json",
                       "wrong kind": d / "wrong_kind.json", "array": d / "array.json"}
        self.out = d / "out"

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_each_script_and_bad_input(self) -> None:
        ran = 0
        for script, args, needs_mpl in CASES:
            path = ROOT / "scripts" / script
            if not path.exists() or (needs_mpl and not HAVE_MPL):
                continue
            for what, f in self.inputs.items():
                with self.subTest(script=script, input=what):
                    argv = [a.format(f=f, o=self.out) for a in args]
                    r = subprocess.run([sys.executable, str(path), *argv], capture_output=True,
                                       text=True, timeout=120)
                    said = (r.stdout + r.stderr).strip()
                    self.assertNotEqual(r.returncode, 0, f"{script} {what}: exit 0\n{said}")
                    self.assertNotIn("Traceback", said, f"{script} {what}: a traceback\n{said}")
                    last = said.splitlines()[-1] if said else ""
                    self.assertTrue(last.startswith(script.removesuffix(".py")),
                                    f"{script} {what}: the message does not say who speaks:\n{said}")
                    self.assertIn(f.name, said, f"{script} {what}: the message does not name the file")
                    ran += 1
        self.assertGreaterEqual(ran, 20)


class OutputPathsAndNumbers(unittest.TestCase):
    """An output path that is a folder (or a file where a folder goes), an empty path, a
    negative count: refused at once in one line. Before: an IsADirectoryError / FileExistsError /
    "PosixPath('.') has an empty name" traceback after the figure was drawn; --out '' drew into
    the current folder; --top -1 labelled every kernel but one."""

    def test_each(self) -> None:
        report = ROOT / "tests/engine/report/data"
        sweep = ROOT / "reference/results/h100/decode_sweep.json"
        lab = ROOT / "reference/results/h200/labs/lab02_solution.json"
        ncu = ROOT / "tests/scripts/fixtures/ncu_two_steps.csv"
        with tempfile.TemporaryDirectory() as d:
            folder, afile = pathlib.Path(d) / "adir", pathlib.Path(d) / "afile"
            folder.mkdir()
            afile.write_text("x")
            cases = [
                ("plot_roofline.py", [str(report / "analysis.json"), "--out", str(folder)], "is a folder"),
                ("plot_roofline.py", [str(report / "analysis.json"), "--out", ""], "empty"),
                ("plot_roofline.py", [str(report / "analysis.json"), "--out", "x.png", "--top", "-1"], "--top -1"),
                ("plot_lab.py", [str(lab), "--out", str(folder)], "is a folder"),
                ("plot_lab.py", [str(lab), "--out", ""], "empty"),
                ("plot_experiments.py", [str(report / "block_size.json"), "--out", ""], "empty"),
                ("bench_decode.py", ["--plot-only", str(sweep), "--out", str(afile)], "is a file"),
                ("bench_decode.py", ["--plot-only", ""], "empty"),
                ("bench_decode.py", ["--batches", "0", "--day18", "/nonexistent"], "--batches 0"),
                ("bench_decode.py", ["--prompt-len", "-1", "--day18", "/nonexistent"], "--prompt-len -1"),
                ("ncu_step_table.py", [str(ncu), "--out", str(folder)], "is a folder"),
                ("ncu_step_table.py", [str(ncu), "--out", ""], "empty"),
                ("ncu_step_table.py", [str(ncu), "--step", "2"], "--step 2"),
                ("ncu_step_table.py", [str(ncu), "--peak-gbps", "-1"], "--peak-gbps -1"),
            ]
            for script, args, want in cases:
                with self.subTest(script=script, args=args):
                    r = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                                       capture_output=True, text=True, timeout=120, cwd=d)
                    said = (r.stdout + r.stderr).strip()
                    self.assertNotEqual(r.returncode, 0, said)
                    self.assertNotIn("Traceback", said)
                    self.assertIn(want, said.splitlines()[-1])
            self.assertFalse((pathlib.Path(d) / "x.png").exists())
            self.assertEqual(list(folder.iterdir()), [])


class LabRunnerFiles(unittest.TestCase):
    """scripts/lab reads back what it wrote: the last check's results (scripts/lab labs), the
    test binary's GoogleTest JSON and the timings (scripts/lab check). A cut-short or edited one
    is one line naming it and what to do. Before: a JSONDecodeError or KeyError traceback."""

    def run_labs(self, text: str) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as d:
            results = pathlib.Path(d) / "labs" / "results"
            results.mkdir(parents=True)
            (results / "lab02_student.json").write_text(text)
            return subprocess.run([sys.executable, str(ROOT / "scripts/lab_runner.py"), "--build", d, "labs"],
                                  capture_output=True, text=True, timeout=120)

    def test_a_broken_last_check_is_named(self) -> None:
        good = json.dumps({"lab": "02", "score": 30, "max_score": 40, "when": "2026-01-01T10:00:00"})
        self.assertEqual(self.run_labs(good).returncode, 0)
        for what, text in (("cut short", good[: len(good) // 2]), ("a list", "[1]"),
                           ("no score", '{"max_score": 2, "when": "t"}'),
                           ("a string score", '{"score": "x", "max_score": 2, "when": "t"}')):
            with self.subTest(what):
                r = self.run_labs(text)
                said = (r.stdout + r.stderr).strip()
                self.assertNotEqual(r.returncode, 0, said)
                self.assertNotIn("Traceback", said)
                self.assertIn("lab02_student.json", said.splitlines()[-1])
                self.assertIn("scripts/lab check 02", said.splitlines()[-1])

    def test_broken_test_results_and_timings_are_named(self) -> None:
        code = ("import sys, pathlib; sys.path.insert(0, 'scripts'); import lab_runner as lr; "
                "f = pathlib.Path(sys.argv[1]); "
                "lr.parse_results(f) if f.suffix == '.json' else lr.load_timings(f)")
        with tempfile.TemporaryDirectory() as d:
            for name, text in (("gtest.json", '{"testsuites": [{"name": "S", "testsuite": [{"na'),
                               ("gtest.json", '{"testsuites": 7}'),
                               ("t.jsonl", '{"key": "k", "median_ms": 1.0}\n{"key": "k2"'),
                               ("t.jsonl", '{"key": "k", "median_ms": "fast"}'),
                               ("t.jsonl", '{"key": "k", "median_ms": 1.0, "pct_of_p": "x"}')):
                with self.subTest(name=name, text=text):
                    f = pathlib.Path(d) / name
                    f.write_text(text)
                    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True,
                                       text=True, timeout=60, cwd=ROOT)
                    said = (r.stdout + r.stderr).strip()
                    self.assertNotEqual(r.returncode, 0, said)
                    self.assertNotIn("Traceback", said)
                    self.assertIn(name, said)


if __name__ == "__main__":
    unittest.main(verbosity=1)
