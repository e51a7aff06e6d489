"""Sandbox overhead: validating one QuixBugs candidate in Docker vs the same pytest on the host.

Runs the program's test file N times each way, interleaved so machine noise hits all three alike:
  host        - `python -m pytest` as a plain subprocess (LocalSandbox)
  docker exec - into one warm container per task (the agent's default)
  docker run  - a fresh container per candidate
and prints the medians and the ratios to the host. Usage:
  .venv/bin/python benchmarks/sandbox_overhead.py [--program gcd] [--runs 10] [--host-python PY]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repair_agent.sandbox import DockerSandbox, LocalSandbox

QUIXBUGS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "quixbugs"


def build(program: str, dest: Path) -> list[str]:
    """The buggy program's folder, as the benchmark's README describes (no fixed code)."""
    support = json.loads((QUIXBUGS / "support_files.json").read_text())
    rec = next(json.loads(line) for line in (QUIXBUGS / "quixbugs_python.jsonl").open()
               if json.loads(line)["id"] == program)
    files = {k: v for k, v in support.items() if not k.startswith("correct_python_programs")}
    files[rec["buggy_path"]] = rec["buggy_source"]
    files[rec["test_path"]] = rec["test_source"]
    if rec["json_testcases_path"]:
        files[rec["json_testcases_path"]] = rec["json_testcases"]
    for rel, text in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return [rec["test_path"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", default="gcd")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--host-python", default=None,
                    help="interpreter for the host run (default: this one); a venv with only pytest, "
                         "pytest-timeout and coverage matches what the sandbox image holds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        test = build(args.program, work)
        boxes = {"host": LocalSandbox(work, python=args.host_python or sys.executable), "docker exec": DockerSandbox(work, reuse=True, log=lambda m: None),
                 "docker run": DockerSandbox(work, reuse=False, log=lambda m: None)}
        times: dict[str, list[float]] = {k: [] for k in boxes}
        for box in boxes.values():  # warm-up: env image, first container, imports cached
            box.run_tests(test)
        for _ in range(args.runs):
            for name, box in boxes.items():
                start = time.perf_counter()
                run = box.run_tests(test)
                times[name].append(time.perf_counter() - start)
                assert run["cases"], f"{name}: no test results"
        for box in boxes.values():
            box.close()
    host = statistics.median(times["host"])
    print(f"QuixBugs {args.program}, {args.runs} runs each, medians:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:12s} {med:6.3f} s   x{med / host:.2f} of host")


if __name__ == "__main__":
    main()
