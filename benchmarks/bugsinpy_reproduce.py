"""BugsInPy's reproduce check alone (no agent, no model): for each bug, do its failing tests fail on
the buggy tree and pass with the reference patch, in the environment the bench gives it?

    .venv/bin/python benchmarks/bugsinpy_reproduce.py --data BugsInPy --repos CLONES \
        [--ids thefuck-1,tqdm-2] [--all] [--image IMG] > reproduce.jsonl

One JSON line per bug: the record's `environment` entry (`reproduced` true or false, `reproduce`:
why, in one line; `dependencies`: what the dependency image holds and why), plus task, seconds and
the number of the bug's own requirements. A bug that could not be loaded or prepared is a line
with `reproduced` false and its error. The dev set (thefuck, tqdm, youtube-dl) by default; `--all`
measures every project of the checkout that has a clone under --repos, held-out ones included:
this check runs no agent and no model, so it measures the environment, not a repair.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from repair_agent.bench.bugsinpy import load_bugsinpy
from repair_agent.bench.reproducibility import one_line, reproduce, task_settings
from repair_agent.config import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="a BugsInPy checkout")
    ap.add_argument("--repos", required=True, help="one clone per project (DIR/P)")
    ap.add_argument("--ids", default=None, help="comma-separated bug ids (default: the dev set's)")
    ap.add_argument("--image", default=None, help="one base image for all (default: chosen per bug)")
    ap.add_argument("--all", action="store_true", help="every project that has a clone under --repos "
                                                       "(held-out ones too: no agent runs here)")
    args = ap.parse_args()
    base = Settings(sandbox="docker", test_timeout_s=300, per_test_timeout_s=60, image=args.image)
    ids = args.ids.split(",") if args.ids else None
    projects = sorted(p.name for p in (Path(args.data) / "projects").iterdir()
                      if (Path(args.repos) / p.name).is_dir()) if args.all else None
    with tempfile.TemporaryDirectory() as tmp:
        for task in load_bugsinpy(args.data, args.repos, projects=projects, ids=ids, evaluation=args.all):
            settings = task_settings(task, base)
            work = Path(tmp) / task.task_id
            started = time.monotonic()
            try:
                result = reproduce(task, settings, work, log=lambda m: None)
            except Exception as exc:  # noqa: BLE001 - one bug's failure is its line, not the sweep's end
                result = {"reproduced": False, "reproduce": one_line(f"{type(exc).__name__}: {exc}")}
            shutil.rmtree(work, ignore_errors=True)
            print(json.dumps({"task": task.task_id, **result, "seconds": round(time.monotonic() - started, 1),
                              "image_asked": settings.image, "deps": len(settings.deps)}), flush=True)


if __name__ == "__main__":
    main()
