"""The README's per-bug table of a `bench bugsinpy` run, from its records.jsonl.

"Where the fix is" reads BugsInPy's `bug_patch.txt` (the human fix) after the run, as the harness
does: did the search's lines (localization's top ranks) hold a line that the human fix changes?
The agent never reads it. `--before` adds the earlier run's result of each bug, for a comparison.

    python benchmarks/bugsinpy_table.py benchmarks/results/bugsinpy-dev-qwen0.5b-nearest/records.jsonl \
        --data BugsInPy [--before benchmarks/results/bugsinpy-dev-qwen0.5b/records.jsonl]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from repair_agent.bench.summary import load_records
from repair_agent.checks import changed_lines


def where(record: dict, data: Path) -> str:
    project, n = record["task_id"].rsplit("-", 1)
    patch = data / "projects" / project / "bugs" / n / "bug_patch.txt"
    human = changed_lines(patch.read_text(encoding="utf-8", errors="replace"))  # file -> its changed lines
    searched = [(file, int(line)) for file, line in (x.rsplit(":", 1) for x in
                                                     (record.get("search") or {}).get("lines") or [])]
    ranks = [i + 1 for i, (file, line) in enumerate(searched) if line in human.get(file, ())]
    if ranks:
        return f"line rank {ranks[0]} of {len(searched)}"
    return "its file, not its lines" if any(file in human for file, _ in searched) else "not in its files"


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
    records = {r["task_id"]: r for r in load_records(args.records)}
    before = {r["task_id"]: r for r in load_records(args.before)} if args.before else None
    head = ["bug", "plausible", "tokens", "wall time", "candidates (by source)", "stopped because",
            "where the fix is"] + (["before"] if before is not None else [])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for task_id in sorted(records, key=lambda t: (t.rsplit("-", 1)[0], int(t.rsplit("-", 1)[1]))):
        print(row(records[task_id], args.data, before))


if __name__ == "__main__":
    main()
