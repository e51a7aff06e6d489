"""Benchmark datasets: QuixBugs (shipped), HumanEvalFix (HumanEvalPack JSONL) and real-repo bugs.

Every loader hands out `Task`s (tasks.py). A Task holds only what the agent may see: the buggy
code, the tests and their support files, a problem statement. Fixed solutions, diffs, bug lines and
fix kinds are dropped at load time (an allow-list, not a deny-list); QuixBugs' bug lines stay
reachable only through `quixbugs_bug_lines()`, for localization metrics, and the reference
programs only through `reference_for()`, for the harness's correctness check.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from .bugsinpy import load_bugsinpy
from .tasks import Task, looks_remote, select

DATASETS = ("quixbugs", "humanevalfix", "repos", "bugsinpy")

# Files written into every generated repository so that test runs do not dirty the tree.
GITIGNORE = "__pycache__/\n*.pyc\n.pytest_cache/\n"

# QuixBugs support files a task needs. correct_python_programs/ is never shipped: the tests
# import it only under `--correct`.
QUIXBUGS_SUPPORT = (
    "conftest.py",
    "python_testcases/load_testdata.py",
    "python_testcases/node.py",
    "python_programs/node.py",
)


def _read_jsonl(path: Path, keep_errors: bool = False) -> list[dict]:
    """The JSON objects of a JSONL file. A line that is not one is an error, or with `keep_errors`
    a `{"_error": why, "_line": n}` in its place (the line's task records it; the others run)."""
    rows = []
    with open(path, encoding="utf-8", errors="replace" if keep_errors else "strict") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                if not keep_errors:
                    raise ValueError(f"{path}:{n}: not JSON: {e}") from None
                row = {"_error": f"{path}:{n}: not JSON: {e}"}
            if keep_errors and not isinstance(row, dict):
                row = {"_error": f"{path}:{n}: not a JSON object"}
            rows.append({**row, "_line": n} if keep_errors else row)
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
    recs = select(_quixbugs_raw(), lambda r: r["id"], ids, limit)
    return [_quixbugs_task(r, support) for r in recs]


def quixbugs_bug_lines(ids: Iterable[str] | None = None) -> dict[str, dict]:
    """Ground-truth bug locations, for localization metrics only (never give them to the agent).

    `{id: {"file", "lines", "changed", "insert_after"}}`; lines are 1-based in the buggy file.
    """
    recs = select(_quixbugs_raw(), lambda r: r["id"], ids, None)
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
    recs = select(recs, lambda r: r["task_id"], ids, limit)
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


def _repos_task(r: dict, path: Path) -> Task:
    if "_error" in r:
        raise ValueError(r["_error"])
    repo = str(r["repo"])
    if not looks_remote(repo):
        p = Path(repo).expanduser()
        repo = str(p if p.is_absolute() else (path.parent / p).resolve())
    return Task(task_id=str(r["task_id"]), dataset="repos", files={},
                test_args=_pytest_args(r.get("test_command")),
                failing_tests=list(r["failing_tests"]) if r.get("failing_tests") else None,
                problem=r.get("problem") or "", meta={"repo": repo, "commit": r.get("commit")})


def load_repos(path: Path | str, ids: Iterable[str] | None = None,
               limit: int | None = None) -> list[Task]:
    """JSONL of `{"task_id", "repo", "commit", "test_command", "failing_tests"[, "problem"]}`.

    `repo` is a git URL or a local path (relative paths are relative to the JSONL file).
    The repository is cloned at `commit` by `Task.materialize`. A line that is not such a task is a
    task that says why (its id, else `line-N`): the run records it as that task's error.
    """
    path = Path(path)
    tasks = []
    for r in _read_jsonl(path, keep_errors=True):
        try:
            tasks.append(_repos_task(r, path))
        except (KeyError, TypeError, ValueError) as exc:  # that line's task says why; the others run
            why = r.get("_error") or f"{path}:{r['_line']}: {type(exc).__name__}: {exc}"
            tasks.append(Task(task_id=str(r.get("task_id") or f"line-{r['_line']}"), dataset="repos", files={},
                              test_args=[], failing_tests=None, problem="", meta={"load_error": why}))
    return select(tasks, lambda t: t.task_id, ids, limit)


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
        return load_bugsinpy(data, ids=ids, limit=limit, **bugsinpy)
    return load_repos(data, ids=ids, limit=limit)
