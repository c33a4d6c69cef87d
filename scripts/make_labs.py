#!/usr/bin/env python3
"""Generate the labs from the engine: labs/NN-name/src/ are copies of the engine files that carry
`// LAB NN BEGIN task: hint` ... `// LAB NN END task` regions, with each region emptied.

The engine is the solution of every lab; a lab is a view of it, never a hand-kept fork. A region
in host code becomes its hint and `throw ::day18::LabNotImplemented(...)`; a region marked
`[device]` (inside a kernel) becomes its hint only: the kernel then leaves its output untouched,
the tests poison outputs before each launch, and they report an untouched output as "not
implemented yet". labs/NN-name/lab.json (written by hand) names each lab, its tasks in order and their
titles; this script checks that markers and manifests agree.

  scripts/make_labs.py                 write labs/NN-name/src/ for every lab
  scripts/make_labs.py --check         fail if labs/ differ from what would be written (CI)
  scripts/make_labs.py --check-frame   like --check, but a region may hold the learner's code
                                       (what `scripts/lab test` runs on a learner's checkout)
  scripts/make_labs.py --fill solution --lab 02 --out DIR
                                       write lab 02 with the engine's code in every region
  scripts/make_labs.py --fill mutant --lab 02 --mutation qk/no-scale --out DIR
                                       the same, with one region deliberately broken (a mutation
                                       of tests/labs/02/mutations.json): its tests must fail
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
LABS = ROOT / "labs"
MANIFEST = LABS / "NN-name" / "lab.json"  # one per lab, written by hand
SOURCE_SUFFIXES = {".cpp", ".cu", ".h", ".cuh"}

BEGIN_RE = re.compile(r"^(?P<indent>\s*)// LAB (?P<lab>\d\d) BEGIN (?P<task>[a-z0-9_]+)"
                      r"(?P<device> \[device\])?: (?P<hint>.+?)\s*$")
END_RE = re.compile(r"^\s*// LAB (?P<lab>\d\d) END (?P<task>[a-z0-9_]+)\s*$")
ANY_MARK_RE = re.compile(r"// LAB \d\d (BEGIN|END)\b")


class LabError(Exception):
    """A marker or manifest problem, reported with file:line."""


@dataclasses.dataclass
class Region:
    lab: str
    task: str
    device: bool
    hint: str
    indent: str
    begin: int  # index of the BEGIN line
    end: int    # index of the END line
    body: list[str]  # the engine's lines between the markers (with their newlines)


@dataclasses.dataclass
class Task:
    key: str
    number: int
    title: str


@dataclasses.dataclass
class Lab:
    id: str
    slug: str
    title: str
    tasks: list[Task]
    raw: dict

    @property
    def dir(self) -> Path:
        return LABS / f"{self.id}-{self.slug}"

    def task(self, key: str) -> Task:
        for t in self.tasks:
            if t.key == key:
                return t
        raise LabError(f"lab {self.id} has no task '{key}' in {self.dir.relative_to(ROOT)}/lab.json "
                       f"(tasks: {', '.join(t.key for t in self.tasks)})")


def load_manifest() -> dict[str, Lab]:
    labs = {}
    for path in sorted(LABS.glob("[0-9][0-9]-*/lab.json")):
        try:
            entry = json.loads(path.read_text())
            tasks = [Task(t["key"], i + 1, t["title"]) for i, t in enumerate(entry["tasks"])]
            lab = Lab(entry["id"], entry["slug"], entry["title"], tasks, entry)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise LabError(f"{path.relative_to(ROOT)}: {type(e).__name__}: {e}") from e
        if path.parent.name != f"{lab.id}-{lab.slug}":
            raise LabError(f"{path.relative_to(ROOT)}: id/slug say {lab.id}-{lab.slug}, the "
                           f"folder is {path.parent.name}")
        labs[lab.id] = lab
    return labs


def parse_regions(path: Path, lines: list[str]) -> list[Region]:
    """The LAB regions of one file, in order; markers must pair and not nest."""
    regions, open_ = [], None
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for i, line in enumerate(lines):
        m = BEGIN_RE.match(line)
        if m:
            if open_:
                raise LabError(f"{rel}:{i + 1}: LAB {m['lab']} BEGIN {m['task']} inside the open "
                               f"region LAB {open_.lab} {open_.task} (line {open_.begin + 1})")
            open_ = Region(m["lab"], m["task"], bool(m["device"]), m["hint"], m["indent"], i, -1, [])
            continue
        m = END_RE.match(line)
        if m:
            if not open_ or (m["lab"], m["task"]) != (open_.lab, open_.task):
                raise LabError(f"{rel}:{i + 1}: LAB {m['lab']} END {m['task']} without its BEGIN")
            open_.end = i
            open_.body = lines[open_.begin + 1:i]
            regions.append(open_)
            open_ = None
            continue
        if ANY_MARK_RE.search(line):
            raise LabError(f"{rel}:{i + 1}: malformed LAB marker (expected "
                           f"'// LAB NN BEGIN task[ [device]]: hint' or '// LAB NN END task'): "
                           f"{line.strip()}")
        if open_ is not None:
            open_.body.append(line)
    if open_:
        raise LabError(f"{rel}:{open_.begin + 1}: LAB {open_.lab} BEGIN {open_.task} never ends")
    return regions


def engine_files() -> dict[Path, tuple[list[str], list[Region]]]:
    """Every engine source that carries markers: its lines and regions."""
    out = {}
    for p in sorted(ENGINE.rglob("*")):
        if p.suffix not in SOURCE_SUFFIXES or not p.is_file():
            continue
        text = p.read_text()
        if "// LAB " not in text:
            continue
        lines = text.splitlines(keepends=True)
        regions = parse_regions(p, lines)
        if regions and p.suffix in (".h", ".cuh"):
            raise LabError(f"{p.relative_to(ROOT)}: LAB regions belong in .cpp/.cu files (a lab "
                           f"replaces whole object files; headers hold the contracts)")
        if regions:
            out[p] = (lines, regions)
    return out


def region_keys(regions: list[Region]) -> list[tuple[str, int]]:
    """(task, k) for each region of one file: the k-th region (from 0) of its lab's task there.
    A task may have several regions in one file (one per function body); the key tells them
    apart, in the engine's file and in the learner's copy alike."""
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for r in regions:
        k = seen.get((r.lab, r.task), 0)
        seen[(r.lab, r.task)] = k + 1
        keys.append((r.task, k))
    return keys


def stub_lines(r: Region, task: Task, lab: Lab) -> list[str]:
    ind = r.indent
    readme = f"labs/{lab.id}-{lab.slug}/README.md"
    out = [f"{ind}// TODO lab {r.lab} task {task.number}: {task.title}\n",
           f"{ind}// ({readme}, Task {task.number})\n"]
    if r.device:
        out.append(f"{ind}// (device code: until this is written the kernel leaves its output "
                   f"untouched)\n")
    else:
        out.append(f'{ind}throw ::day18::LabNotImplemented("{r.lab}", {task.number}, '
                   f'"{r.task}", "{readme}");\n')
    return out


def render(path: Path, lines: list[str], regions: list[Region], lab: Lab,
           fill: dict[tuple[str, int], list[str]] | None = None) -> str:
    """The lab's copy of one engine file. `fill` maps a region's key (region_keys: task, k) to
    the lines to put in it (default: the stub); other labs' markers are dropped, their code kept."""
    rel = path.relative_to(ENGINE)
    mine = [r for r in regions if r.lab == lab.id]
    head = [f"// generated from engine/{rel} by scripts/make_labs.py (lab {lab.id});\n",
            "// edit only inside the TODO regions.\n"]
    if any(not r.device for r in mine):
        head.append('#include "engine/core/error.h"  // day18::LabNotImplemented\n')
    body, i = [], 0
    for r, key in zip(regions, region_keys(regions)):
        body.extend(lines[i:r.begin])
        if r.lab != lab.id:
            body.extend(r.body)
        else:
            task = lab.task(r.task)
            body.append(lines[r.begin])
            if fill is not None and key in fill:
                body.extend(fill[key])
            else:
                body.extend(stub_lines(r, task, lab))
            body.append(lines[r.end])
        i = r.end + 1
    body.extend(lines[i:])
    return "".join(head + body)


def lab_views(labs: dict[str, Lab], files=None):
    """{lab id: {engine path: (lines, regions)}} for the files that carry that lab's markers."""
    files = engine_files() if files is None else files
    views: dict[str, dict[Path, tuple[list[str], list[Region]]]] = {k: {} for k in labs}
    for p, (lines, regions) in files.items():
        for r in regions:
            if r.lab not in labs:
                raise LabError(f"{p.relative_to(ROOT)}:{r.begin + 1}: LAB {r.lab} has no "
                               f"labs/{r.lab}-*/lab.json")
            labs[r.lab].task(r.task)  # raises for an unknown task
            views[r.lab][p] = (lines, regions)
    for lab in labs.values():
        used = {r.task for _, regs in views[lab.id].values() for r in regs if r.lab == lab.id}
        missing = [t.key for t in lab.tasks if t.key not in used]
        if missing:
            raise LabError(f"lab {lab.id}: tasks {missing} in {lab.dir.relative_to(ROOT)}/lab.json "
                           f"have no LAB {lab.id} region in engine/")
    return views


def generated(labs: dict[str, Lab]) -> dict[Path, str]:
    out = {}
    for lab_id, files in lab_views(labs).items():
        lab = labs[lab_id]
        for p, (lines, regions) in files.items():
            out[lab.dir / "src" / p.relative_to(ENGINE)] = render(p, lines, regions, lab)
    return out


def strip_regions(text: str) -> str:
    """A file with every region's body removed (markers kept): its frame."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if BEGIN_RE.match(line):
            inside = True
            out.append(line)
        elif END_RE.match(line):
            inside = False
            out.append(line)
        elif not inside:
            out.append(line)
    return "".join(out)


def existing_lab_files(labs: dict[str, Lab]) -> set[Path]:
    found = set()
    for lab in labs.values():
        src = lab.dir / "src"
        if src.exists():
            found |= {p for p in src.rglob("*") if p.is_file()}
    return found


def check(labs: dict[str, Lab], frame_only: bool) -> int:
    want = generated(labs)
    problems = []
    for path, text in sorted(want.items()):
        rel = path.relative_to(ROOT)
        if not path.exists():
            problems.append(f"missing: {rel}")
            continue
        have = path.read_text()
        a, b = (strip_regions(have), strip_regions(text)) if frame_only else (have, text)
        if a != b:
            diff = list(difflib.unified_diff(b.splitlines(), a.splitlines(), "generated",
                                             str(rel), lineterm="", n=1))
            problems.append(f"differs: {rel}\n    " + "\n    ".join(diff[:12]))
    for extra in sorted(existing_lab_files(labs) - set(want)):
        problems.append(f"not generated from engine/ (stale?): {extra.relative_to(ROOT)}")
    if problems:
        what = "outside the TODO regions" if frame_only else ""
        print(f"make_labs: labs/ is out of date with engine/ {what}:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        print("  fix: scripts/make_labs.py (regenerates labs/*/src; a learner's regions are "
              "overwritten: save them first, or use scripts/lab reset)", file=sys.stderr)
        return 1
    n = len(want)
    print(f"make_labs: {n} generated files in labs/ match engine/"
          + (" (frame only; regions may hold your code)" if frame_only else ""))
    return 0


def load_mutations(lab_id: str) -> list[dict]:
    p = ROOT / "tests" / "labs" / lab_id / "mutations.json"
    if not p.exists():
        return []
    return json.loads(p.read_text())["mutations"]


def mutate(region_body: list[str], mutation: dict, where: str) -> list[str]:
    text = "".join(region_body)
    find, repl = mutation["find"], mutation["replace"]
    n = text.count(find)
    if n != 1:
        raise LabError(f"mutation {mutation['task']}/{mutation['name']}: '{find}' occurs {n} times "
                       f"in {where} (must be exactly once: update tests/labs/*/mutations.json)")
    return text.replace(find, repl).splitlines(keepends=True)


def fill(labs: dict[str, Lab], lab_id: str, out: Path, mutation: str | None) -> None:
    lab = labs[lab_id]
    views = lab_views(labs)[lab_id]
    mut = None
    if mutation:
        task, _, name = mutation.partition("/")
        for m in load_mutations(lab_id):
            if m["task"] == task and m["name"] == name:
                mut = m
        if mut is None:
            raise LabError(f"lab {lab_id} has no mutation '{mutation}' in "
                           f"tests/labs/{lab_id}/mutations.json")
    applied = 0
    for p, (lines, regions) in views.items():
        filled = {}
        for r, key in zip(regions, region_keys(regions)):
            if r.lab != lab_id:
                continue
            body = r.body
            if mut and r.task == mut["task"] and (mut.get("file") in (None, str(p.relative_to(ENGINE)))):
                if mut["find"] in "".join(body):
                    body = mutate(body, mut, f"{p.relative_to(ROOT)} region {r.task}")
                    applied += 1
            filled[key] = body  # each region its own body (a task may have several in a file)
        dest = out / p.relative_to(ENGINE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = render(p, lines, regions, lab, fill=filled)
        if not dest.exists() or dest.read_text() != text:  # keep mtimes: rebuild only what changed
            dest.write_text(text)
    if mut and applied != 1:
        raise LabError(f"mutation {mutation}: its text was found in {applied} regions (need 1)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail on any difference (CI)")
    ap.add_argument("--check-frame", action="store_true",
                    help="fail on differences outside the TODO regions only")
    ap.add_argument("--fill", choices=["solution", "mutant"], help="write one lab filled in")
    ap.add_argument("--lab", help="lab id for --fill, e.g. 02")
    ap.add_argument("--mutation", help="task/name of a mutation (with --fill mutant)")
    ap.add_argument("--out", type=Path, help="folder for --fill (the lab's src/ layout)")
    ap.add_argument("--list-mutations", metavar="LAB", help="print LAB's mutations, one a line")
    args = ap.parse_args()
    try:
        labs = load_manifest()
        if args.list_mutations:
            for m in load_mutations(args.list_mutations):
                print(f"{m['task']}/{m['name']}\t{m.get('cpu', False)}\t{m['why']}")
            return 0
        if args.fill:
            if not args.lab or not args.out or (args.fill == "mutant") != bool(args.mutation):
                ap.error("--fill needs --lab and --out (and --mutation for mutant)")
            if args.lab not in labs:
                ap.error(f"--lab {args.lab}: no such lab (labs: {', '.join(labs)})")
            fill(labs, args.lab, args.out, args.mutation)
            return 0
        if args.check or args.check_frame:
            return check(labs, frame_only=args.check_frame and not args.check)
        want = generated(labs)
        for stale in existing_lab_files(labs) - set(want):
            stale.unlink()
        written = 0
        for path, text in want.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                written += 1
        print(f"make_labs: {len(want)} files for {len(labs)} labs ({written} rewritten)")
        return 0
    except LabError as e:
        print(f"make_labs: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
