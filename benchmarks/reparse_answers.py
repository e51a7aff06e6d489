"""Re-read recorded answers with the current parser and patcher, and test what they now yield.

    .venv/bin/python benchmarks/reparse_answers.py benchmarks/results/RUN [RUN ...] [--sandbox docker] [--json OUT]

For every candidate that a benchmark run recorded as `no_code`, `truncated` or `not_applicable`,
the model's recorded answer goes through today's `extract_code` and `apply_code` on a fresh copy
of the task. A candidate that now applies is checked like a counted fix: the benchmark's own tests
run on its patch in a fresh sandbox (`bench.solve.verify`). No model is called: this measures
what a change to the answer-reading code recovers from answers already paid for.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repair_agent import patching  # noqa: E402
from repair_agent.bench.datasets import load_dataset  # noqa: E402
from repair_agent.bench.solve import verify  # noqa: E402
from repair_agent.bench.summary import load_records  # noqa: E402
from repair_agent.config import Settings  # noqa: E402
from repair_agent.answers import extract_code  # noqa: E402
from repair_agent.training.export import run_records  # noqa: E402

RETRIED = ("no_code", "truncated", "not_applicable")


def reparse(cand: dict, task, hint: list[str], tmp: Path, settings: Settings) -> str:
    """The candidate's outcome today: no_code | not_applicable | failed | fixed."""
    code = extract_code(cand["response"], closed_only=cand.get("finish_reason") == "length")
    if not code:
        return "no_code"
    work = tmp / "apply"
    shutil.rmtree(work, ignore_errors=True)
    task.materialize(work)
    if not patching.apply_code(work, code, hint).ok:
        return "not_applicable"
    patch = patching.current_diff(work)
    return "fixed" if verify(task, patch, tmp / "verify", settings) else "failed"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="bench results folders (with runs/)")
    ap.add_argument("--sandbox", default="docker", help="docker | local")
    ap.add_argument("--json", type=Path, help="write the counts here")
    args = ap.parse_args(argv)
    settings = Settings(sandbox=args.sandbox)
    outcomes: collections.Counter = collections.Counter()
    newly_fixed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reparse-") as tmp:
        for results in args.results:
            for rec in load_records(results):
                if not rec.get("run_id") or not (results / "runs" / rec["run_id"]).is_dir():
                    continue
                task = load_dataset(rec["dataset"], ids=[rec["task_id"]])[0]
                events = run_records(results / "runs" / rec["run_id"])
                hint = [loc["file"] for e in events if e["event"] == "localize" for loc in e["locations"]]
                for e in events:
                    cand = e.get("candidate") if e["event"] == "validate" else None
                    if not cand or cand["status"] not in RETRIED:
                        continue
                    now = reparse(cand, task, list(dict.fromkeys(hint)), Path(tmp), settings)
                    outcomes[(cand["status"], now)] += 1
                    if now == "fixed":
                        newly_fixed.append(f"{results.name}/{rec['task_id']} {cand['round']}.{cand['index']}")
                    print(f"{results.name}/{rec['task_id']} {cand['round']}.{cand['index']}: "
                          f"{cand['status']} -> {now}", flush=True)
    summary = {"outcomes": {f"{a} -> {b}": n for (a, b), n in sorted(outcomes.items())},
               "candidates": sum(outcomes.values()), "newly_fixed": newly_fixed}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
