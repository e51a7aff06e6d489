"""The anti-pattern rules against every plausible QuixBugs patch in the committed benchmark runs:
how many correct and incorrect patches each flags (the harness's `correct` is the reference).

Usage: .venv/bin/python benchmarks/antipatterns_quixbugs.py [benchmarks/results]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from repair_agent.bench.datasets import quixbugs_dir
from repair_agent.judge.antipatterns import suspicions


def patched(rec: dict, patch: str) -> str | None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / rec["buggy_path"]
        path.parent.mkdir(parents=True)
        path.write_text(rec["buggy_source"])
        done = subprocess.run(["git", "apply", "-"], input=patch, text=True, cwd=d, capture_output=True)
        return path.read_text() if done.returncode == 0 else None


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results")
    buggy = {r["id"]: r for r in map(json.loads, (quixbugs_dir() / "quixbugs_python.jsonl").open())}
    seen: dict[tuple[str, str], tuple] = {}
    for records in sorted(results.glob("quixbugs-*/records.jsonl")):
        for rec in map(json.loads, records.open()):
            if rec.get("plausible") and rec.get("patch") and (rec["task_id"], rec["patch"]) not in seen:
                new = patched(buggy[rec["task_id"]], rec["patch"])
                if new is not None:
                    seen[rec["task_id"], rec["patch"]] = (rec.get("correct"),
                                                          suspicions(buggy[rec["task_id"]]["buggy_source"], new))
    counts = Counter((str(ok), bool(sus)) for ok, sus in seen.values())
    for (task, _), (ok, sus) in sorted(seen.items()):
        if sus or ok is not True:
            print(f"{task}: correct={ok} suspect={sus}")
    print(f"{len(seen)} distinct plausible patches; (correct, flagged) -> count: {dict(counts)}")


if __name__ == "__main__":
    main()
