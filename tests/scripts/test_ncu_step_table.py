#!/usr/bin/env python3
"""Tests of scripts/ncu_step_table.py: the per-kernel table of one engine step from an ncu --csv
export of a few steps.

  tests/scripts/fixtures/ncu_two_steps.csv   hand-made: launches 0-2 (step 0), 3-8 (step 1), each
        ending at sampling_kernel, and 9 (unfinished); durations in ns, nsecond, us, usecond and
        msecond, bytes in byte, Kbyte, Mbyte and Gbyte, thousands separators ("14,250",
        "8,388.608", a grid of "1,024"), metrics the script ignores (dram__bytes_write.sum, a %).
        Step 1's numbers are known: gemv grid 256 2 x 14.75 us (14,250 ns and 15.25 us), 8.388608
        MB each; gemv grid 512 10 us (0.01 ms), 4.194 MB; nvjet 5 us, 1 MB; sampling 2 us, 0.5
        MB; feed_sampled_tokens 1.5 us, 0.002 MB: 48 us, 22.473216 MB in all.
  reference/results/h200/ncu_decode_steps/   the recorded H200 files (llama-1b, llama-8b, B=1);
        their README's tables must be what the script prints now.

Checked: the table value by value, the step split and --step, short names, --peak-gbps, --out
(written whole or not at all), and each bad input: one line on stderr naming the file (and the
line and column), exit 2, no traceback.

  python3 tests/scripts/test_ncu_step_table.py   (ctest: NcuStepTable.ItsPythonTestsPass)
"""
from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ncu_step_table.py"
FIXTURE = ROOT / "tests" / "scripts" / "fixtures" / "ncu_two_steps.csv"
RECORDED = ROOT / "reference" / "results" / "h200" / "ncu_decode_steps"

spec = importlib.util.spec_from_file_location("ncu_step_table", SCRIPT)
nst = importlib.util.module_from_spec(spec)
sys.modules["ncu_step_table"] = nst
spec.loader.exec_module(nst)


def run(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the (first) markdown table in text, as cells."""
    lines = [l for l in text.splitlines() if l.startswith("|")]
    return [[c.strip() for c in l.strip().strip("|").split("|")] for l in lines[2:]]


HEADER = "| kernel | grid | launches | µs / launch | total µs | share | MB read / launch | TB/s |"


class Fixture(unittest.TestCase):
    def test_the_last_complete_step_value_by_value(self):
        r = run(FIXTURE, "--peak-gbps", 4194)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        out = r.stdout
        self.assertIn("### `ncu_two_steps.csv`: step 1 of its complete steps 0-1, the last (launches 3-8)", out)
        self.assertIn(HEADER + " % of P |", out)
        self.assertEqual(table_rows(out), [
            ["`gemv_kernel<__half, 1, 1>`", "256", "2", "14.75", "29.5", "61.5%", "8.389", "0.57", "13.6%"],
            ["`gemv_kernel<__half, 1, 1>`", "512", "1", "10.00", "10.0", "20.8%", "4.194", "0.42", "10.0%"],
            ["`nvjet_sm90_hsh_64x16_64x16_4x2_h_bz_TNT`", "1024", "1", "5.00", "5.0", "10.4%", "1.000", "0.20", "4.8%"],
            ["`sampling_kernel<float, 0>`", "1", "1", "2.00", "2.0", "4.2%", "0.500", "0.25", "6.0%"],
            ["`feed_sampled_tokens_kernel`", "1", "1", "1.50", "1.5", "3.1%", "0.002", "0.00", "0.0%"],
        ])
        self.assertIn("Total: 6 kernels, 48.0 µs (the sum of their isolated durations), 22.5 MB read "
                      "from DRAM, 0.47 TB/s effective (11.2% of P = 4194 GB/s).", out)
        self.assertIn("(1 launch after the last complete step (an unfinished step) left out.)", out)

    def test_the_numbers_before_rounding(self):
        t = nst.step_table(FIXTURE, None)
        self.assertEqual((t.step, t.steps, t.first_id, t.last_id, t.kernels, t.left_out), (1, 2, 3, 8, 6, 1))
        self.assertAlmostEqual(t.us, 48.0, places=9)
        self.assertAlmostEqual(t.mb, 22.473216, places=9)
        self.assertAlmostEqual(t.tbps, 22.473216 / 48.0, places=12)
        g256 = t.rows[0]
        self.assertEqual((g256.kernel, g256.grid, g256.launches), ("gemv_kernel<__half, 1, 1>", 256, 2))
        self.assertAlmostEqual(g256.us, 14.25 + 15.25, places=9)           # 14,250 ns + 15.25 us
        self.assertAlmostEqual(g256.mb, 2 * 8.388608, places=9)            # 8,388,608 byte + 8,388.608 Kbyte
        g512 = t.rows[1]
        self.assertAlmostEqual(g512.us, 10.0, places=9)                    # 0.01 msecond
        self.assertAlmostEqual(g512.mb, 4.194, places=9)                   # 0.004194 Gbyte
        self.assertAlmostEqual(t.rows[3].mb, 0.5, places=12)               # 500 Kbyte
        self.assertEqual(t.rows[2].grid, 1024)                             # "1,024"

    def test_step_0_is_the_first(self):
        r = run(FIXTURE, "--step", 0)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("step 0 of its complete steps 0-1 (launches 0-2)", r.stdout)
        self.assertIn(HEADER, r.stdout)
        self.assertEqual(table_rows(r.stdout), [
            ["`gemv_kernel<__half, 1, 1>`", "256", "1", "14.50", "14.5", "69.4%", "8.389", "0.58"],
            ["`embedding_kernel<__half, 8>`", "64", "1", "3.90", "3.9", "18.7%", "0.139", "0.04"],
            ["`sampling_kernel<float, 0>`", "1", "1", "2.50", "2.5", "12.0%", "0.512", "0.20"],
        ])
        self.assertIn("Total: 3 kernels, 20.9 µs (the sum of their isolated durations), 9.0 MB read "
                      "from DRAM, 0.43 TB/s effective.", r.stdout)

    def test_short_names(self):
        for full, short in [
            ("void cuda::<unnamed>::gemv_kernel<__half, 1, 1>(T1 *, const T1 *, int, cuda::<unnamed>::NormArgs)",
             "gemv_kernel<__half, 1, 1>"),
            ("void day18::cuda::(anonymous namespace)::rms_norm_kernel<__half, 8, 1>(__half *, float)",
             "rms_norm_kernel<__half, 8, 1>"),
            ("day18::<unnamed>::feed_sampled_tokens_kernel(int *, const int *, const int *, int)",
             "feed_sampled_tokens_kernel"),
            ("nvjet_sm90_hsh_128x32_64x10_2x1_v_bz_TNT", "nvjet_sm90_hsh_128x32_64x10_2x1_v_bz_TNT"),
            ("void cublasLt::splitKreduce_kernel<32, 16, int>(cublasLt::cublasSplitKParams<T6>, void *)",
             "cublasLt::splitKreduce_kernel<32, 16, int>"),
            ("void k<day18::(anonymous namespace)::Op>(day18::(anonymous namespace)::Args)", "k<Op>"),
        ]:
            with self.subTest(full):
                self.assertEqual(nst.short_name(full), short)

    def test_out_writes_the_same_markdown(self):
        with tempfile.TemporaryDirectory() as d:
            out = pathlib.Path(d) / "step.md"
            r = run(FIXTURE, "--peak-gbps", 4194, "--out", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(out.read_text(encoding="utf-8"), run(FIXTURE, "--peak-gbps", 4194).stdout)
            self.assertEqual(sorted(p.name for p in pathlib.Path(d).iterdir()), ["step.md"])

    def test_several_files_one_table_each(self):
        r = run(FIXTURE, FIXTURE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count("### `ncu_two_steps.csv`"), 2)


class Recorded(unittest.TestCase):
    """The H200 files of reference/results/h200/ncu_decode_steps/."""

    def test_llama_1b_decode_step(self):
        t = nst.step_table(RECORDED / "step_llama-1b_b1.csv", None)
        self.assertEqual((t.steps, t.kernels), (3, 101))
        self.assertAlmostEqual(t.us, 1069.7, delta=0.05)
        down = [r for r in t.rows if (r.kernel, r.grid) == ("gemv_kernel<__half, 1, 1>", 256)]
        self.assertEqual(len(down), 1)
        self.assertEqual(down[0].launches, 16)
        self.assertAlmostEqual(down[0].us / down[0].launches, 14.75, delta=0.05)
        # Nothing of the step is lost to the grouping.
        self.assertEqual(sum(r.launches for r in t.rows), t.kernels)
        self.assertAlmostEqual(sum(r.us for r in t.rows), t.us, places=6)

    def test_llama_8b_decode_step(self):
        t = nst.step_table(RECORDED / "step_llama-8b_b1.csv", None)
        self.assertEqual((t.steps, t.kernels), (2, 197))
        self.assertEqual(sum(r.launches for r in t.rows), 197)

    def test_the_readme_has_the_tables_the_script_prints(self):
        files = sorted(RECORDED.glob("step_*.csv"))
        r = run(*files, "--peak-gbps", 4195)
        self.assertEqual(r.returncode, 0, r.stderr)
        readme = (RECORDED / "README.md").read_text(encoding="utf-8")
        self.assertIn(r.stdout, readme, "stale tables: paste the output of python3 scripts/ncu_step_table.py "
                      "reference/results/h200/ncu_decode_steps/*.csv --peak-gbps 4195 into its README")


HEAD = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size",'
        '"Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"\n')


def row(i: int, name: str, metric: str, unit: str, value: str) -> str:
    return (f'"{i}","1","day18","h","{name}","1","14","(256, 1, 1)","(1, 1, 1)","0","9.0",'
            f'"Command line profiler metrics","{metric}","{unit}","{value}"\n')


def launch(i: int, name: str, time=("ns", "1,000"), read=("byte", "1,000,000"), grid=("", "1")) -> str:
    return (row(i, name, "dram__bytes_read.sum", *read) + row(i, name, "gpu__time_duration.sum", *time)
            + row(i, name, "launch__grid_size", *grid))


GOOD = "==PROF== x\n" + HEAD + launch(0, "void k(int)") + launch(1, "void sampling_kernel<float, 0>(int *)")
# the file lines of launch 1's rows (1-based): preamble 1, header 2, launch 0: 3-5, launch 1: 6-8
LINE_OF_TIME_1 = 7


class BadInputs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = pathlib.Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def file(self, name: str, text: str | bytes) -> pathlib.Path:
        p = self.d / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    def refused(self, *args, want: str, names: str | None = None) -> str:
        r = run(*args, cwd=self.d)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("ncu_step_table: "), lines[0])
        self.assertIn(want, lines[0])
        if names:
            self.assertIn(names, lines[0])
        return lines[0]

    def test_the_good_file_is_good(self):
        r = run(self.file("good.csv", GOOD))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(table_rows(r.stdout)), 2)

    def test_missing_and_unreadable_files(self):
        self.refused(self.d / "nope.csv", want="cannot read it (No such file or directory)", names="nope.csv")
        (self.d / "adir.csv").mkdir()
        self.refused(self.d / "adir.csv", want="cannot read it", names="adir.csv")
        self.refused(self.file("bin.csv", b"\xff\xfe\x00\x81ID"), want="not a text file", names="bin.csv")

    def test_no_id_header(self):
        self.refused(self.file("prof.csv", "==PROF== Connected\nmodel: llama-1b\n==PROF== Disconnected\n"),
                     want="no CSV header", names="prof.csv")
        self.refused(self.file("empty.csv", ""), want="no CSV header", names="empty.csv")

    def test_a_header_without_the_needed_columns(self):
        raw = '==PROF== x\n"ID","Kernel Name","gpu__time_duration.sum"\n"","","nsecond"\n"0","k","1,000"\n'
        msg = self.refused(self.file("raw.csv", raw), want="raw.csv:2: the header has no column", names="'Metric Name'")
        self.assertIn("'Metric Value'", msg)
        self.assertNotIn("'Kernel Name'", msg)

    def test_an_unknown_unit(self):
        bad = GOOD.replace(row(1, "void sampling_kernel<float, 0>(int *)", "gpu__time_duration.sum", "ns", "1,000"),
                           row(1, "void sampling_kernel<float, 0>(int *)", "gpu__time_duration.sum", "cycle", "1,000"))
        self.assertNotEqual(bad, GOOD)
        self.refused(self.file("unit.csv", bad), want=f"unit.csv:{LINE_OF_TIME_1}: column \"Metric Unit\": "
                     "unknown unit \"cycle\" for gpu__time_duration.sum")
        bad = GOOD.replace('"byte","1,000,000"', '"Pbyte","1,000,000"', 1)
        self.refused(self.file("unit2.csv", bad), want="unit2.csv:3: column \"Metric Unit\": unknown unit \"Pbyte\"")
        bad = GOOD.replace('"launch__grid_size","",', '"launch__grid_size","block/s",', 1)
        self.refused(self.file("unit3.csv", bad), want="unit3.csv:5: column \"Metric Unit\": unknown unit \"block/s\"")

    def test_a_value_that_is_not_a_number(self):
        for text in ("n/a", "", "1,00", "12ms", "1.2.3"):
            with self.subTest(text):
                bad = GOOD.replace(row(1, "void sampling_kernel<float, 0>(int *)", "gpu__time_duration.sum", "ns", "1,000"),
                                   row(1, "void sampling_kernel<float, 0>(int *)", "gpu__time_duration.sum", "ns", text))
                self.refused(self.file("nan.csv", bad),
                             want=f"nan.csv:{LINE_OF_TIME_1}: column \"Metric Value\": \"{text}\" "
                                  "(gpu__time_duration.sum) is not a number")
        bad = GOOD.replace('"launch__grid_size","","1"', '"launch__grid_size","","1.5"', 1)
        self.refused(self.file("grid.csv", bad), want="grid.csv:5: column \"Metric Value\": \"1.5\"")
        bad = GOOD.replace('"0","1","day18"', '"x","1","day18"', 1)
        self.refused(self.file("id.csv", bad), want="id.csv:3: column \"ID\": \"x\" is not a launch number")

    def test_a_row_of_the_wrong_length(self):
        bad = GOOD + '"2","1","day18"\n'
        self.refused(self.file("short.csv", bad), want="short.csv:9: 3 fields, the header has 15")

    def test_no_complete_step(self):
        self.refused(self.file("nostep.csv", "==PROF== x\n" + HEAD + launch(0, "void k(int)") + launch(1, "void k2(int)")),
                     want="nostep.csv: no complete step: none of its 2 launches is a sampling_kernel")

    def test_a_launch_of_the_step_without_a_metric(self):
        bad = GOOD.replace(row(1, "void sampling_kernel<float, 0>(int *)", "dram__bytes_read.sum", "byte", "1,000,000"), "")
        self.refused(self.file("nodram.csv", bad), want="nodram.csv:6: launch 1 (sampling_kernel<float, 0>) has no "
                     "dram__bytes_read.sum")

    def test_step_out_of_range_says_how_many(self):
        f = self.file("good.csv", GOOD)
        self.refused(f, "--step", 1, want="good.csv: --step 1: it has 1 complete step (0-0)")
        self.refused(FIXTURE, "--step", 2, want="ncu_two_steps.csv: --step 2: it has 2 complete steps (0-1)")
        self.refused(f, "--step", -1, want="--step -1: must be >= 0")

    def test_bad_options(self):
        f = self.file("good.csv", GOOD)
        self.refused(f, "--peak-gbps", 0, want="--peak-gbps 0: must be > 0")
        (self.d / "folder").mkdir()
        self.refused(f, "--out", self.d / "folder", want="is a folder")
        self.refused(f, "--out", self.d / "no" / "x.md", want="does not exist")

    def test_an_empty_path_is_refused_by_argparse(self):
        r = run(FIXTURE, "--out", "", cwd=self.d)
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn("empty", r.stderr.strip().splitlines()[-1])

    def test_no_partial_output_file(self):
        good, bad = self.file("good.csv", GOOD), self.file("bad.csv", GOOD.replace('"ns","1,000"', '"ns","n/a"'))
        out = self.d / "out.md"
        self.refused(good, bad, "--out", out, want="bad.csv:")
        self.assertFalse(out.exists())
        out.write_text("before\n")
        self.refused(good, bad, "--out", out, want="bad.csv:")
        self.assertEqual(out.read_text(), "before\n")
        self.assertEqual(sorted(p.name for p in self.d.iterdir()), ["bad.csv", "good.csv", "out.md"])


if __name__ == "__main__":
    unittest.main(verbosity=1)
