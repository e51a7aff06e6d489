"""One benchmark task, from materializing it to its scored record.

A fix counts only after the benchmark's own tests pass on the final patch in a fresh sandbox
(`verify`): it is then plausible, and correctness.py checks whether it is also correct. The same
`run_task` runs in a worker thread (runner.py) and in a Ray task on another node (cluster.py).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from ..checks import RERUN_MOST
from ..config import Settings
from ..errors import DependencyError, EnvFault, ModelError
from ..fix import run_fix
from ..outcomes import failing_ids, ran
from ..patching import apply_diff
from ..sandbox import open_sandbox
from .correctness import score
from .reproducibility import reproduce, task_settings
from .tasks import Task


def verify(task: Task, patch: str, workdir: Path, settings: Settings, baseline: list[str] = (),
           narrowed: list[str] = ()) -> bool:
    """Apply `patch` to a fresh copy of the task and run the benchmark's tests in a fresh sandbox; only
    the `baseline` (tests that failed before and are not the task's) may fail. `settings`: the task's
    (task_settings), whose image and dependencies the task's tests need. As the search's checks do
    (checks.Rerun), up to RERUN_MOST other tests that fail (not the bug's) are run once more, and
    count only if they fail again and pass on the unpatched code: tqdm's overhead tests fail by timing
    on a loaded machine. `narrowed`: the suite the run used where the task's whole suite hung at
    reproduce (tqdm-2); it is run only if the whole suite times out here too."""
    shutil.rmtree(workdir, ignore_errors=True)
    task.materialize(workdir)
    if not apply_diff(workdir, patch).ok:
        return False
    box = sandbox_of(workdir, settings)
    try:
        run = run_tests(box, task.test_args, settings)
        if run["timed_out"] and narrowed and list(narrowed) != list(task.test_args):
            run = run_tests(box, list(narrowed), settings)
        broken = set(failing_ids(run)) - set(baseline)
        named = set(task.failing_tests or [])  # the bug's own tests get no second chance
        if broken and len(broken) <= RERUN_MOST and not broken & named and not run["timed_out"]:
            broken -= {c["id"] for c in run_tests(box, sorted(broken), settings)["cases"] if c["outcome"] == "passed"}
            if broken:
                broken -= failing_on_original(task, sorted(broken), workdir.with_name(workdir.name + "-original"),
                                              settings)
    finally:
        box.close()
    return ran(run) > 0 and not broken and not run["timed_out"]


def failing_on_original(task: Task, tests: list[str], workdir: Path, settings: Settings) -> set[str]:
    """Which of `tests` fail now on the task's own code, unpatched: the machine's state, not the patch's."""
    shutil.rmtree(workdir, ignore_errors=True)
    task.materialize(workdir)
    box = sandbox_of(workdir, settings)
    try:
        return set(failing_ids(run_tests(box, tests, settings)))
    finally:
        box.close()


def sandbox_of(workdir: Path, settings: Settings):
    return open_sandbox(settings.sandbox, workdir, image=settings.image, log=lambda m: None, deps=settings.deps,
                        install_project=settings.install_project, build=settings.build_image)


def run_tests(box, args: list[str], settings: Settings):
    return box.run_tests(args, timeout=settings.test_timeout_s, per_test_timeout=settings.per_test_timeout_s)


def run_task(task: Task, settings: Settings, out: Path, mode: str, model, code: str,
             data: Path | None = None, log: Callable[[str], None] = lambda m: None) -> dict:
    """One benchmark task, from materializing it to scoring the fix: its record, which the caller writes.
    `log`: where the environment's build lines go."""
    started = time.monotonic()
    work = out / "work" / task.task_id.replace("/", "_")
    shutil.rmtree(work, ignore_errors=True)
    # a real repository's task names its failing tests (others failing there are the baseline), and
    # a BugsInPy bug its Python and requirements; the test arguments stay the dataset's list
    mine = task_settings(task, settings)
    env: dict = {}
    try:
        if task.dataset in ("repos", "bugsinpy"):  # does the bug show? (and in which environment)
            env = reproduce(task, mine, work / "reproduce", log=log)
            if not env["reproduced"]:
                raise NotReproduced(env["reproduce"], fault=bool(env["env_fault"]))
        repo = task.materialize(work / "repo")  # a task that cannot be prepared is that task's error
        result = run_fix(repo, mine, runs_root=out / "runs", log=lambda m: None, model=model)
        verified = result["status"] == "fixed" and verify(task, result["patch"], work / "verify", mine,
                                                                result.get("baseline") or [], result.get("test_args") or [])
        checked = score(task, {**result, "verified": verified}, work / "correct", sandbox=settings.sandbox,
                        image=settings.image, data=data, settings=mine)
    except ModelError:
        raise  # the model is gone: every later task would fail the same way; rerun to resume
    except Exception as exc:  # one broken task must not end the benchmark; it is recorded
        result = failed_result(*failure_status(exc), seconds=time.monotonic() - started)
        verified = False
        checked = score(task, result, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**result, "task_id": task.task_id, "dataset": task.dataset, "model": getattr(model, "name", ""),
            "mode": mode, "verified": verified, **checked, "code": code, **({"environment": env} if env else {})}


def failure_status(exc: Exception) -> tuple[str, str]:
    """The record's status and error for a task that ended in `exc`. A missing dependency, one that
    would not install, or a bug that did not reproduce is not the agent's miss: the summary counts
    them apart."""
    if isinstance(exc, (EnvFault, DependencyError)) or getattr(exc, "fault", False):
        return "env_error", str(exc)
    if isinstance(exc, NotReproduced):
        return "not_reproduced", str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


class NotReproduced(Exception):
    """The task's bug does not show (see reproducibility.py); `fault`: because the environment lacks something."""

    def __init__(self, why: str, fault: bool = False):
        super().__init__(why)
        self.fault = fault


def failed_result(status: str, error: str, seconds: float) -> dict:
    """The result part of the record of a task that ended in an error after `seconds`: no patch, no rounds."""
    return {"status": status, "error": error, "patch": "", "rounds": [], "tokens": {"prompt": 0, "completion": 0},
            "duration_s": round(seconds, 2), "fixed_round": None}
