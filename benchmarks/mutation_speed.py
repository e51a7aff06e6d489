"""What a mutant costs on a big file: the mutation source at an earlier commit (a parse and a dump
of the whole file per mutant) against today's (the statement's lines parsed alone, their dump
spliced into the file's), side by side on the same lines of youtube-dl's `youtube_dl/utils.py`
(3,887 lines at bug 1's buggy commit), the two in turn on each line. The lines are lines where a
statement starts (as the localizer's are), evenly spread over the file.

A line's cost is everything the search pays for its mutants (`mutate._mutants`: the file's parse
once a line included); a mutant's cost is its line's divided by the line's mutants. Both versions
must give the same mutants (texts, notes, trees, order) on every line, or the run stops.

    .venv/bin/python benchmarks/mutation_speed.py --before cf566d1 \
        [--repo /work/bugsinpy/repos/youtube-dl] [--lines 40] [--json FILE]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import json
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repair_agent.search import mutate  # noqa: E402

BUGGY = "99036a1298089068dcf80c0985bfcc3f8c24f281"  # youtube-dl bug 1 (BugsInPy bug.info)
FILE = "youtube_dl/utils.py"


def git(*args: str, cwd: Path = ROOT) -> bytes:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=True).stdout


def package_at(rev: str, into: Path):
    """`repair_agent` as it was at `rev`, imported beside today's as `repair_agent_before` (the
    search's imports are relative); its mutation module."""
    tarfile.open(fileobj=io.BytesIO(git("archive", rev, "repair_agent"))).extractall(into)
    (into / "repair_agent").rename(into / "repair_agent_before")
    sys.path.insert(0, str(into))
    return importlib.import_module("repair_agent_before.search.mutate")


def loaded() -> list[str]:
    """Today's package files this run imported (the commit it names holds them as they ran)."""
    return [m.__file__ for name, m in sys.modules.items() if name.startswith("repair_agent.") and m.__file__]


def timed(module, source: str, line: int) -> tuple[list, float]:
    start = time.perf_counter()
    made = list(module._mutants(source, line))
    return made, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the commit whose mutation source is the old way")
    ap.add_argument("--repo", type=Path, default=Path("/work/bugsinpy/repos/youtube-dl"))
    ap.add_argument("--lines", type=int, default=40, help="lines that start a statement, evenly spread")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/mutation-speed.json")
    args = ap.parse_args()

    source = git("show", f"{BUGGY}:{FILE}", cwd=args.repo).decode()
    count = source.count("\n")
    starts = sorted({n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.stmt)})
    lines = [starts[i * len(starts) // args.lines] for i in range(args.lines)]  # where statements start
    with tempfile.TemporaryDirectory() as tmp:
        before = package_at(args.before, Path(tmp))
        rows = []
        for k, line in enumerate(lines):
            ways = [("old", before), ("new", mutate)]
            took = {}
            for name, module in ways if k % 2 == 0 else ways[::-1]:  # each goes first on half the lines
                took[name] = timed(module, source, line)
            if took["old"][0] != took["new"][0]:
                sys.exit(f"line {line}: the two versions give different mutants")
            n = len(took["new"][0])
            rows.append({"line": line, "mutants": n, "old_s": round(took["old"][1], 4),
                         "new_s": round(took["new"][1], 4)})
            print(f"line {line}: {n} mutants, old {took['old'][1]:.3f} s, new {took['new'][1]:.3f} s", flush=True)

    made = [r for r in rows if r["mutants"]]
    old = statistics.median(r["old_s"] / r["mutants"] for r in made)
    new = statistics.median(r["new_s"] / r["mutants"] for r in made)
    result = {
        "file": f"youtube-dl {BUGGY[:7]}:{FILE} ({count} lines)",
        "code": git("rev-parse", "--short", "HEAD").decode().strip(),
        "dirty": bool(git("status", "--porcelain", "--", *loaded())),
        "before": args.before,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "lines": len(rows), "lines_with_mutants": len(made), "mutants": sum(r["mutants"] for r in rows),
        "same_mutants": True,
        "per_mutant_ms": {"old": round(old * 1000, 2), "new": round(new * 1000, 2)},
        "per_line_s": {"old": statistics.median(r["old_s"] for r in made),
                       "new": statistics.median(r["new_s"] for r in made)},
        "speedup": round(old / new, 1),
        "rows": rows,
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
