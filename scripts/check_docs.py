#!/usr/bin/env python3
"""Check that the commands the docs quote exist, and that their tables are well formed.

  python3 scripts/check_docs.py --day18 build/engine/day18        (CI; ctest: DocsCheck.*)

For every markdown file of the course (README.md, docs/**/*.md, labs/*/README.md):
- each `day18 ...` command (in a code block or an inline code span; build*/engine/day18 and
  ./day18 count too) names a real subcommand, and every --flag it uses is in that subcommand's
  --help (global flags before the subcommand: in `day18 --help`);
- each `scripts/NAME.py ...` / `python3 scripts/NAME.py ...` names a script that exists, and its
  --flags are in the script's --help;
- each `scripts/lab CMD ...` names a command of `scripts/lab help`; `scripts/lab run NN -- ARGS`
  and `scripts/lab tour ARGS` are checked as the day18 commands they run;
- each table row has as many cells as its header (an unescaped | inside a cell breaks a table).
Prints every problem as FILE:LINE: what, and exits 1 if there is any.
"""
from __future__ import annotations

import argparse
import functools
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DAY18_RE = re.compile(r"^(?:\./|(?:[\w.-]+/)*engine/)?day18$")
GLOBAL_WITH_VALUE = {"--paged-attention"}


def doc_files() -> list[pathlib.Path]:
    files = [ROOT / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "labs").glob("*/README.md"))
    return [f for f in files if f.exists()]


def quoted_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command text) of each code-block line and inline code span; a code line
    that ends in a backslash continues on the next (the command is checked whole, at its first
    line)."""
    out: list[tuple[int, str]] = []
    in_block = False
    cont: tuple[int, str] | None = None  # a command continued by a trailing backslash
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            if cont:
                out.append(cont)
                cont = None
            continue
        if in_block or line.startswith("    "):
            start, head = cont if cont else (n, "")
            cmd = (head + " " + line.strip()).strip()
            if cmd.endswith("\\"):
                cont = (start, cmd[:-1].rstrip())
                continue
            cont = None
            out.append((start, cmd))
        else:
            if cont:
                out.append(cont)
                cont = None
            for m in re.finditer(r"`([^`]+)`", line):
                out.append((n, m.group(1).strip()))
    if cont:
        out.append(cont)
    return out


def pieces(cmd: str) -> list[list[str]]:
    """The simple commands of a shell line, as token lists (None where it does not tokenize)."""
    cmd = cmd.split(" #")[0].strip()
    if cmd.startswith("$ "):
        cmd = cmd[2:]
    try:
        lex = shlex.shlex(cmd, posix=True, punctuation_chars=";&|()")
        lex.whitespace_split = True
        toks = list(lex)
    except ValueError:
        return []
    out, cur = [], []
    for t in toks:
        if t and set(t) <= set(";&|()"):
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    # Leading environment assignments and wrappers.
    res = []
    for p in out:
        while p and (re.match(r"^[A-Z_][A-Z0-9_]*=", p[0]) or p[0] in ("sudo", "time", "env", "exec")):
            p = p[1:]
        if p:
            res.append(p)
    return res


def placeholder(tok: str) -> bool:
    return any(c in tok for c in "<>[]{}$*") or "..." in tok or tok.endswith("…")


@functools.lru_cache(maxsize=None)
def help_text(argv: tuple[str, ...]) -> str:
    try:
        r = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"<cannot run: {e}>"
    return r.stdout + r.stderr if r.returncode == 0 else ""


def subcommands(help_out: str) -> set[str]:
    subs, on = set(), False
    for line in help_out.splitlines():
        if line.strip().lower().startswith("subcommands"):
            on = True
            continue
        if on:
            m = re.match(r"^  (\S+)", line)
            if m:
                subs.add(m.group(1))
            elif line.strip() and not line.startswith("   "):
                on = False
    return subs


def flags_of(help_out: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[A-Za-z0-9][\w-]*)", help_out))


class Checker:
    def __init__(self, day18: str) -> None:
        self.day18 = day18
        self.problems: list[str] = []
        self.checked = 0

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def check_day18(self, where: str, args: list[str]) -> None:
        self.checked += 1
        top = help_text((self.day18,))
        if not top:
            self.bad(where, f"{self.day18} --help failed")
            return
        i = 0
        while i < len(args) and args[i].startswith("-"):
            flag = args[i].split("=")[0]
            if flag not in flags_of(top) and flag not in ("--help", "-h", "--version"):
                self.bad(where, f"day18: no global flag {flag}")
            i += 2 if (flag in GLOBAL_WITH_VALUE and "=" not in args[i]) else 1
        if i >= len(args):
            return
        path = [self.day18]
        sub = args[i]
        if placeholder(sub):
            return
        if sub not in subcommands(top):
            self.bad(where, f"day18 has no subcommand '{sub}' (day18 --help lists {sorted(subcommands(top))})")
            return
        path.append(sub)
        rest = args[i + 1:]
        sub_help = help_text(tuple(path))
        # A sub-subcommand (e.g. `day18 tune show`).
        if rest and rest[0] in subcommands(sub_help):
            path.append(rest[0])
            sub_help = help_text(tuple(path))
            rest = rest[1:]
        known = flags_of(sub_help) | {"--help", "-h"}
        for t in rest:
            if t == "--":
                break
            if t.startswith("--") and not placeholder(t):
                flag = t.split("=")[0]
                if flag not in known:
                    self.bad(where, f"`{' '.join(['day18', *path[1:]])}` has no flag {flag}")

    def check_script(self, where: str, script: str, args: list[str]) -> None:
        self.checked += 1
        p = ROOT / script
        if not p.exists():
            self.bad(where, f"{script} does not exist")
            return
        if p.suffix != ".py":
            return
        h = help_text((sys.executable, str(p)))
        if not h:
            return  # a script without argparse help (or that needs matplotlib first): not checked
        known = flags_of(h) | {"--help", "-h"}
        for t in args:
            if t.startswith("--") and not placeholder(t) and t.split("=")[0] not in known:
                self.bad(where, f"{script} has no flag {t.split('=')[0]}")

    def check_lab(self, where: str, args: list[str]) -> None:
        self.checked += 1
        h = subprocess.run([str(ROOT / "scripts/lab"), "help"], capture_output=True, text=True,
                           cwd=ROOT).stdout
        cmds = set(re.findall(r"^  scripts/lab (\w+)", h, re.M))
        if not args:
            return
        if placeholder(args[0]):
            return
        if args[0] not in cmds:
            self.bad(where, f"scripts/lab has no command '{args[0]}' (scripts/lab help lists {sorted(cmds)})")
            return
        if args[0] == "run" and "--" in args:
            self.check_day18(where, args[args.index("--") + 1:])
        elif args[0] == "tour":
            rest, j = [], 1
            while j < len(args):
                if args[j] == "--preset" and j + 1 < len(args) and args[j + 1] in ("cpu", "gpu"):
                    j += 2
                    continue
                rest.append(args[j])
                j += 1
            self.check_day18(where, ["tour", *rest])

    def check_command(self, where: str, toks: list[str]) -> None:
        if toks[0] in ("python3", "python", ".venv/bin/python") and len(toks) > 1:
            toks = toks[1:]
        head = toks[0]
        if DAY18_RE.match(head):
            self.check_day18(where, toks[1:])
        elif head == "scripts/lab":
            self.check_lab(where, toks[1:])
        elif re.match(r"^scripts/[\w.-]+\.(py|sh)$", head):
            self.check_script(where, head, toks[1:])

    def check_tables(self, f: pathlib.Path, text: str) -> None:
        header_cells = None
        in_block = False
        for n, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
            if in_block or not line.startswith("|"):
                header_cells = None
                continue
            cells = len(re.findall(r"(?<!\\)\|", re.sub(r"`[^`]*`", "x", line)))
            if header_cells is None:
                header_cells = cells
            elif cells != header_cells:
                self.bad(f"{f.relative_to(ROOT)}:{n}",
                         f"table row has {cells - 1} cells, its header {header_cells - 1} "
                         "(an unescaped | in a cell? write \\|)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--day18", default=str(ROOT / "build/engine/day18"), help="the day18 binary")
    ap.add_argument("files", nargs="*", type=pathlib.Path, help="markdown files (default: the course's)")
    a = ap.parse_args()
    if not pathlib.Path(a.day18).exists():
        sys.exit(f"check_docs: --day18 {a.day18}: not found (build first: scripts/lab build)")
    c = Checker(a.day18)
    files = [f.resolve() for f in a.files] or doc_files()
    for f in files:
        try:
            text = f.read_text()
        except OSError as e:
            sys.exit(f"check_docs: {f}: cannot read it ({e.strerror})")
        c.check_tables(f, text)
        for n, cmd in quoted_commands(text):
            for toks in pieces(cmd):
                c.check_command(f"{f.relative_to(ROOT)}:{n}", toks)
    for p in c.problems:
        print(p)
    print(f"check_docs: {len(files)} files, {c.checked} commands checked, {len(c.problems)} problems",
          file=sys.stderr)
    return 1 if c.problems else 0


if __name__ == "__main__":
    sys.exit(main())
