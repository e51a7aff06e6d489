"""Before the agent runs on a real repository's bug: does the bug show, and in which environment?

The task's failing tests must fail on the buggy tree, and (where the benchmark has the human fix,
BugsInPy's `bug_patch.txt`) pass once that fix is applied. A bug that does not reproduce is
recorded as such and the agent does not run on it: its outcome would measure the benchmark, not the
agent. The record also says which image ran the tests, how long building its dependencies took and
which Python it has, and what its dependency image holds and why (`dependencies`: what test_deps
found in the tree, what did not install, which pins moved to a version with a wheel). Every reason
is one line.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings, holds_or_held
from ..envfault import env_fault
from ..patching import apply_diff
from ..sandbox import open_sandbox
from ..outcomes import failing_ids, ran
from .bugsinpy import reference_patch
from .tasks import Task

VERSION = "import platform; print(platform.python_version())"


def task_settings(task: Task, settings: Settings) -> Settings:
    """The benchmark's settings for one task: its tests, and for a BugsInPy bug the base image of
    the Python it was recorded on (unless an image was chosen) and its requirements."""
    update: dict = {"test": list(task.test_args), "problem": task.problem,
                    "failing_tests": list(task.failing_tests or []) if task.dataset in ("repos", "bugsinpy") else []}
    if task.dataset == "bugsinpy" and not task.meta.get("load_error"):  # one that did not load fails at materialize
        from ..sandbox.releases import base_tag

        # with a compiler: old pins often have no wheel for the closest Python we have
        update["image"] = settings.image or base_tag(task.meta["release"], compiler=True)
        update["deps"] = [*_as_list(settings.deps), *task.meta.get("deps", [])]
        # as BugsInPy's own recipe: the project is installed only where the bug's setup.sh does it
        update["install_project"] = bool(task.meta.get("install_project"))
    return settings.model_copy(update=update)


def _as_list(deps) -> list[str]:
    return [deps] if isinstance(deps, str) else list(deps or [])


def one_line(text: str, limit: int = 300) -> str:
    """`text` as one line of at most `limit` characters (its end kept: an error's last words)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else "..." + line[-(limit - 3):]


def still_passing(targets: list[str], run) -> list[str]:
    """The targets none of whose cases failed in `run` (a module's collection error fails each of its tests)."""
    failed = failing_ids(run)
    return [t for t in targets if not any(holds_or_held(t, f) for f in failed)]


def reproduce(task: Task, settings: Settings, work: Path, log=lambda m: None) -> dict:
    """`{"reproduced": bool, "reproduce": why, "env_fault": "" | text, "python", "image",
    "image_build_s", "failing_on_buggy", "failing_with_reference"}`. `settings`: task_settings()'s."""
    repo = task.materialize(work)
    box = open_sandbox(settings.sandbox, repo, image=settings.image, log=log, deps=settings.deps,
                       build=settings.build_image, install_project=settings.install_project)
    try:
        env = dict(getattr(box, "env", {}) or {})
        if getattr(box, "client", None) is not None and getattr(box, "image", None):  # Docker: its record
            from ..sandbox.images import dependency_record

            env["dependencies"] = dependency_summary(dependency_record(box.client, box.image))
        rc, out = box.run([box.python, "-c", VERSION], timeout=60)
        env["python"] = out.strip().splitlines()[-1] if rc == 0 and out.strip() else f"unknown (exit {rc})"
        targets = list(task.failing_tests or [])
        run = box.run_tests(targets or list(task.test_args), timeout=settings.test_timeout_s,
                            per_test_timeout=settings.per_test_timeout_s)
        record = {**env, "reproduced": False, "env_fault": "", "failing_on_buggy": failing_ids(run),
                  "failing_with_reference": None}
        if fault := env_fault(run, repo):
            return {**record, "env_fault": fault, "reproduce": fault}
        if not ran(run):
            return {**record, "reproduce": f"no test ran on the buggy code (exit {run['returncode']}): "
                                           f"{one_line(run['output_tail']) or 'no output'}"}
        passing = still_passing(targets, run) if targets else []
        if passing or not failing_ids(run):
            return {**record, "reproduce": f"passes on the buggy code: {', '.join(passing) or 'every test'}"}
        reference = reference_patch(task)
        if reference is not None:
            applied = apply_diff(repo, reference)
            if not applied.ok:
                return {**record, "reproduce": f"the reference fix does not apply: {one_line(applied.reason)}"}
            fixed = box.run_tests(targets, timeout=settings.test_timeout_s,
                                  per_test_timeout=settings.per_test_timeout_s)
            record["failing_with_reference"] = failing_ids(fixed)
            failing = [t for t in targets if not still_passing([t], fixed)]  # a case of it failed
            if failing or not ran(fixed):
                first = next((c["message"] for c in fixed["cases"] if c["outcome"] in ("failed", "error")), "")
                return {**record, "reproduce": f"fails with the reference fix: {', '.join(failing or targets)}"
                                               + (f" ({one_line(first)})" if first else "")}
        how = "fails on the buggy code" + (", passes with the reference fix" if reference is not None else "")
        return {**record, "reproduced": True, "reproduce": how}
    finally:
        box.close()


def dependency_summary(record: dict) -> dict:
    """The parts of a dependency image's record that a benchmark record keeps: what was found (and
    from which file), what did not install, which pins moved, the options the sandbox adds."""
    needs = record.get("needs") or {}
    return {"found": [f"{p['requirement']} ({p['source']})" for p in needs.get("packages", [])]
            + [f"{p['plugin']} ({p['source']})" for p in needs.get("plugins", [])],
            "failed": [f"{f.get('requirement') or f.get('plugin')}: {f['why']}" for f in record.get("failed", [])],
            "replaced": [f"{r['requirement']} -> {r['with']}" for r in record.get("replaced", [])],
            "pytest_addopts": record.get("pytest_addopts", []), "warnings": record.get("warnings", [])}
