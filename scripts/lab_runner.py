#!/usr/bin/env python3
"""The lab half of scripts/lab (the bash script builds, then calls this with the build folder).

  labs                     every lab: tasks, how many regions you have written, last check
  check NN                 your code: a table per task (passed / failed with the first
                           mismatches / not implemented / skipped), timing vs the engine, a score
  solution NN              the same tests against the engine (the reference solution)
  diff NN [task]           your regions next to the engine's, region by region
  reset NN [task]          put the stub back (all regions of the lab, or one task's); the old
                           file is saved under <build>/labs/backup/
  run NN -- ARGS           the day18 executable linked with your code (e.g. run 02 -- tour)
  plot NN                  the lab's figure from your last `check` beside the engine's
  mutate NN [--cpu-only | --device-only]
                           build the lab with each deliberately wrong solution of
                           tests/labs/NN/mutations.json and check that its tests fail
         [--save DIR]      ...and keep each variant's test binary in DIR; then, on a GPU
         [--prebuilt DIR]  machine, run those binaries without compiling anything
  selftest [--cpu-only]    CI: every student test of a fresh checkout fails with "not
                           implemented yet" (or skips), then `mutate` for every lab
"""
from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_labs as ml  # noqa: E402

ROOT = ml.ROOT
TTY = sys.stdout.isatty()
B, R, G, Y, N = ("\033[1m", "\033[31m", "\033[32m", "\033[33m", "\033[0m") if TTY else ("",) * 5
NOT_IMPLEMENTED = "not implemented yet"
REQUIRE_GPU = os.environ.get("REQUIRE_GPU") == "1"  # a mutation whose tests all skip is a failure


def die(msg: str) -> None:
    print(f"{R}lab: {msg}{N}", file=sys.stderr)
    sys.exit(1)


def read_json(path: Path, what: str, fix: str) -> object:
    """A JSON file this runner wrote earlier (or a test binary did): a missing, cut-short or
    edited one is one line naming it and what to do, never a traceback."""
    try:
        return json.loads(path.read_text())
    except OSError as e:
        die(f"{path}: cannot read {what} ({e.strerror}); {fix}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        die(f"{path}: {what} is not JSON ({e}); {fix}")


def get_lab(labs: dict, lab_id: str) -> ml.Lab:
    lab_id = lab_id.zfill(2)
    if lab_id not in labs:
        die(f"no lab '{lab_id}' (labs: {', '.join(labs)}); `scripts/lab labs` lists them")
    return labs[lab_id]


def gpu_present() -> bool:
    if os.environ.get("DAY18_NO_GPU") == "1":
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        return out.returncode == 0 and "GPU " in out.stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


# --------------------------------------------------------------------------------------------
# regions of the learner's files
def learner_regions(lab: ml.Lab, views) -> list[tuple[Path, ml.Region, ml.Region]]:
    """(learner file, learner region, engine region) for each of the lab's regions."""
    out = []
    for p, (_, regions) in views[lab.id].items():
        mine = lab.dir / "src" / p.relative_to(ml.ENGINE)
        if not mine.exists():
            die(f"{mine.relative_to(ROOT)} is missing: scripts/lab reset {lab.id} writes it anew")
        theirs = {(r.task): r for r in ml.parse_regions(mine, mine.read_text().splitlines(True))}
        for r in regions:
            if r.lab != lab.id:
                continue
            if r.task not in theirs:
                die(f"{mine.relative_to(ROOT)}: the markers of task {r.task} are gone (keep the "
                    f"'// LAB {lab.id} BEGIN/END {r.task}' lines); scripts/lab reset {lab.id} "
                    f"{r.task} puts the region back")
            out.append((mine, theirs[r.task], r))
    return out


def is_stub(region: ml.Region, task: ml.Task, lab: ml.Lab) -> bool:
    return "".join(region.body) == "".join(ml.stub_lines(region, task, lab))


def written_counts(lab: ml.Lab, views) -> tuple[int, int]:
    regs = learner_regions(lab, views)
    done = sum(0 if is_stub(mine, lab.task(mine.task), lab) else 1 for _, mine, _ in regs)
    return done, len(regs)


# --------------------------------------------------------------------------------------------
# running the tests
def run_gtest(binary: Path, out_json: Path, gtest_filter: str | None = None,
              env_extra: dict | None = None, quiet: bool = True) -> tuple[int, str]:
    if not binary.exists():
        die(f"{binary} is not built (scripts/lab build)")
    cmd = [str(binary), f"--gtest_output=json:{out_json}"]
    if gtest_filter:
        cmd.append(f"--gtest_filter={gtest_filter}")
    env = dict(os.environ, **(env_extra or {}))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    except subprocess.TimeoutExpired:
        die(f"{binary.name} ran for 30 minutes: a kernel that never ends? (a loop bound?)")
    if p.returncode < 0:
        print(p.stdout[-4000:])
        print(f"{R}{binary.name} crashed (signal {-p.returncode}); its last output is above{N}")
    if not quiet:
        print(p.stdout)
    return p.returncode, p.stdout


def parse_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    data = read_json(path, "the test binary's results", "run the check again")
    suites = data.get("testsuites", []) if isinstance(data, dict) else None
    if not isinstance(suites, list) or not all(
            isinstance(su, dict) and isinstance(su.get("name"), str) and isinstance(su.get("testsuite", []), list)
            and all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in su.get("testsuite", []))
            for su in suites):
        die(f"{path}: not GoogleTest JSON (\"testsuites\": [{{\"name\", \"testsuite\": [...]}}]); "
            "run the check again")
    rows = []
    for suite in suites:
        for t in suite.get("testsuite", []):
            name = f"{suite['name']}.{t['name']}"
            failures = [f.get("failure", "") for f in t.get("failures", [])]
            if failures:
                text = "\n".join(failures)
                status = "not implemented" if NOT_IMPLEMENTED in text else "failed"
            elif t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                status, text = "skipped", t.get("skipped", {}).get("message", "") if isinstance(
                    t.get("skipped"), dict) else ""
            else:
                status, text = "passed", ""
            task = 0
            if suite["name"].startswith("Lab") and "_Task" in suite["name"]:
                try:
                    task = int(suite["name"].split("_Task")[1].split("_")[0])
                except ValueError:
                    task = 0
            rows.append({"name": name, "task": task, "status": status, "message": text})
    return rows


def first_lines(text: str, n: int = 3) -> list[str]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("/")]
    return lines[:n]


def score_timing(ratio: float, target: float) -> float:
    """1 within the target ratio, falling linearly to 0 at 10x."""
    if ratio <= target:
        return 1.0
    return max(0.0, (10.0 - ratio) / (10.0 - target))


def load_timings(path: Path) -> dict[str, dict]:
    out = {}
    if path.exists():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                die(f"{path} line {n}: not JSON ({e}); run the check again")
            def number(v: object) -> bool:
                return isinstance(v, (int, float)) and not isinstance(v, bool)
            if not isinstance(r, dict) or not isinstance(r.get("key"), str) or not number(r.get("median_ms")):
                die(f"{path} line {n}: a timing needs \"key\" (a string) and \"median_ms\" (a "
                    "number); run the check again")
            for k in ("pct_of_p", "p_gbps", "task"):
                if r.get(k) is not None and not number(r[k]):
                    die(f"{path} line {n}: \"{k}\" is not a number; run the check again")
            out[r["key"]] = r
    return out


def report(lab: ml.Lab, rows: list[dict], timings_mine: dict, timings_ref: dict, kind: str,
           results_dir: Path) -> int:
    target = float(lab.raw.get("timing_target", 1.5))
    print(f"\n{B}Lab {lab.id}: {lab.title}{N}  ({kind} build)\n")
    w = max([len(t.title) for t in lab.tasks] + [20])
    print(f"  {'task':<{w + 4}} {'tests':>7}  status")
    total_points, max_points, all_ok = 0.0, 0.0, True
    task_ok = {}
    for t in lab.tasks:
        mine = [r for r in rows if r["task"] == t.number]
        ran = [r for r in mine if r["status"] != "skipped"]
        passed = [r for r in ran if r["status"] == "passed"]
        notimpl = [r for r in ran if r["status"] == "not implemented"]
        failed = [r for r in ran if r["status"] == "failed"]
        if not mine:
            status = f"{Y}no tests{N}"
        elif not ran:
            status = f"{Y}skipped{N} ({first_lines(mine[0]['message'], 1)[0] if mine[0]['message'] else 'needs a GPU'})"
        elif failed:
            status = f"{R}FAILED{N}"
        elif notimpl:
            status = f"{Y}not implemented{N}"
        else:
            status = f"{G}passed{N}"
        ok = bool(ran) and not failed and not notimpl
        task_ok[t.number] = ok
        if ran:
            max_points += 10
            total_points += 10 if ok else 0
            all_ok &= ok
        print(f"  {t.number:>2}. {t.title:<{w}} {len(passed):>3}/{len(ran):<3}  {status}")
        for r in failed[:2]:
            print(f"        {R}x{N} {r['name']}")
            for ln in first_lines(r["message"], 4):
                print(f"            {ln[:150]}")
        if len(failed) > 2:
            print(f"        ... and {len(failed) - 2} more failing tests")
    if timings_mine:
        print(f"\n  {'timing (median, L2 flushed)':<44} {'yours':>10} {'engine':>10} {'ratio':>6} "
              f"{'% of P':>7}  score")
        for key, r in sorted(timings_mine.items()):
            ref = timings_ref.get(key)
            ratio = r["median_ms"] / ref["median_ms"] if ref and ref["median_ms"] > 0 else None
            sc = score_timing(ratio, target) if ratio is not None else 0.0
            ok = task_ok.get(r.get("task", 0), False) or kind == "solution"
            if not ok:
                sc = 0.0  # a wrong result scores zero whatever its time
            # Not scored: lanes are a picture (scripts/lab plot 01); optimized_* rows time the
            # engine's optimized kernel beside yours, for comparison, in both builds.
            scored = not key.startswith(("lane:", "optimized_"))
            if not scored:
                sc = 0.0
            if ratio is not None and kind != "solution" and scored:
                max_points += 10
                total_points += 10 * sc
            pct = f"{r['pct_of_p']:.0f}%" if r.get("pct_of_p") else "-"
            print(f"  {key:<44} {r['median_ms'] * 1e3:>8.1f}us "
                  f"{(ref['median_ms'] * 1e3 if ref else float('nan')):>8.1f}us "
                  f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>6} {pct:>7}  "
                  f"{(f'{sc * 10:.1f}/10' if kind != 'solution' and scored else '')}"
                  + ("" if ok else "  (not scored: the task's tests fail)")
                  + ("" if scored or kind == "solution" else
                     ("  (a lane: see scripts/lab plot 01)" if key.startswith("lane:")
                      else "  (the engine's optimized kernel, for comparison)")))
        p = next(iter(timings_mine.values())).get("p_gbps", 0)
        print(f"  P (device-to-device copy bandwidth measured in this run): {p:.0f} GB/s; "
              f"target: within {target}x of the engine")
    if max_points:
        print(f"\n  score: {B}{total_points:.0f} / {max_points:.0f}{N}")
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"lab{lab.id}_{kind}.json").write_text(json.dumps({
        "lab": lab.id, "kind": kind, "when": dt.datetime.now().isoformat(timespec="seconds"),
        "tests": rows, "timings": timings_mine, "engine_timings": timings_ref,
        "score": total_points, "max_score": max_points}, indent=1))
    return 0 if all_ok and rows else 1


def cmd_check(args, labs, build: Path, kind: str) -> int:
    lab = get_lab(labs, args.lab)
    if kind == "student":
        frame = subprocess.run([sys.executable, str(ROOT / "scripts/make_labs.py"), "--check-frame"],
                               capture_output=True, text=True)
        if frame.returncode != 0:
            print(f"{Y}warning: text outside the TODO regions differs from the engine's:{N}")
            print(frame.stderr)
    rdir = build / "labs" / "results"
    rdir.mkdir(parents=True, exist_ok=True)
    gpu = gpu_present()
    env = {}
    t_ref, t_mine = rdir / f"lab{lab.id}_timing_solution.jsonl", rdir / f"lab{lab.id}_timing_{kind}.jsonl"
    for f in (t_ref, t_mine):
        f.unlink(missing_ok=True)
    if gpu and not args.no_timing:
        env = {"DAY18_LAB_TIMING": "1"}
        if kind == "student":  # the engine's times, in this same run, on this GPU
            print(f"==> timing the engine's solution (test_lab{lab.id}_solution)")
            run_gtest(build / "labs" / f"test_lab{lab.id}_solution", rdir / "ref.json",
                      "*Timing*", dict(env, DAY18_LAB_RESULTS=str(t_ref)))
    elif not gpu:
        print("   (no GPU here: GPU tasks are skipped and nothing is timed)")
    binary = build / "labs" / f"test_lab{lab.id}_{kind}"
    print(f"==> {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}")
    out_json = rdir / f"lab{lab.id}_{kind}_gtest.json"
    out_json.unlink(missing_ok=True)
    rc, stdout = run_gtest(binary, out_json, args.filter,
                           dict(env, DAY18_LAB_RESULTS=str(t_mine)), quiet=not args.verbose)
    rows = parse_results(out_json)
    if not rows:
        print(stdout[-3000:])
        die(f"{binary.name} wrote no results (exit {rc})")
    mine = load_timings(t_mine)
    ref = mine if kind == "solution" else load_timings(t_ref)
    status = report(lab, rows, mine, ref, kind, rdir)
    if status != 0 and kind == "student":
        print(f"\n  details: {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary} "
              f"--gtest_filter='Lab{lab.id}_Task1_*'   (one task's tests, with full messages)")
    return status


def cmd_labs(args, labs, build: Path) -> int:
    views = ml.lab_views(labs)
    print(f"{B}{'lab':<4} {'title':<72} {'written':>8}  last check{N}")
    for lab in labs.values():
        done, n = written_counts(lab, views)
        last = build / "labs" / "results" / f"lab{lab.id}_student.json"
        info = "-"
        if last.exists():
            fix = f"delete it or run scripts/lab check {lab.id} again"
            j = read_json(last, "the last check's results", fix)
            for key, kind in (("score", (int, float)), ("max_score", (int, float)), ("when", str)):
                if not isinstance(j, dict) or not isinstance(j.get(key), kind) or isinstance(j.get(key), bool):
                    die(f"{last}: \"{key}\" is missing or not a {'number' if kind != str else 'string'}; {fix}")
            info = f"{j['score']:.0f}/{j['max_score']:.0f} ({j['when'].replace('T', ' ')})"
        print(f"{lab.id:<4} {lab.title[:72]:<72} {done:>3}/{n:<4}  {info}")
        for t in lab.tasks:
            print(f"       {t.number}. {t.title}")
    print("\n  scripts/lab check NN   (then: solution NN, diff NN, reset NN [task], run NN -- ARGS, "
          "plot NN)")
    return 0


def cmd_diff(args, labs) -> int:
    lab = get_lab(labs, args.lab)
    if args.task and args.task not in [t.key for t in lab.tasks]:
        die(f"lab {lab.id} has no task '{args.task}' (tasks: {', '.join(t.key for t in lab.tasks)})")
    views = ml.lab_views(labs)
    for path, mine, ref in learner_regions(lab, views):
        if args.task and mine.task != args.task:
            continue
        task = lab.task(mine.task)
        print(f"{B}task {task.number} ({mine.task}): {task.title}{N}  "
              f"{path.relative_to(ROOT)}:{mine.begin + 1}")
        if is_stub(mine, task, lab):
            print("   (still the stub: nothing written yet)\n")
            continue
        if "".join(mine.body) == "".join(ref.body):
            print(f"   {G}identical to the engine's{N}\n")
            continue
        for line in difflib.unified_diff(
                [ln.rstrip("\n") for ln in mine.body], [ln.rstrip("\n") for ln in ref.body],
                "yours", f"engine/{path.relative_to(lab.dir / 'src')}", lineterm=""):
            color = G if line.startswith("+") else R if line.startswith("-") else ""
            print(f"   {color}{line}{N if color else ''}")
        print()
    return 0


def cmd_reset(args, labs, build: Path) -> int:
    lab = get_lab(labs, args.lab)
    if args.task:
        lab.task(args.task) if args.task in [t.key for t in lab.tasks] else die(
            f"lab {lab.id} has no task '{args.task}' (tasks: {', '.join(t.key for t in lab.tasks)})")
    files = ml.lab_views(labs)[lab.id]
    backup = build / "labs" / "backup" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for p, (lines, regions) in files.items():
        dest = lab.dir / "src" / p.relative_to(ml.ENGINE)
        keep = {}
        if args.task and dest.exists():  # keep the learner's other regions
            for r in ml.parse_regions(dest, dest.read_text().splitlines(True)):
                if r.task != args.task:
                    keep[r.task] = r.body
        text = ml.render(p, lines, regions, lab, fill=keep)
        if dest.exists() and dest.read_text() != text:
            (backup / dest.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dest, backup / dest.relative_to(ROOT))
            print(f"   saved your {dest.relative_to(ROOT)} in {backup.relative_to(ROOT) if backup.is_relative_to(ROOT) else backup}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    print(f"reset lab {lab.id}" + (f" task {args.task}" if args.task else " (every task)"))
    return 0


def cmd_run(args, labs, build: Path) -> int:
    lab = get_lab(labs, args.lab)
    binary = build / "labs" / f"day18_lab{lab.id}"
    if not binary.exists():
        die(f"{binary} is not built (scripts/lab build)")
    extra = [a for a in args.rest if a != "--"]
    cmd = [str(binary)] + list(lab.raw.get("run_args", [])) + extra
    print(f"==> {' '.join(cmd)}   (day18 with your lab {lab.id} code)")
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


def cmd_plot(args, labs, build: Path) -> int:
    lab = get_lab(labs, args.lab)
    mine = build / "labs" / "results" / f"lab{lab.id}_student.json"
    if not mine.exists():
        die(f"no results yet: run scripts/lab check {lab.id} first (on a GPU for timings)")
    py = ROOT / ".venv" / "bin" / "python"
    py = str(py) if py.exists() else sys.executable
    out = build / "labs" / "results" / f"lab{lab.id}.png"
    cmd = [py, str(ROOT / "scripts" / "plot_lab.py"), str(mine), "--out", str(out)]
    return subprocess.call(cmd)


# --------------------------------------------------------------------------------------------
# mutations and the self-test
def configure_mutant_build(build: Path, src_root: Path) -> Path:
    mb = build / "labs" / "mutants-build"
    cache = {}
    for line in (build / "CMakeCache.txt").read_text().splitlines():
        for k in ("CMAKE_CUDA_ARCHITECTURES", "CMAKE_BUILD_TYPE"):
            if line.startswith(k + ":"):
                cache[k] = line.split("=", 1)[1]
    if not (mb / "build.ninja").exists():
        cmd = ["cmake", "-S", str(ROOT), "-B", str(mb), "-G", "Ninja",
               f"-DDAY18_LAB_SRC_ROOT={src_root}", "-DDAY18_BUILD_BENCHMARKS=OFF"] + [
            f"-D{k}={v}" for k, v in cache.items()]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stdout[-2000:] + p.stderr[-3000:])
            die(f"configuring the mutant build in {mb} failed (output above)")
    return mb


def build_target(mb: Path, target: str) -> bool:
    jobs = os.environ.get("DAY18_JOBS", str(os.cpu_count() or 2))
    p = subprocess.run(["cmake", "--build", str(mb), "-j", jobs, "--target", target],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout[-3000:] + p.stderr[-2000:])
    return p.returncode == 0


def mutant_name(lab_id: str, mutation: str | None) -> str:
    """The file name of a saved mutant test binary (`mutate --save` / `--prebuilt`)."""
    tail = "solution" if mutation is None else mutation.replace("/", "__")
    return f"test_lab{lab_id}__{tail}"


class MutantBinaries:
    """Where `mutate` gets each variant's test binary: built here from filled sources (and
    copied into --save DIR, stripped, when asked), or taken from --prebuilt DIR, made that way on
    a machine that compiles for the GPU, so a GPU machine runs them without compiling anything."""

    def __init__(self, args, labs, build: Path):
        self.labs, self.prebuilt = labs, args.prebuilt
        self.save = args.save
        if self.prebuilt:
            if not self.prebuilt.is_dir():
                die(f"--prebuilt {args.prebuilt}: no such folder (make it with mutate --save)")
            return
        self.src_root = build / "labs" / "mutants-src"
        for lab in labs.values():  # every lab needs sources to configure: the solution, to start
            ml.fill(labs, lab.id, self.src_root / f"{lab.id}-{lab.slug}" / "src", None)
        self.mb = configure_mutant_build(build, self.src_root)
        if self.save:
            self.save.mkdir(parents=True, exist_ok=True)

    def get(self, lab, mutation: str | None) -> Path | None:
        """The test binary of `lab` with `mutation` (None: the solution) in its regions."""
        if self.prebuilt:
            path = self.prebuilt / mutant_name(lab.id, mutation)
            if not path.exists():
                print(f"   {R}no prebuilt binary {path}{N} (rebuild the folder with mutate --save)")
                return None
            return path
        dest = self.src_root / f"{lab.id}-{lab.slug}" / "src"
        ml.fill(self.labs, lab.id, dest, mutation)
        target = f"test_lab{lab.id}_student"
        if not build_target(self.mb, target):
            return None
        binary = self.mb / "labs" / target
        if self.save:
            saved = self.save / mutant_name(lab.id, mutation)
            shutil.copy2(binary, saved)
            subprocess.run(["strip", "--strip-debug", str(saved)], capture_output=True)
        return binary

    def restore(self, lab) -> None:
        if not self.prebuilt:
            ml.fill(self.labs, lab.id, self.src_root / f"{lab.id}-{lab.slug}" / "src", None)


def cmd_mutate(args, labs, build: Path) -> int:
    ids = [get_lab(labs, args.lab).id] if args.lab else list(labs)
    if args.save and args.prebuilt:
        die("mutate: --save builds the binaries, --prebuilt runs saved ones: give one of them")
    bins = MutantBinaries(args, labs, build)
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    bad = 0
    for lab_id in ids:
        lab = labs[lab_id]
        # 1. the solution put into the lab's regions passes the lab's tests
        binary = bins.get(lab, None)
        if binary is None:
            print(f"{R}lab {lab.id}: the solution-filled lab does not compile{N}")
            bad += 1
            continue
        rc, _ = run_gtest(binary, out)
        rows = parse_results(out)
        failing = [r["name"] for r in rows if r["status"] in ("failed", "not implemented")]
        skipped = sum(r["status"] == "skipped" for r in rows)
        print(f"lab {lab.id}: engine code in every region: "
              + (f"{G}all {len(rows) - skipped} tests that ran pass{N} ({skipped} skipped)"
                 if not failing and rc == 0 else f"{R}{len(failing)} fail: {failing[:3]}{N}"))
        bad += bool(failing) or rc != 0
        # 2. each mutation makes its task's tests fail
        for m in ml.load_mutations(lab.id):
            if args.cpu_only and not m.get("cpu", False):
                continue
            if getattr(args, "device_only", False) and m.get("cpu", False):
                continue  # CI catches the CPU mutations; a GPU run needs only the device ones
            name = f"{m['task']}/{m['name']}"
            binary = bins.get(lab, name)
            if binary is None:
                print(f"   {R}mutation {name} has no binary{N} (fix tests/labs/{lab.id}/mutations.json)")
                bad += 1
                continue
            run_gtest(binary, out)
            rows = parse_results(out)
            n = lab.task(m["task"]).number
            caught = [r["name"] for r in rows if r["status"] == "failed"]
            ran = [r for r in rows if r["task"] == n and r["status"] != "skipped"]
            if caught:
                print(f"   {G}caught{N}  {name:<36} by {len(caught)} tests, e.g. {caught[0]}  ({m['why']})")
            elif not ran:
                print(f"   {Y}skipped{N} {name:<36} (its tests need a GPU)")
                bad += REQUIRE_GPU
            else:
                print(f"   {R}MISSED{N}  {name:<36} every test passes with it: {m['why']}")
                bad += 1
        bins.restore(lab)
    if args.save:
        print(f"saved the binaries in {args.save}: run them with "
              f"scripts/lab mutate --prebuilt {args.save}")
    return 1 if bad else 0


def cmd_selftest(args, labs, build: Path) -> int:
    bad = 0
    for lab in labs.values():
        binary = build / "labs" / f"test_lab{lab.id}_student"
        out = build / "labs" / "results" / f"selftest_{lab.id}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        run_gtest(binary, out)
        rows = parse_results(out)
        wrong = [r for r in rows if r["status"] in ("passed", "failed")]
        counts = {s: sum(r["status"] == s for r in rows) for s in ("not implemented", "skipped")}
        if not rows or wrong:
            bad += 1
            print(f"{R}lab {lab.id}: {len(wrong)} student tests do not fail with "
                  f"'{NOT_IMPLEMENTED}' on the stubs:{N}")
            for r in wrong[:10]:
                print(f"   {r['status']}: {r['name']} {first_lines(r['message'], 1)}")
        else:
            print(f"lab {lab.id}: {counts['not implemented']} student tests fail with "
                  f"'{NOT_IMPLEMENTED}', {counts['skipped']} skip (GPU)")
    args.lab, args.save, args.prebuilt = None, None, None
    return 1 if bad else cmd_mutate(args, labs, build)


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/lab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, required=True, help="the build folder (build or build-gpu)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("labs")
    for name in ("check", "solution"):
        p = sub.add_parser(name)
        p.add_argument("lab")
        p.add_argument("--filter", help="gtest filter, e.g. 'Lab02_Task2_*'")
        p.add_argument("--no-timing", action="store_true", help="skip the timing (GPU) runs")
        p.add_argument("-v", "--verbose", action="store_true", help="print the tests' output")
    for name in ("diff", "reset"):
        p = sub.add_parser(name)
        p.add_argument("lab")
        p.add_argument("task", nargs="?")
    p = sub.add_parser("run")
    p.add_argument("lab")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p = sub.add_parser("plot")
    p.add_argument("lab")
    p = sub.add_parser("mutate")
    p.add_argument("lab", nargs="?")
    p.add_argument("--cpu-only", action="store_true")
    p.add_argument("--device-only", action="store_true",
                   help="only the mutations that need a GPU (what --save is for)")
    p.add_argument("--save", type=Path, metavar="DIR",
                   help="also keep every variant's test binary in DIR (to run on a GPU machine)")
    p.add_argument("--prebuilt", type=Path, metavar="DIR",
                   help="run the binaries a `mutate --save DIR` kept; build nothing")
    p = sub.add_parser("selftest")
    p.add_argument("--cpu-only", action="store_true")
    args = ap.parse_args()
    try:
        labs = ml.load_manifest()
        build = args.build.resolve()
        if args.cmd == "labs":
            return cmd_labs(args, labs, build)
        if args.cmd == "check":
            return cmd_check(args, labs, build, "student")
        if args.cmd == "solution":
            return cmd_check(args, labs, build, "solution")
        if args.cmd == "diff":
            return cmd_diff(args, labs)
        if args.cmd == "reset":
            return cmd_reset(args, labs, build)
        if args.cmd == "run":
            return cmd_run(args, labs, build)
        if args.cmd == "plot":
            return cmd_plot(args, labs, build)
        if args.cmd == "mutate":
            return cmd_mutate(args, labs, build)
        if args.cmd == "selftest":
            return cmd_selftest(args, labs, build)
    except ml.LabError as e:
        die(str(e))
    return 2


if __name__ == "__main__":
    sys.exit(main())
