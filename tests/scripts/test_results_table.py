#!/usr/bin/env python3
"""Tests of scripts/results_table.py on small fixtures (tests/scripts/fixtures/results/):

  h100/  cut from reference/results/h100: the benchmarks of issue 12's table and of most course
         targets (unchanged rows), the decode sweep's points at batch 1 and 64, the throughput
         rows without their raw timings;
  h200/  made up: a benchmarks.json only (no sweep: "pending"), with bf16 rows and values at the
         targets' edges (90.0% of P meets >= 90, 15.01 us misses <= 15).

Checked: each cell says what the files say (or "pending" / "not in this run"), verdicts at the
edges, every table is whole, the marked blocks of a markdown file are regenerated in place and
nothing else is touched, --check-doc finds a stale block, bad inputs give one-line errors, and
docs/benchmarks.md is in sync with reference/results (regenerate it when results change).

  python3 tests/scripts/test_results_table.py   (ctest: ResultsTable.ItsPythonTestsPass)
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "results_table.py"
FIX = ROOT / "tests" / "scripts" / "fixtures" / "results"

spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
rt = importlib.util.module_from_spec(spec)
sys.modules["results_table"] = rt
spec.loader.exec_module(rt)


def gpus(results: pathlib.Path = FIX, slugs=("h100", "h200")) -> list:
    return [rt.load_gpu(results, s) for s in slugs]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120)


def rows_of(lines: list[str]) -> dict[str, list[str]]:
    """First cell -> the other cells, for the body rows of a markdown table."""
    out = {}
    for l in lines[2:]:
        cells = [c.strip() for c in l.strip().strip("|").split("|")]
        out[cells[0]] = cells[1:]
    return out


class Issue12(unittest.TestCase):
    def setUp(self) -> None:
        self.rows = rows_of(rt.block_issue12(gpus()))

    def test_the_h100_cells_are_its_recorded_numbers(self):
        self.assertEqual(self.rows["paged decode B=64, context 4096, fp16"][1:2],
                         ["73.4% of P (490 µs): **missed**"])
        self.assertEqual(self.rows["paged decode B=1, context 4096, fp16"][1],
                         "24.4 µs (23.1% of P): **missed**")
        self.assertEqual(self.rows["RMSNorm 16384 x 8192, fp16"][1], "93.8% of P (192 µs): met")
        self.assertEqual(self.rows["fused add + RMSNorm 16384 x 8192, fp16"][1], "99.4% of P (362 µs): met")

    def test_decode_steps_against_the_weight_read_floor_of_the_same_sweep(self):
        self.assertEqual(self.rows["decode step llama-1b B=1, CUDA graphs, fp16"][:2],
                         ["<= 1.25x the floor", "1.099 ms = 1.33x the 0.828 ms floor: **missed**"])
        self.assertEqual(self.rows["decode step llama-8b B=1, CUDA graphs, fp16"][1],
                         "5.661 ms = 1.05x the 5.382 ms floor: met")
        self.assertIn("41.1k tok/s", self.rows["decode step llama-1b B=64, CUDA graphs, fp16"][1])

    def test_absent_files_and_benchmarks_say_so(self):
        self.assertEqual(self.rows["decode step llama-1b B=1, CUDA graphs, fp16"][2],
                         "pending (no decode_sweep.json)")
        self.assertEqual(self.rows["paged decode B=64, context 4096, bf16"][1], "not in this run")
        self.assertEqual(self.rows["RMSNorm 16384 x 8192, bf16"][2], "not in this run")

    def test_verdicts_at_the_edges(self):
        self.assertEqual(self.rows["paged decode B=64, context 4096, bf16"][2], "90.0% of P (299 µs): met")
        self.assertEqual(self.rows["paged decode B=64, context 4096, fp16"][2], "89.9% of P (300 µs): **missed**")
        self.assertEqual(self.rows["paged decode B=1, context 4096, bf16"][2], "15.0 µs (40.1% of P): met")
        # 15.01 us would print as 15.0: one more digit, so that a miss does not read as the target.
        self.assertEqual(self.rows["paged decode B=1, context 4096, fp16"][2], "15.01 µs (40.0% of P): **missed**")

    def test_a_gpu_without_a_folder_is_pending_everywhere(self):
        rows = rows_of(rt.block_issue12(gpus(slugs=("h100", "b200"))))
        self.assertTrue(all(r[2].startswith("pending") for r in rows.values()), rows)
        self.assertIn("B200", rt.block_issue12(gpus(slugs=("h100", "b200")))[0])


class OtherBlocks(unittest.TestCase):
    def test_course_targets_and_their_count(self):
        lines = rt.block_targets(gpus())
        rows = rows_of(lines[:-2])
        self.assertEqual(rows["paged attention B=1 ctx 4096"][2:], ["24.4 µs: **missed**", "15.0 µs: met"])  # against <= 20 us
        self.assertEqual(lines[-1], "H100: 7 of 9 verdicts met, 2 missed; H200: 3 of 5 verdicts met, 2 missed.")

    def test_swap_is_against_the_pinned_link(self):
        rows = rt.block_headline(gpus())
        swap = next(r for r in rows if r.startswith("| swap_blocks out"))
        self.assertIn("89.1% of pinned", swap)
        self.assertIn("75.0% of pinned", swap)

    def test_bf16_rows_sit_beside_fp16_in_the_headline(self):
        text = "\n".join(rt.block_headline(gpus()))
        self.assertIn("| paged_attention B=64, ctx 4096 (bf16) | - | - | 299.0 | 90.0% |", text)
        self.assertIn("| paged_attention B=64, ctx 4096 (fp16) | 490.0 | 73.4% | 300.0 | 89.9% |", text)

    def test_decode_targets_and_transformers(self):
        rows = rows_of(rt.block_decode_targets(gpus()))
        self.assertEqual(rows["llama-1b batch 1: graphs cut the step >= 30% vs eager"],
                         ["1.143 -> 1.099 ms (4%): **missed**", "pending (no decode_sweep.json)"])
        tf = rt.block_transformers(gpus())
        self.assertIn("| 1 | transformers `generate` | 68 tok/s (14.74 ms) | pending (no transformers_throughput.json) |", tf)

    def test_every_table_is_whole(self):
        for name in rt.BLOCKS:
            lines = [l for l in rt.render(name, gpus()).splitlines() if l.startswith("|")]
            if not lines:
                continue
            n = lines[0].count("|")
            for l in lines:
                self.assertEqual(l.count("|"), n, f"{name}: {l}")

    def test_numbers_come_from_the_files(self):
        with tempfile.TemporaryDirectory() as d:
            shutil.copytree(FIX, d, dirs_exist_ok=True)
            f = pathlib.Path(d) / "h200" / "benchmarks.json"
            doc = json.loads(f.read_text())
            for b in doc["benchmarks"]:
                if b["run_name"].startswith("BM_rms_norm/"):
                    b["pct_of_P"], b["real_time"] = 12.34, 777.0
            f.write_text(json.dumps(doc))
            rows = rows_of(rt.block_issue12(gpus(pathlib.Path(d))))
        self.assertEqual(rows["RMSNorm 16384 x 8192, fp16"][2], "12.3% of P (777 µs): **missed**")


DOC = """# A page

Text above.

<!-- BEGIN results_table.py issue12 -->
old table
<!-- END results_table.py issue12 -->

Text between.

<!-- BEGIN results_table.py sources -->
<!-- END results_table.py sources -->
Text below.
"""


class Doc(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.md = pathlib.Path(self.tmp.name) / "page.md"
        self.md.write_text(DOC)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_write_doc_replaces_only_the_blocks_and_is_idempotent(self):
        r = run("--results", str(FIX), "--write-doc", str(self.md))
        self.assertEqual(r.returncode, 0, r.stderr)
        text = self.md.read_text()
        self.assertNotIn("old table", text)
        self.assertIn("| paged decode B=64, context 4096, fp16 | >= 90% of P | 73.4% of P", text)
        self.assertIn("- **H200** (", text)
        for kept in ("# A page\n\nText above.\n\n", "\n\nText between.\n\n", "\nText below.\n"):
            self.assertIn(kept, text)
        r = run("--results", str(FIX), "--check-doc", str(self.md))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run("--results", str(FIX), "--write-doc", str(self.md))
        self.assertIn("up to date", r.stdout)
        self.assertEqual(self.md.read_text(), text)

    def test_check_doc_finds_a_stale_block(self):
        r = run("--results", str(FIX), "--check-doc", str(self.md))
        self.assertEqual(r.returncode, 1)
        self.assertIn("-old table", r.stdout)
        self.assertIn("is stale", r.stdout)
        self.assertEqual(self.md.read_text(), DOC)

    def test_unknown_or_missing_markers_are_refused(self):
        self.md.write_text("<!-- BEGIN results_table.py nonsense -->\n<!-- END results_table.py nonsense -->\n")
        r = run("--results", str(FIX), "--write-doc", str(self.md))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown block 'nonsense'", r.stderr)
        self.md.write_text("no markers\n")
        r = run("--results", str(FIX), "--check-doc", str(self.md))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no '<!-- BEGIN results_table.py NAME -->' marker", r.stderr)
        self.md.write_text("<!-- BEGIN results_table.py issue12 -->\nno end\n")
        r = run("--results", str(FIX), "--write-doc", str(self.md))
        self.assertIn("exactly one BEGIN and one END", r.stderr)


class BadInput(unittest.TestCase):
    def test_one_line_errors(self):
        with tempfile.TemporaryDirectory() as d:
            (pathlib.Path(d) / "h100").mkdir()
            (pathlib.Path(d) / "h100" / "benchmarks.json").write_text("{bad")
            r = run("--results", d, "--gpus", "h100")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("benchmarks.json: not JSON", r.stderr)
            self.assertNotIn("Traceback", r.stderr)
            (pathlib.Path(d) / "h100" / "benchmarks.json").write_text("[1]")
            r = run("--results", d, "--gpus", "h100")
            self.assertIn("not Google Benchmark JSON", r.stderr)
            r = run("--results", d, "--gpus", "h900")
            self.assertIn("no results in", r.stderr)
        r = run("--results", "/nonexistent-folder")
        self.assertIn("no such folder", r.stderr)


def bench_binary() -> pathlib.Path | None:
    for d in ("build", "build-gpu"):
        f = ROOT / d / "engine" / "day18_bench"
        if f.exists():
            return f
    return None


class TheRepository(unittest.TestCase):
    @unittest.skipIf(bench_binary() is None, "no build*/engine/day18_bench")
    def test_every_benchmark_the_tables_name_is_registered(self):
        r = subprocess.run([str(bench_binary()), "--benchmark_list_tests"], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = {pb_name.removesuffix("/manual_time") for pb_name in r.stdout.split()}
        named = {n for t in rt.ISSUE12_KERNELS for n in t.names.values()}
        named |= {n for t in rt.pb.TARGETS for n in t.names}
        named |= {n for _, _, n in rt.PREFILL_HEADLINE}  # (plot_benchmarks' rows may name dtypes that are not run)
        self.assertEqual(sorted(named - listed), [])

    def test_docs_benchmarks_md_is_in_sync_with_reference_results(self):
        r = run("--check-doc", str(ROOT / "docs" / "benchmarks.md"))
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr)

    def test_every_block_prints_from_the_recorded_results(self):
        r = run()
        self.assertEqual(r.returncode, 0, r.stderr)
        for n in rt.BLOCKS:
            self.assertIn(f"<!-- {n} -->", r.stdout)
        r = run("--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("`BM_paged_attention/target_b64_ctx4096`", r.stdout)


if __name__ == "__main__":
    unittest.main()
