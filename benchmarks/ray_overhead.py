"""Ray against threads: the same QuixBugs tasks with --workers 1, --workers 2 and on a Ray cluster of
two local nodes (one sandbox slot each, on loopback), side by side.

The model is the SCRIPTED loopback server from the tests, answering at once with prose and no code,
so the numbers are the harness's and Ray's, not a model's. Reported: each run's wall clock; the median
task time (run_fix's own `duration_s`); and what Ray adds per task, three ways: the median gap a node's
slot stays idle between one task's end and the next one's start (result return, dispatch), the median
round trip of an empty task that asks for a sandbox slot, and the wall clock over --workers 2's, per
task. Usage:
  .venv/bin/python benchmarks/ray_overhead.py [--ids gcd,flatten] [--limit N] [--out DIR] [--json FILE]
Needs the `cluster` extra and Docker with the base image. All 40 tasks take hours on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Ray keeps 127.0.0.1 only with this off (read at import; see repair_agent/bench/cluster.py); the nodes'
# workers import repair_agent from this checkout
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402
from scripted_server import ScriptedServer  # noqa: E402

from repair_agent.bench.datasets import load_quixbugs  # noqa: E402
from repair_agent.bench.runner import run_benchmark  # noqa: E402
from repair_agent.config import Settings  # noqa: E402


def median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def idle_gaps(records: list[dict]) -> list[float]:
    """Per node, the time between one task's end and the next one's start there."""
    gaps = []
    for node in {r["node"] for r in records}:
        mine = sorted((r["task_started"], r["task_ended"]) for r in records if r["node"] == node)
        gaps += [b[0] - a[1] for a, b in zip(mine, mine[1:])]
    return gaps


def empty_round_trips(address: str, n: int = 20) -> list[float]:
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        noop = ray.remote(lambda: None).options(num_cpus=0, resources={"sandbox": 1})
        ray.get(noop.remote())  # a worker started once
        times = []
        for _ in range(n):
            t = time.perf_counter()
            ray.get(noop.remote())
            times.append(time.perf_counter() - t)
        return times
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", default=None, help="comma-separated QuixBugs ids (default: all 40)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tasks = load_quixbugs(ids=args.ids.split(",") if args.ids else None, limit=args.limit)
    out = args.out or Path(tempfile.mkdtemp(prefix="repair-agent-ray-overhead-"))
    results = {"tasks": [t.task_id for t in tasks], "load_before": os.getloadavg()[0], "runs": {}}
    with ScriptedServer([]) as srv:  # every answer: "(no more scripted replies)", prose, no code
        settings = Settings(base_url=srv.base_url, sandbox="docker", rounds=1, samples=1, test_timeout_s=180,
                            per_test_timeout_s=5)

        def run(name: str, **kw) -> list[dict]:
            start = time.perf_counter()
            run_benchmark(tasks, settings, out / name, log=lambda m: None, **kw)
            wall = time.perf_counter() - start
            recs = [json.loads(x) for x in (out / name / "records.jsonl").read_text().splitlines()]
            results["runs"][name] = {"wall_s": round(wall, 1), "median_task_s": median([r["duration_s"] for r in recs]),
                                     "statuses": {r["task_id"]: r["status"] for r in recs}}
            return recs

        run("workers1", workers=1)
        run("workers2", workers=2)
        node = {"num_cpus": 1, "resources": {"sandbox": 1}, "node_ip_address": "127.0.0.1"}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        try:
            cluster.add_node(**node)
            recs = run("ray2nodes", ray=cluster.address)
            trips = empty_round_trips(cluster.address)
        finally:
            cluster.shutdown()
    ray_run = results["runs"]["ray2nodes"]
    ray_run.update({
        "nodes": sorted({r["node"] for r in recs}),
        "median_idle_gap_between_tasks_s": median(idle_gaps(recs)),
        "median_empty_task_round_trip_s": median(trips),
        "wall_minus_workers2_per_task_s": round((ray_run["wall_s"] - results["runs"]["workers2"]["wall_s"])
                                                / max(1, len(tasks)), 2),
    })
    results["load_after"] = os.getloadavg()[0]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
