"""A benchmark task, and how it becomes the git repository the agent works in.

The dataset modules (datasets.py, bugsinpy.py) read their formats into `Task`s; every git write of
the harness is here: a task's files as a one-commit repository, a real repository cloned at its
commit, or a BugsInPy bug's buggy tree with the fixed commit's tests. A Task travels as it is (to a
Ray node, into a record): materializing it needs this module only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import git

# Fixed identity and date: commits of a materialized task are reproducible and never depend on
# the user's global git configuration.
_ACTOR_NAME = "repair-agent bench"
_ACTOR_EMAIL = "bench@repair-agent.invalid"
_COMMIT_DATE = "2000-01-01T00:00:00+0000"


class LoadError(Exception):
    """A task whose dataset entry could not be read: the loader kept it (meta["load_error"] says why)
    so that it becomes that task's error record, not the end of the whole run."""


@dataclass
class Task:
    task_id: str
    dataset: str
    files: dict[str, str]  # relative path -> content; empty for `repos` tasks (cloned instead)
    test_args: list[str]  # pytest arguments, run from the repository root
    failing_tests: list[str] | None  # pytest node ids known to fail on the buggy code
    problem: str  # natural-language description ("" when none)
    meta: dict = field(default_factory=dict)  # for reports only; never a hint for the agent

    def to_dict(self) -> dict:
        return asdict(self)

    def materialize(self, dest: Path) -> Path:
        """Write the task into `dest` (absent or empty) as a git repository with one commit.

        `repos` tasks are cloned (or copied) at their commit instead. Returns `dest`.
        """
        dest = Path(dest)
        if self.meta.get("load_error"):
            raise LoadError(self.meta["load_error"])
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} exists and is not empty")
        if self.dataset == "repos" and self.meta.get("repo"):
            return _materialize_repo(self, dest)
        if self.dataset == "bugsinpy":
            return _materialize_bugsinpy(self, dest)
        dest.mkdir(parents=True, exist_ok=True)
        for rel, content in self.files.items():
            p = dest / _safe_rel(rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content, encoding="utf-8")
        init_commit(dest, f"{self.dataset}: {self.task_id} (buggy)", list(self.files))
        return dest


def _safe_rel(rel: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"unsafe path in task files: {rel!r}")
    return p


def select(items: list[Any], key, ids: Iterable[str] | None, limit: int | None) -> list[Any]:
    """`items` whose `key` is in `ids` (in that order; an unknown id is an error), at most `limit`."""
    if ids is not None:
        ids = list(ids)
        by_id = {key(x): x for x in items}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ValueError(f"unknown task ids: {', '.join(unknown)}")
        items = [by_id[i] for i in ids]
    if limit is not None:
        items = items[: max(0, limit)]
    return items


def _local_identity(repo: git.Repo) -> None:
    with repo.config_writer() as cw:
        cw.set_value("user", "name", _ACTOR_NAME)
        cw.set_value("user", "email", _ACTOR_EMAIL)
        cw.set_value("commit", "gpgsign", "false")


def init_commit(dest: Path, message: str, paths: list[str] | None = None, force: bool = False,
                allow_empty: bool = False) -> git.Repo:
    """`git init` + add `paths` (default: everything; `force`: ignored files too) + one commit, with a
    local identity. On a repository already there it adds a commit (`allow_empty`: even with no change)."""
    repo = git.Repo.init(dest, initial_branch="main")
    _local_identity(repo)
    # no `gc --auto` in the background after the commit (a big tree: ansible's): it packs the loose
    # objects while the dependency build copies the tree
    repo.git.config("gc.auto", "0")
    # git subprocesses only: gitpython's index.add() chdir()s, which races between bench workers
    repo.git.add("-A", *(["-f"] if force else [])) if paths is None else repo.git.add("--", *sorted(paths))
    date = {"GIT_AUTHOR_DATE": _COMMIT_DATE, "GIT_COMMITTER_DATE": _COMMIT_DATE}
    repo.git.commit("-q", "--no-verify", *(["--allow-empty"] if allow_empty else []), "-m", message, env=date)
    return repo


def looks_remote(repo: str) -> bool:
    return bool(re.match(r"^[a-z+]+://", repo)) or bool(re.match(r"^[\w.-]+@[\w.-]+:", repo))


def _materialize_repo(task: Task, dest: Path) -> Path:
    repo, commit = task.meta["repo"], task.meta.get("commit")
    local = not looks_remote(repo)
    if local and not Path(repo).exists():
        raise FileNotFoundError(f"{task.task_id}: repository {repo} not found")
    if local and not (Path(repo) / ".git").exists() and not commit:
        # A plain folder: copy it and make it a one-commit repository.
        shutil.copytree(repo, dest, dirs_exist_ok=True, symlinks=True,  # links stay links, dangling or not
                        ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache"))
        init_commit(dest, f"repos: {task.task_id}")
        return dest
    r = git.Repo.clone_from(repo, dest, no_checkout=True)
    r.git.checkout("--detach", commit or "HEAD")
    _local_identity(r)
    return dest


def _materialize_bugsinpy(task: Task, dest: Path) -> Path:
    """The buggy commit's tree plus the fixed commit's test files, as a new one-commit repository: the
    clone's later history, which holds the fix, never reaches the agent's tree."""
    clone, buggy, fixed = Path(task.meta["repo"]), task.meta["commit"], task.meta["fixed_commit"]
    if not clone.exists():
        how = f" (git clone {task.meta['github_url']} {clone})" if task.meta.get("github_url") else ""
        raise FileNotFoundError(f"{task.task_id}: no clone of {task.meta['project']} at {clone}{how}")
    dest.mkdir(parents=True, exist_ok=True)
    extract(clone, buggy, dest, task.task_id)
    for rel in [*task.meta["test_files"], *task.meta.get("test_support", [])]:  # and the files those tests read
        shown = subprocess.run(["git", "-C", str(clone), "show", f"{fixed}:{rel}"], capture_output=True)
        if shown.returncode != 0:
            raise FileNotFoundError(f"{task.task_id}: {rel} not in the fixed commit {fixed}")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(shown.stdout)
    # force: a tracked file that the project's .gitignore names is still part of the tree
    init_commit(dest, f"bugsinpy: {task.task_id} (buggy, with the fixed commit's tests)", force=True)
    return dest


def extract(clone: Path, commit: str, dest: Path, task_id: str, paths: Iterable[str] = ()) -> None:
    """`paths` (default: everything) as they are in `commit`, written into `dest`."""
    archive = subprocess.Popen(["git", "-C", str(clone), "archive", "--format=tar", commit, "--", *paths],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, capture_output=True)
    archive.stdout.close()
    err = archive.stderr.read().decode(errors="replace").strip()
    if archive.wait() != 0 or untar.returncode != 0:
        raise FileNotFoundError(f"{task_id}: {' '.join(paths) or 'commit'} {commit} not in {clone}: "
                                f"{err or untar.stderr.decode(errors='replace').strip()}")
