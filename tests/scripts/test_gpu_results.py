#!/usr/bin/env python3
"""Tests of scripts/gpu_results.sh without a GPU: a fake build folder whose engine/day18 and
engine/day18_bench are small Python stand-ins (they print what the real ones print and write the
JSON the scripts read) and a fake nvidia-smi on PATH. Checked: the parts and stages it accepts and
refuses, the tarball (paths reference/results/<gpu>/... and logs/<run>/...), the files each stage
puts there, the provenance manifest, the benchmark minimum time passed as a plain number, and the
deadline (a stage that would start too late is not started, and the tarball is still written).

  python3 tests/scripts/test_gpu_results.py   (ctest: GpuResults.ItsPythonTestsPass)
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_results.sh"
BENCH_FIXTURE = ROOT / "tests" / "scripts" / "fixtures" / "results" / "h200" / "benchmarks.json"
HAVE_TORCH = subprocess.run([sys.executable, "-c", "import torch, transformers"],
                            capture_output=True).returncode == 0

DAY18 = r'''#!PYTHON
"""A stand-in for day18: --version, tour (kernel and pipeline) and run --json."""
import json, sys
a = sys.argv[1:]
OPS = {"embedding", "rms_norm", "paged_attention"}
if a == ["--version"]:
    print("day18 0.1.0 (commit feedface0001)"); sys.exit(0)
if a and a[0] == "tour":
    if "--ops" in a and a[a.index("--ops") + 1] not in OPS:
        print(f"--ops: {a[a.index('--ops') + 1]} not in {{...}}"); sys.exit(2)
    if "--ops" in a or "--kernels" in a:
        print("Day 18 — the kernels of one inference step\n\nengine commit feedface0001")
        print("GPU: NVIDIA H200 (sm_90, 132 SMs, 60 MB L2), CUDA runtime 13.0, driver API 13.0")
        print("  P = 4200 GB/s (bytes read + bytes written). Every % below is of this P.\n")
        print("embedding            fp16  token_ids[2048]              ok             12.0")
    else:
        print("Day 18 — one inference step, stage by stage\nengine commit feedface0001")
    sys.exit(0)
if a and a[0] == "run":
    opt = lambda k: a[a.index(k) + 1]
    b = int(opt("--requests"))
    graphs = opt("--cuda-graphs") == "on"
    w = 2471628800 if opt("--preset") == "llama-1b" else 16060522496
    step = w / 4200e9 * 1e3 * (1.3 if graphs else 1.4) * (1 + b / 256)
    doc = {"decode_step_ms_by_batch": {str(b): step}, "decode_tokens_per_s": b * 1000 / step,
           "gpu_busy_fraction": 0.999, "decode_idle_fraction": 0.001, "decode_gap_median_us": 1.2,
           "decode_steady_pairs": 62, "gpu_busy_fraction_all": 0.99, "graph_captures": int(graphs),
           "graph_capture_ms": 20.0 if graphs else 0.0, "weight_bytes": w, "steps": 64,
           "graph_replays": 63 if graphs else 0, "stage_ms": {}, "wall_s": 0.2}
    open(opt("--json"), "w").write(json.dumps(doc))
    sys.exit(0)
print("day18 stand-in: unexpected arguments", a, file=sys.stderr); sys.exit(3)
'''

BENCH = r'''#!PYTHON
"""A stand-in for day18_bench: writes the fixture to --benchmark_out, with its argv."""
import json, sys
args = dict(x.split("=", 1) for x in sys.argv[1:] if x.startswith("--") and "=" in x)
doc = json.load(open("FIXTURE"))
doc["context"]["argv"] = sys.argv[1:]
open(args["--benchmark_out"], "w").write(json.dumps(doc, indent=1))
print(f"{len(doc['benchmarks'])} benchmarks")
'''

NVIDIA_SMI = r'''#!PYTHON
"""A stand-in for nvidia-smi --query-gpu=FIELDS --format=csv[,noheader]."""
import sys
VALUES = {"name": "NVIDIA H200", "driver_version": "580.159.04", "compute_cap": "9.0",
          "memory.total": "143771 MiB", "clocks.max.sm": "1980 MHz"}
q = next((x.split("=", 1)[1] for x in sys.argv[1:] if x.startswith("--query-gpu=")), None)
if q is None:
    print("nvidia-smi stand-in"); sys.exit(0)
fields = q.split(",")
if not any("noheader" in x for x in sys.argv[1:]):
    print(", ".join(fields))
print(", ".join(VALUES[f] for f in fields))
'''


def write_exe(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace("#!PYTHON", f"#!{sys.executable}").replace("FIXTURE", str(BENCH_FIXTURE)))
    path.chmod(0o755)


class GpuResults(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        d = pathlib.Path(self.tmp.name)
        self.build, self.out, self.bin = d / "build", d / "out", d / "bin"
        write_exe(self.build / "engine" / "day18", DAY18)
        write_exe(self.build / "engine" / "day18_bench", BENCH)
        (self.build / "CMakeCache.txt").write_text("CMAKE_CUDA_ARCHITECTURES:STRING=90\n")
        write_exe(self.bin / "nvidia-smi", NVIDIA_SMI)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def run_script(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        e = dict(os.environ, BUILD_DIR=str(self.build), OUT=str(self.out), PYTHON=sys.executable,
                 PATH=f"{self.bin}:{os.environ['PATH']}", TMPDIR=self.tmp.name)
        e.update(env)
        e.pop("GPU_SLUG", None)
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                              timeout=300, env=e, cwd=ROOT)

    def members(self, tarball: pathlib.Path) -> dict[str, bytes]:
        with tarfile.open(tarball, "r:xz") as t:
            return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}

    def test_parts_and_stages_refused(self):
        for args, env, said in [((), {}, "say what to run"), (("part3",), {}, "unknown part or stage 'part3'"),
                                (("bench",), {"BENCH_MIN_TIME": "0.1s"}, "BENCH_MIN_TIME='0.1s'"),
                                (("bench",), {"DEADLINE_S": "soon"}, "DEADLINE_S='soon'"),
                                (("bench",), {"BUILD_DIR": "/nonexistent-build"}, "no /nonexistent-build/engine/day18")]:
            with self.subTest(args=args, env=env):
                r = self.run_script(*args, **env)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(said, r.stderr)
        r = self.run_script("--list")
        self.assertEqual(r.stdout.split("\n")[:2], ["part1: info bench plots tours", "part2: info sweep transformers"])

    def test_bench_tours_and_sweep_land_in_the_tarball_with_provenance(self):
        r = self.run_script("sweep", "tours", "bench", "info", BENCH_MIN_TIME="0.05")
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-2000:])
        tarball = self.out / "h200-info-bench-tours-sweep.tar.xz"
        self.assertTrue(tarball.exists(), list(self.out.iterdir()))
        self.assertEqual(sorted(p.name for p in self.out.iterdir()), [tarball.name, "summary.txt"])
        files = self.members(tarball)
        base = "reference/results/h200/"
        for f in ("benchmarks.json", "tour.txt", "pipeline_tour.txt", "decode_sweep.json",
                  "gpu_results_info-bench-tours-sweep.json"):
            self.assertIn(base + f, files)
        self.assertTrue(all(n.startswith((base, "logs/info-bench-tours-sweep/")) for n in files), list(files))

        bench = json.loads(files[base + "benchmarks.json"])
        self.assertIn("--benchmark_min_time=0.05", bench["context"]["argv"])
        self.assertIn("--benchmark_out_format=json", bench["context"]["argv"])
        sweep = json.loads(files[base + "decode_sweep.json"])
        self.assertEqual((sweep["provenance"]["P_GBps"], sweep["provenance"]["engine_commit"]), (4200.0, "feedface0001"))
        self.assertEqual(sweep["provenance"]["driver"], "580.159.04")
        self.assertEqual(len(sweep["points"]), 36)
        self.assertIn("engine commit feedface0001", files[base + "tour.txt"].decode())

        m = json.loads(files[base + "gpu_results_info-bench-tours-sweep.json"])
        self.assertEqual({k: m["provenance"][k] for k in ("gpu", "nvidia_driver", "compute_capability", "commit")},
                         {"gpu": "NVIDIA H200", "nvidia_driver": "580.159.04", "compute_capability": "9.0",
                          "commit": "feedface0001"})
        self.assertEqual([(s["stage"], s["status"]) for s in m["stages"]],
                         [("info", "ok"), ("bench", "ok"), ("tours", "ok"), ("sweep", "ok")])
        self.assertEqual(m["stages"][1]["files"], ["benchmarks.json"])
        self.assertEqual(m["bench_min_time_s"], 0.05)
        self.assertIn("2 missed", m["stages"][1]["detail"])  # plot_benchmarks --table's last line
        summary = (self.out / "summary.txt").read_text()
        self.assertIn("tar xJf h200-info-bench-tours-sweep.tar.xz", summary)

    def test_a_stage_too_late_for_the_deadline_is_not_started(self):
        r = self.run_script("part1", DEADLINE_S="70")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        files = self.members(self.out / "h200-part1.tar.xz")
        m = json.loads(files["reference/results/h200/gpu_results_part1.json"])
        self.assertEqual([(s["stage"], s["status"]) for s in m["stages"]][:2], [("info", "ok"), ("bench", "no-time")])
        self.assertNotIn("reference/results/h200/benchmarks.json", files)

    def test_the_build_must_match_the_gpu(self):
        (self.build / "CMakeCache.txt").write_text("CMAKE_CUDA_ARCHITECTURES:STRING=80\n")
        r = self.run_script("info")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is sm_90 but", r.stdout)

    @unittest.skipIf(HAVE_TORCH, "torch and transformers are installed here: the stage would run")
    def test_transformers_without_torch_fails_and_says_why(self):
        r = self.run_script("transformers")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot import torch and transformers", r.stdout)


if __name__ == "__main__":
    if shutil.which("xz") is None or shutil.which("timeout") is None:
        print("test_gpu_results: needs xz and timeout (coreutils): skipped")
        sys.exit(0)
    unittest.main()
