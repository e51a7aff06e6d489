"""The calibration table of the guard's `high`, from the committed runs of the design sets
(benchmarks/results/quixbugs-*/ and bugsinpy-dev-*/; never a held-out project).

    .venv/bin/python benchmarks/calibration.py --label      # label the other plausible patches (Docker)
    .venv/bin/python benchmarks/calibration.py              # write benchmarks/results/calibration.json

`--label` runs the harness's correctness check (bench/correctness.py) on each plausible patch the
records hold no label for, and appends it to benchmarks/results/calibration-labels.jsonl: QuixBugs
against the reference program; BugsInPy dev against the human fix, given --data and --repos.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from repair_agent.judge.calibration import fixes, known_labels, table

RESULTS = Path("benchmarks/results")
LABELS = RESULTS / "calibration-labels.jsonl"


def runs(results: Path) -> dict[str, list[dict]]:
    paths = sorted(results.glob("quixbugs-*/records.jsonl")) + sorted(results.glob("bugsinpy-dev-*/records.jsonl"))
    return {p.parent.name: [json.loads(x) for x in p.read_text().splitlines() if x.strip()] for p in paths}


def read_labels(path: Path) -> dict:
    if not path.is_file():
        return {}
    return {r["key"]: r["correct"] for r in map(json.loads, path.read_text().splitlines())}


def label(results: Path, path: Path, data: str | None, repos: str | None) -> None:
    """The harness's check on every plausible patch without a label, one line each into `path`."""
    from repair_agent.bench.correctness import check
    from repair_agent.bench.datasets import load_dataset
    from repair_agent.bench.reproducibility import task_settings
    from repair_agent.config import Settings

    every = [f for records in [fixes(rs, run) for run, rs in runs(results).items()] for f in records]
    labels = {**known_labels(every), **read_labels(path)}
    todo: dict[str, tuple[dict, dict]] = {}
    for f in every:
        for p in f["found"]:
            if p["key"] not in labels and (f["dataset"] == "quixbugs" or (data and repos)):
                todo.setdefault(p["key"], (f, p))
    print(f"{len(todo)} plausible patches to label")
    for key, (f, p) in todo.items():
        extra = {"repos": repos} if f["dataset"] == "bugsinpy" else {}
        task = load_dataset(f["dataset"], data if f["dataset"] == "bugsinpy" else None, ids=[f["task_id"]], **extra)[0]
        settings = task_settings(task, Settings(sandbox="docker")) if f["dataset"] == "bugsinpy" else None
        with tempfile.TemporaryDirectory() as work:
            res = check(task, p["patch"], Path(work) / "w", settings=settings)
        row = {"key": key, "dataset": f["dataset"], "task_id": f["task_id"], "correct": res["correct"],
               "correct_reason": res["correct_reason"]}
        print(f"{f['task_id']}: {res['correct']} ({res['correct_reason'][:120]})", flush=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def markdown(t: dict) -> str:
    lines = ["| run | plausible | graded | `high` (PRs opened) | correct | wrong | unknown | precision | recall |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run, r in t["runs"].items():
        lines.append(f"| {run} | {r['plausible']} | {r['graded']} | {r['high']} | {r['high_correct']} | "
                     f"{r['high_wrong']}{' (' + ', '.join(r['wrong_high']) + ')' if r['wrong_high'] else ''} | "
                     f"{r['high_unknown']} | {r['precision']} | {r['recall']} |")
    lines += ["", "| rule | `high` | correct | wrong | unknown | precision | recall | correct rejected | "
                  "wrong rejected |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in t["rules"].items():
        lines.append(f"| {name} | {r['high']} | {r['high_correct']} | {r['high_wrong']} | {r['high_unknown']} | "
                     f"{r['precision']} | {r['recall']} | {r['correct_rejected']} of {r['correct']} | "
                     f"{r['wrong_rejected']} |")
    lines += ["", "| tasks with several plausible patches | tasks | guard's pick correct | first found correct | "
                  "random pick (expected) |", "|---|---|---|---|---|"]
    for name, c in t["choice"].items():
        lines.append(f"| {name} | {c['tasks']} | {c['pick_correct']} | {c['first_found_correct']} | "
                     f"{c['random_expected']} |")
    s = t["signals"]
    lines += ["", f"| signal (on {s['patches']} distinct labelled plausible patches, {s['correct']} correct) | "
                  "correct flagged | wrong flagged |", "|---|---|---|"]
    lines += [f"| {k} | {v['correct']} | {v['wrong']} |" for k, v in s.items() if isinstance(v, dict)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--label", action="store_true", help="label the unlabelled plausible patches first (Docker)")
    p.add_argument("--data", help="BugsInPy checkout, to label BugsInPy dev patches")
    p.add_argument("--repos", help="the BugsInPy dev clones")
    p.add_argument("--out", type=Path, default=RESULTS / "calibration.json")
    ns = p.parse_args(argv)
    if ns.label:
        label(ns.results, ns.labels, ns.data, ns.repos)
    t = table(runs(ns.results), read_labels(ns.labels))
    code = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    t = {"code": code, "labels": str(ns.labels), "note": "the rules other than `guard` are read from these same "
         "records of the design sets (QuixBugs, BugsInPy dev): tuned on them, not evidence of generality", **t}
    ns.out.write_text(json.dumps(t, indent=1) + "\n")
    print(markdown(t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
