"""Harness overhead: all 40 QuixBugs tasks through the full graph with an instant model.

The model is the SCRIPTED loopback server from the tests, answering at once with prose and no
code, so what is timed is the harness: materializing, the Docker sandbox, reproduce, localize
(SBFL included), validation bookkeeping and the records. Usage:
  .venv/bin/python benchmarks/harness_overhead.py [--workers 2] [--limit N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from scripted_server import ScriptedServer  # noqa: E402

from repair_agent.bench.datasets import load_quixbugs  # noqa: E402
from repair_agent.bench.runner import run_benchmark  # noqa: E402
from repair_agent.config import Settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tasks = load_quixbugs(limit=args.limit)
    out = args.out or Path(tempfile.mkdtemp(prefix="repair-agent-overhead-"))
    with ScriptedServer([["No code, just prose."]] * (len(tasks) * args.rounds * 2)) as srv:
        settings = Settings(base_url=srv.base_url, sandbox="docker", rounds=args.rounds, samples=1,
                            test_timeout_s=180, per_test_timeout_s=5)
        start = time.perf_counter()
        run_benchmark(tasks, settings, out, workers=args.workers, log=lambda m: None)
        wall = time.perf_counter() - start
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    per_task = sorted(r["duration_s"] for r in records)
    print(f"{len(records)} tasks, workers={args.workers}, rounds={args.rounds}: total wall {wall:.1f} s; "
          f"per task median {statistics.median(per_task):.2f} s, max {per_task[-1]:.2f} s "
          f"(the max is a program whose buggy tests hang until the per-test timeout)")


if __name__ == "__main__":
    main()
