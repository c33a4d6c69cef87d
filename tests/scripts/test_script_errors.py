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


if __name__ == "__main__":
    unittest.main(verbosity=1)
