"""The mutation source now against an earlier commit's, on the lines that benchmark runs searched.

For each record's searched lines (`search.lines`), both versions' mutants are made from the task's
buggy file: are they the same, in the same order, and how many are there? For a record whose fix
came from mutation, is that fix's mutant still made? No test runs; this only compares what the
search would try.

    python benchmarks/mutants_compare.py --before 21d3ebd~1 \
        --quixbugs benchmarks/results/quixbugs-qwen0.5b-default-idle/records.jsonl \
        [--bugsinpy benchmarks/results/bugsinpy-dev-qwen0.5b/records.jsonl --data BugsInPy --repos CLONES]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import types
from pathlib import Path

from repair_agent.bench.bugsinpy import load_bugsinpy
from repair_agent.bench.datasets import load_quixbugs
from repair_agent.search import mutate

ROOT = Path(__file__).resolve().parent.parent


def module_at(rev: str) -> types.ModuleType:
    """`repair_agent/search/mutate.py` as it was at `rev`, loaded beside today's package."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:repair_agent/search/mutate.py"],
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("repair_agent.search.mutate_before")
    module.__package__ = "repair_agent.search"  # its relative imports resolve in today's package
    exec(compile(source, f"mutate.py@{rev}", "exec"), module.__dict__)
    return module


def compare(before, records: list[dict], source_of) -> dict:
    """`source_of(record, file)`: the buggy file's text."""
    out = {"lines": 0, "same_lines": 0, "before": 0, "now": 0, "fixes": 0, "fixes_kept": 0, "per_task": {}}
    for r in records:
        search = r.get("search") or {}
        mine = [0, 0]
        for loc in search.get("lines") or []:
            file, line = loc.rsplit(":", 1)
            text = source_of(r, file)
            old, new = list(before.mutants(text, int(line))), list(mutate.mutants(text, int(line)))
            out["lines"] += 1
            out["same_lines"] += old == new
            mine[0] += len(old)
            mine[1] += len(new)
        out["before"] += mine[0]
        out["now"] += mine[1]
        out["per_task"][r["task_id"]] = mine
        fix = (search.get("plausible") or [{}])[0]
        if r.get("source") == "mutate" and fix:
            text = source_of(r, fix["file"])
            made = {t for t, _ in mutate.mutants(text, fix["line"])}
            out["fixes"] += 1
            out["fixes_kept"] += any(t in made for t, note in before.mutants(text, fix["line"])
                                     if note == fix["note"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the commit whose mutate.py to compare with")
    ap.add_argument("--quixbugs", type=Path, help="a QuixBugs run's records.jsonl")
    ap.add_argument("--bugsinpy", type=Path, help="a BugsInPy run's records.jsonl")
    ap.add_argument("--data", type=Path, help="the BugsInPy checkout")
    ap.add_argument("--repos", type=Path, help="BugsInPy's clones")
    args = ap.parse_args()
    before = module_at(args.before)
    result = {}
    if args.quixbugs:
        records = [json.loads(x) for x in args.quixbugs.read_text().splitlines() if x.strip()]
        tasks = {t.task_id: t for t in load_quixbugs()}
        result["quixbugs"] = compare(before, records, lambda r, f: tasks[r["task_id"]].files[f])
    if args.bugsinpy:
        records = [json.loads(x) for x in args.bugsinpy.read_text().splitlines() if x.strip()]
        tasks = {t.task_id: t for t in load_bugsinpy(args.data, args.repos, ids=[r["task_id"] for r in records])}

        def source_of(r: dict, file: str) -> str:
            meta = tasks[r["task_id"]].meta
            return subprocess.run(["git", "-C", meta["repo"], "show", f"{meta['commit']}:{file}"],
                                  capture_output=True, text=True, check=True).stdout

        result["bugsinpy"] = compare(before, records, source_of)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
