"""Run a benchmark through the very same graph as `repair-agent fix`, one task per sandbox.

A fix counts only after the benchmark's own tests pass on the final patch in a fresh sandbox.
Records go to OUT/records.jsonl as each task ends, so a rerun into the same OUT skips finished
tasks.
"""

from __future__ import annotations

import json
import shutil
import threading
from contextlib import nullcontext
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import git

from .. import __version__
from ..config import Settings
from ..errors import ModelError
from ..fix import run_fix
from ..llm.factory import open_model
from ..patching import apply_diff
from ..sandbox import open_sandbox
from ..tests_summary import failing_ids, ran
from .datasets import Task
from .summary import RECORDS_FILE, load_records, write_summary


def code_version() -> str:
    """The commit of this checkout (`+dirty` with uncommitted changes), else the package version."""
    try:
        repo = git.Repo(Path(__file__).resolve().parents[2])
        return repo.head.commit.hexsha[:12] + ("+dirty" if repo.is_dirty() else "")
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return __version__


def single_shot(settings: Settings) -> Settings:
    """The plainest use of the same model: one greedy request, no loop, no trace, no SBFL."""
    return settings.model_copy(update={"rounds": 1, "samples": 1, "use_trace": False, "use_sbfl": False})


def verify(task: Task, patch: str, workdir: Path, settings: Settings) -> bool:
    """Apply `patch` to a fresh copy of the task and run the benchmark's tests in a fresh sandbox."""
    shutil.rmtree(workdir, ignore_errors=True)
    task.materialize(workdir)
    if not apply_diff(workdir, patch).ok:
        return False
    box = open_sandbox(settings.sandbox, workdir, image=settings.image, log=lambda m: None)
    try:
        run = box.run_tests(task.test_args, timeout=settings.test_timeout_s,
                                per_test_timeout=settings.per_test_timeout_s)
    finally:
        box.close()
    return ran(run) > 0 and not failing_ids(run) and not run["timed_out"]


def run_benchmark(tasks: list[Task], settings: Settings, out: Path, mode: str = "agent", workers: int = 1,
                  log: Callable[[str], None] = print, model=None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    # finished = any outcome but an error: a rerun retries the tasks that errored
    done = {r["task_id"] for r in load_records(out) if r["status"] != "error"} \
        if (out / RECORDS_FILE).exists() else set()
    todo = [t for t in tasks if t.task_id not in done]
    if mode == "single-shot":
        settings = single_shot(settings)
    log(f"{len(tasks)} tasks, {len(done)} already done, {len(todo)} to run, {workers} worker(s)")
    lock = threading.Lock()
    code = code_version()

    def one(task: Task, model) -> dict:
        work = out / "work" / task.task_id.replace("/", "_")
        shutil.rmtree(work, ignore_errors=True)
        repo = task.materialize(work / "repo")
        task_settings = settings.model_copy(update={"test": " ".join(task.test_args), "problem": task.problem})
        try:
            result = run_fix(repo, task_settings, runs_root=out / "runs", log=lambda m: None, model=model)
            verified = result["status"] == "fixed" and verify(task, result["patch"], work / "verify", settings)
        except ModelError:
            raise  # the model is gone: every later task would fail the same way; rerun to resume
        except Exception as exc:  # one broken task must not end the benchmark; it is recorded
            result = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "patch": "", "rounds": [], "tokens":
                      {"prompt": 0, "completion": 0}, "duration_s": 0.0, "fixed_round": None}
            verified = False
        finally:
            shutil.rmtree(work, ignore_errors=True)
        record = {**result, "task_id": task.task_id, "dataset": task.dataset, "model": getattr(model, "name", ""),
                  "mode": mode, "verified": verified, "code": code}
        with lock, open(out / RECORDS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return record

    with open_model(settings, log=log) if model is None else nullcontext(model) as shared_model:
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = {pool.submit(one, t, shared_model): t for t in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                rec = fut.result()
                mark = "fixed" if rec["verified"] else rec["status"]
                log(f"[{i}/{len(todo)}] {rec['task_id']}: {mark} ({rec['duration_s']}s)")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # after a fatal error, queued tasks never start
        name = getattr(shared_model, "name", "")
    return write_summary(out, settings={"rounds": settings.rounds, "samples": settings.samples,
                                        "trace": settings.use_trace, "sbfl": settings.use_sbfl,
                                        "max_tokens": settings.max_tokens, "workers": workers},
                         dataset=tasks[0].dataset if tasks else "", model=name, mode=mode)
