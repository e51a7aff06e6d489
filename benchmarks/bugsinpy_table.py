"""The README's per-bug table of a `bench bugsinpy` run, from its records.jsonl.

"Where the fix is" reads BugsInPy's `bug_patch.txt` (the human fix) after the run, as the harness
does: did the search's lines (localization's top ranks) hold a line that the human fix changes?
The agent never reads it. `--before` adds the earlier run's result of each bug, for a comparison.

    python benchmarks/bugsinpy_table.py bench/results/bugsinpy-dev-qwen0.5b-v2/records.jsonl \
        --data BugsInPy [--before bench/results/bugsinpy-dev-qwen0.5b/records.jsonl]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def last_records(path: Path) -> dict[str, dict]:
    """task id -> its last record (a resumed run writes a task again)."""
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return {r["task_id"]: r for r in lines}


def human_lines(patch: str) -> set[str]:
    """`file:line` (in the buggy file) of each line that the human fix removes or inserts before."""
    out, file, at = set(), None, 0
    for line in patch.splitlines():
        if line.startswith("--- a/"):
            file = line[6:].strip()
        elif line.startswith("@@"):
            at = int(re.match(r"@@ -(\d+)", line)[1])
        elif file and line.startswith("-") and not line.startswith("---"):
            out.add(f"{file}:{at}")
            at += 1
        elif file and line.startswith(" "):
            at += 1
        elif file and line.startswith("+") and not line.startswith("+++"):
            out.add(f"{file}:{at}")
    return out


def where(record: dict, data: Path) -> str:
    project, n = record["task_id"].rsplit("-", 1)
    patch = data / "projects" / project / "bugs" / n / "bug_patch.txt"
    human = human_lines(patch.read_text(encoding="utf-8", errors="replace"))
    lines = (record.get("search") or {}).get("lines") or []
    ranks = [i + 1 for i, x in enumerate(lines) if x in human]
    if ranks:
        return f"line rank {ranks[0]} of {len(lines)}"
    files = {h.split(":")[0] for h in human}
    return "its file, not its lines" if any(x.split(":")[0] in files for x in lines) else "not in its files"


def verdict(record: dict) -> str:
    if record.get("status") == "not_reproduced":
        return "not reproduced"
    if not record.get("plausible"):
        return "no"
    correct = record.get("correct")
    said = {True: "correct", False: "**wrong**"}.get(correct, "correctness unknown")
    return f"**yes** ({record.get('source')}), {said}"


def row(record: dict, data: Path, before: dict | None) -> str:
    search = record.get("search") or {}
    by_source = search.get("by_source") or {}
    tried = ", ".join(f"{k} {v['tried']:,}" for k, v in by_source.items() if v.get("tried"))
    tokens = sum((record.get("tokens") or {}).values())
    cells = [record["task_id"], verdict(record), f"{tokens:,}", f"{record.get('duration_s', 0):,.0f} s",
             f"{search.get('tried', 0):,} ({tried})" if tried else "0",
             search.get("stop_reason", record.get("error", "")), where(record, data) if search else ""]
    if before is not None:
        old = before.get(record["task_id"])
        ran = old and old.get("search")
        cells.append(f"{verdict(old)}, {old['search']['tried']:,} candidates" if ran else "not run")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="the BugsInPy checkout (for bug_patch.txt)")
    ap.add_argument("--before", type=Path, help="an earlier run's records.jsonl, for a comparison column")
    args = ap.parse_args()
    records = last_records(args.records)
    before = last_records(args.before) if args.before else None
    head = ["bug", "plausible", "tokens", "wall time", "candidates (by source)", "stopped because",
            "where the fix is"] + (["before"] if before is not None else [])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for task_id in sorted(records, key=lambda t: (t.rsplit("-", 1)[0], int(t.rsplit("-", 1)[1]))):
        print(row(records[task_id], args.data, before))


if __name__ == "__main__":
    main()
