"""Benchmark datasets: QuixBugs (shipped), HumanEvalFix (HumanEvalPack JSONL) and real-repo bugs.

Every loader hands out `Task`s. A Task holds only what the agent may see: the buggy code, the
tests and their support files, a problem statement. Fixed solutions, diffs, bug lines and fix
kinds are dropped at load time (an allow-list, not a deny-list); QuixBugs' bug lines stay
reachable only through `quixbugs_bug_lines()`, for localization metrics, and the reference
programs only through `reference_for()`, for the harness's correctness check.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import git

DATASETS = ("quixbugs", "humanevalfix", "repos", "bugsinpy")

# Files written into every generated repository so that test runs do not dirty the tree.
GITIGNORE = "__pycache__/\n*.pyc\n.pytest_cache/\n"

# Fixed identity and date: commits of a materialized task are reproducible and never depend on
# the user's global git configuration.
_ACTOR_NAME = "repair-agent bench"
_ACTOR_EMAIL = "bench@repair-agent.invalid"
_COMMIT_DATE = "2000-01-01T00:00:00+0000"

# QuixBugs support files a task needs. correct_python_programs/ is never shipped: the tests
# import it only under `--correct`.
QUIXBUGS_SUPPORT = (
    "conftest.py",
    "python_testcases/load_testdata.py",
    "python_testcases/node.py",
    "python_programs/node.py",
)


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
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} exists and is not empty")
        if self.dataset == "repos" and self.meta.get("repo"):
            return _materialize_repo(self, dest)
        if self.dataset == "bugsinpy":
            from .bugsinpy import materialize  # that module builds on this one

            return materialize(self, dest)
        dest.mkdir(parents=True, exist_ok=True)
        for rel, content in self.files.items():
            p = dest / _safe_rel(rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content, encoding="utf-8")
        _init_commit(dest, f"{self.dataset}: {self.task_id} (buggy)", list(self.files))
        return dest


def _safe_rel(rel: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"unsafe path in task files: {rel!r}")
    return p


def _actor() -> git.Actor:
    return git.Actor(_ACTOR_NAME, _ACTOR_EMAIL)


def _init_commit(dest: Path, message: str, paths: list[str] | None = None, force: bool = False,
                 allow_empty: bool = False) -> git.Repo:
    """`git init` + add `paths` (default: everything; `force`: ignored files too) + one commit, with a
    local identity. On a repository already there it adds a commit (`allow_empty`: even with no change)."""
    repo = git.Repo.init(dest, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", _ACTOR_NAME)
        cw.set_value("user", "email", _ACTOR_EMAIL)
        cw.set_value("commit", "gpgsign", "false")
    # git subprocesses only: gitpython's index.add() chdir()s, which races between bench workers
    repo.git.add("-A", *(["-f"] if force else [])) if paths is None else repo.git.add("--", *sorted(paths))
    date = {"GIT_AUTHOR_DATE": _COMMIT_DATE, "GIT_COMMITTER_DATE": _COMMIT_DATE}
    repo.git.commit("-q", "--no-verify", *(["--allow-empty"] if allow_empty else []), "-m", message, env=date)
    return repo


def _select(items: list[Any], key, ids: Iterable[str] | None, limit: int | None) -> list[Any]:
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


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON: {e}") from None
    return rows


# --------------------------------------------------------------------------------------------
# QuixBugs
# --------------------------------------------------------------------------------------------

def quixbugs_dir() -> Path:
    """The folder of the shipped QuixBugs data (inside the installed package)."""
    return Path(str(resources.files("repair_agent").joinpath("data", "quixbugs")))


def _quixbugs_raw() -> list[dict]:
    return _read_jsonl(quixbugs_dir() / "quixbugs_python.jsonl")


def _quixbugs_support() -> dict[str, str]:
    with open(quixbugs_dir() / "support_files.json", encoding="utf-8") as f:
        return json.load(f)


def docstring_problem(source: str) -> str:
    """The program's trailing description: the last module-level bare string, else ""."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    strings = [n.value.value for n in tree.body
               if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
               and isinstance(n.value.value, str)]
    return inspect.cleandoc(strings[-1]) if strings else ""


def _quixbugs_task(rec: dict, support: dict[str, str]) -> Task:
    pid = rec["id"]
    files: dict[str, str] = {".gitignore": GITIGNORE}
    for rel in QUIXBUGS_SUPPORT:
        files[rel] = support[rel]
    files[rec["buggy_path"]] = rec["buggy_source"]
    files[rec["test_path"]] = rec["test_source"]
    if rec.get("json_testcases_path") and rec.get("json_testcases") is not None:
        files[rec["json_testcases_path"]] = rec["json_testcases"]
    files["LICENSE"] = support["LICENSE"]

    buggy = (rec.get("verification") or {}).get("buggy") or {}
    failing = [f"{rec['test_path']}::{t['test']}" for t in buggy.get("failing_tests") or []]
    meta = {
        "entry_point": rec.get("entry_point", pid),
        "program_path": rec["buggy_path"],
        "test_path": rec["test_path"],
        "source": rec.get("source"),
        "license": "MIT, Copyright 2017-2019 James Koppel (LICENSE)",
        # Upstream's run of the buggy program (20 s per test): slow programs hang until timeout.
        "buggy_run": {k: buggy.get(k) for k in ("rc", "seconds", "counts")},
    }
    return Task(task_id=pid, dataset="quixbugs", files=files,
                test_args=[rec["test_path"]], failing_tests=failing or None,
                problem=docstring_problem(rec["buggy_source"]), meta=meta)


def load_quixbugs(ids: Iterable[str] | None = None, limit: int | None = None) -> list[Task]:
    """The 40 QuixBugs Python programs as tasks (buggy code, tests, support files only)."""
    support = _quixbugs_support()
    recs = _select(_quixbugs_raw(), lambda r: r["id"], ids, limit)
    return [_quixbugs_task(r, support) for r in recs]


def quixbugs_bug_lines(ids: Iterable[str] | None = None) -> dict[str, dict]:
    """Ground-truth bug locations, for localization metrics only (never give them to the agent).

    `{id: {"file", "lines", "changed", "insert_after"}}`; lines are 1-based in the buggy file.
    """
    recs = _select(_quixbugs_raw(), lambda r: r["id"], ids, None)
    return {r["id"]: {"file": r["buggy_path"], "lines": list(r["bug_lines"]),
                      "changed": list(r.get("bug_lines_changed") or []),
                      "insert_after": list(r.get("bug_lines_insert_after") or [])}
            for r in recs}


def reference_for(task: Task, data: Path | str | None = None) -> tuple[str, str, str] | None:
    """The reference program of a task, `(program path, source, entry point)`, for the bench
    harness's correctness check only, after the agent has finished; never give it to the agent.

    QuixBugs: the fixed program (shipped). HumanEvalFix: the canonical solution, read again from
    `data` (the HumanEvalPack file). None when there is none (`repos`, or no `data`).
    """
    if task.dataset == "quixbugs":
        rec = next(r for r in _quixbugs_raw() if r["id"] == task.task_id)
        return rec["buggy_path"], rec["fixed_source"], rec.get("entry_point", task.task_id)
    if task.dataset == "humanevalfix" and data is not None:
        rec = next((r for r in _read_jsonl(Path(data)) if r["task_id"] == task.task_id), None)
        if rec and rec.get("canonical_solution"):
            source = rec["declaration"] + rec["canonical_solution"]
            return task.meta["program_path"], source if source.endswith("\n") else source + "\n", rec["entry_point"]
    return None


# --------------------------------------------------------------------------------------------
# HumanEvalFix (HumanEvalPack, Python)
# --------------------------------------------------------------------------------------------

def _module_name(entry_point: str) -> str:
    name = re.sub(r"\W", "_", entry_point) or "solution"
    if name[0].isdigit():
        name = "m_" + name
    stdlib = getattr(sys, "stdlib_module_names", ())
    if name in stdlib or name.startswith("test") or name in ("conftest", "pytest"):
        name += "_solution"
    return name


def _strip_check_calls(test: str) -> str:
    """Remove module-level `check(...)` calls: importing the test module must not run them."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return test
    lines = test.splitlines(keepends=True)
    drop: set[int] = set()
    for node in tree.body:
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "check"):
            drop.update(range(node.lineno - 1, node.end_lineno))
    return "".join(l for i, l in enumerate(lines) if i not in drop)


def _humanevalfix_task(rec: dict, with_docs: bool) -> Task:
    entry = rec["entry_point"]
    mod = _module_name(entry)
    program = rec["declaration"] + rec["buggy_solution"]
    if not program.endswith("\n"):
        program += "\n"
    test_body = _strip_check_calls(rec["test"]).rstrip() + "\n"
    test_file = (
        f"from {mod} import *  # noqa: F401,F403  (helpers the checks may use)\n"
        f"from {mod} import {entry}\n\n"
        f"{test_body}\n\n"
        f"def test_{mod}():\n"
        f"    check({entry})\n"
    )
    problem = ""
    if with_docs:
        problem = rec.get("docstring") or docstring_of(rec.get("prompt", ""), entry)
    test_path = f"test_{mod}.py"
    meta = {"entry_point": entry, "program_path": f"{mod}.py", "test_path": test_path,
            "variant": "docs" if with_docs else "tests"}
    for k in ("bug_type", "failure_symptoms"):
        if k in rec:
            meta[k] = rec[k]
    return Task(task_id=rec["task_id"], dataset="humanevalfix",
                files={".gitignore": GITIGNORE, f"{mod}.py": program, test_path: test_file},
                test_args=[test_path], failing_tests=[f"{test_path}::test_{mod}"],
                problem=problem, meta=meta)


def docstring_of(prompt: str, entry_point: str) -> str:
    """The docstring of `entry_point` in a HumanEval prompt ("" when absent)."""
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            return ast.get_docstring(node) or ""
    return ""


def load_humanevalfix(path: Path | str, ids: Iterable[str] | None = None,
                      limit: int | None = None, with_docs: bool = False) -> list[Task]:
    """HumanEvalPack Python JSONL -> tasks. `canonical_solution` is dropped at once.

    with_docs=False is HumanEvalFix-Tests (no description: `problem` is ""); True gives the
    entry point's docstring as `problem` (HumanEvalFix-Docs).
    """
    recs = []
    for r in _read_jsonl(Path(path)):
        r.pop("canonical_solution", None)
        r.pop("instruction", None)
        recs.append(r)
    recs = _select(recs, lambda r: r["task_id"], ids, limit)
    return [_humanevalfix_task(r, with_docs) for r in recs]


# --------------------------------------------------------------------------------------------
# Real-repository bugs
# --------------------------------------------------------------------------------------------

def _pytest_args(cmd: str | list[str] | None) -> list[str]:
    args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd or [])
    for prefix in (["python", "-m", "pytest"], ["python3", "-m", "pytest"], ["pytest"]):
        if args[: len(prefix)] == prefix:
            return args[len(prefix):]
    return args


def _looks_remote(repo: str) -> bool:
    return bool(re.match(r"^[a-z+]+://", repo)) or bool(re.match(r"^[\w.-]+@[\w.-]+:", repo))


def load_repos(path: Path | str, ids: Iterable[str] | None = None,
               limit: int | None = None) -> list[Task]:
    """JSONL of `{"task_id", "repo", "commit", "test_command", "failing_tests"[, "problem"]}`.

    `repo` is a git URL or a local path (relative paths are relative to the JSONL file).
    The repository is cloned at `commit` by `Task.materialize`.
    """
    path = Path(path)
    tasks = []
    for r in _read_jsonl(path):
        repo = str(r["repo"])
        if not _looks_remote(repo):
            p = Path(repo).expanduser()
            repo = str(p if p.is_absolute() else (path.parent / p).resolve())
        tasks.append(Task(task_id=str(r["task_id"]), dataset="repos", files={},
                          test_args=_pytest_args(r.get("test_command")),
                          failing_tests=list(r["failing_tests"]) if r.get("failing_tests") else None,
                          problem=r.get("problem") or "",
                          meta={"repo": repo, "commit": r.get("commit")}))
    return _select(tasks, lambda t: t.task_id, ids, limit)


def _materialize_repo(task: Task, dest: Path) -> Path:
    repo, commit = task.meta["repo"], task.meta.get("commit")
    local = not _looks_remote(repo)
    if local and not Path(repo).exists():
        raise FileNotFoundError(f"{task.task_id}: repository {repo} not found")
    if local and not (Path(repo) / ".git").exists() and not commit:
        # A plain folder: copy it and make it a one-commit repository.
        shutil.copytree(repo, dest, dirs_exist_ok=True, symlinks=True,  # links stay links, dangling or not
                        ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache"))
        _init_commit(dest, f"repos: {task.task_id}")
        return dest
    r = git.Repo.clone_from(repo, dest, no_checkout=True)
    r.git.checkout("--detach", commit or "HEAD")
    with r.config_writer() as cw:
        cw.set_value("user", "name", _ACTOR_NAME)
        cw.set_value("user", "email", _ACTOR_EMAIL)
        cw.set_value("commit", "gpgsign", "false")
    return dest


# --------------------------------------------------------------------------------------------

def load_dataset(name: str, data: Path | str | None = None, ids: Iterable[str] | None = None,
                 limit: int | None = None, **bugsinpy: Any) -> list[Task]:
    """One entry point for the CLI: `quixbugs` (shipped), `humanevalfix` and `repos` (--data), and
    `bugsinpy` (--data, with its own keywords: repos, projects, evaluation; see bugsinpy.py)."""
    if name == "quixbugs":
        return load_quixbugs(ids=ids, limit=limit)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r} (one of {', '.join(DATASETS)})")
    if data is None:
        raise ValueError(f"dataset {name!r} needs a data file (--data)")
    if name == "humanevalfix":
        return load_humanevalfix(data, ids=ids, limit=limit)
    if name == "bugsinpy":
        from .bugsinpy import load_bugsinpy

        return load_bugsinpy(data, ids=ids, limit=limit, **bugsinpy)
    return load_repos(data, ids=ids, limit=limit)
