"""BugsInPy (github.com/soarsmu/BugsInPy) as benchmark tasks, straight from a checkout of it.

A bug lives in `projects/P/bugs/N/`: `bug.info` (the buggy and the fixed commit, the test files, the
Python it was recorded on), `run_test.sh` (the commands that run its failing tests),
`requirements.txt` (a `pip freeze` of the authors' environment) and `bug_patch.txt` (the human
fix). The project's clone comes from `--repos DIR/P`. A task is the buggy commit's tree with the
fixed commit's test files, as a new one-commit repository (made in tasks.py). `bug_patch.txt` is
read only by the harness (`reference_patch`), to check that the bug reproduces; no Task field holds it.

A task's suite (its test arguments) is the project's tests, not only the bug's: every test module
in the folders that hold the bug's test files (`project_suite`), as `fix` runs a user's repository's
own suite. So the search checks a candidate as `fix` does (checks.run_checks): the bug's failing
tests, then the tests that ran a changed line, then that suite; a candidate that breaks another of
the project's tests is rejected there. Tests that already fail on the buggy tree and are not the
bug's are the baseline (Settings.is_baseline), as in `fix`.

Projects are split: the dev set (DEV_PROJECTS) is for development and tuning; every other project
is held out for evaluation and is refused unless the caller says this is an evaluation run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from ..errors import BadInput
from ..sandbox.install_deps import canonical, decode
from ..sandbox.releases import release_for
from ..sandbox.test_deps import runner_safe
from .tasks import Task, extract, init_commit, select

DEV_PROJECTS = ("thefuck", "tqdm", "youtube-dl")
KEY_VALUE = re.compile(r'^\s*([A-Za-z_]\w*)\s*=\s*"?(.*?)"?\s*$')


def read_info(path: Path) -> dict[str, str]:
    """`key="value"` lines (bug.info, project.info); BugsInPy's own reader also tolerates a space
    before the `=` (`fixed_commit_id ="..."`), so this one does too."""
    info = {}
    for line in decode(path.read_bytes()).splitlines():
        if m := KEY_VALUE.match(line):
            info[m[1]] = m[2]
    return info


PYTEST_WORDS = ("pytest", "py.test", "tox")  # tox: BugsInPy's cookiecutter runs `tox NODE_ID`, pytest under it


def failing_tests(run_test: str, test_files: list[str]) -> list[str]:
    """pytest node ids of the tests that `run_test.sh` runs, one command a line: `pytest ID...`,
    `py.test ID...`, `python -m pytest ID...`, `tox ID...` (its env runs pytest with them), or
    `python -m unittest [-q] pkg.module.Class.method...`."""
    ids: list[str] = []
    for line in run_test.splitlines():
        words = shlex.split(line, comments=True)
        if runner := next((w for w in words if w in PYTEST_WORDS), None):
            args = words[words.index(runner) + 1:]
            ids += [a for a in args if not a.startswith("-")]
        elif "unittest" in words:
            args = words[words.index("unittest") + 1:]
            ids += [unittest_id(a, test_files) for a in args if not a.startswith("-")]
    return list(dict.fromkeys(ids))


def unittest_id(dotted: str, test_files: list[str]) -> str:
    """`test.test_utils.TestUtil.test_x` -> `test/test_utils.py::TestUtil::test_x`, by the test
    file whose module path begins the name; without one, the last two parts are class and method."""
    for f in test_files:
        module = f.removesuffix(".py").replace("/", ".")
        if dotted.startswith(module + "."):
            return "::".join([f, *dotted[len(module) + 1:].split(".")])
    parts = dotted.split(".")
    return "::".join([f"{'/'.join(parts[:-2])}.py", *parts[-2:]]) if len(parts) > 2 else dotted


def own_names(clone: Path, commit: str | None, project: str) -> set[str]:
    """The project's own names (canonical): BugsInPy's, and the distribution name its metadata at
    `commit` gives (ansible's is `ansible-base`): a freeze's pin of it is the tree itself."""
    import tempfile

    from ..sandbox.test_deps import project_name

    names = {canonical(project)}
    if not (clone.is_dir() and commit):
        return names
    with tempfile.TemporaryDirectory() as tmp:
        for f in ("setup.py", "setup.cfg", "pyproject.toml"):
            shown = subprocess.run(["git", "-C", str(clone), "show", f"{commit}:{f}"], capture_output=True)
            if shown.returncode == 0:
                (Path(tmp) / f).write_bytes(shown.stdout)
        if name := project_name(Path(tmp)):
            names.add(name)
    return names


def requirements(text: str, project: str | set[str]) -> list[str]:
    """The bug's `requirements.txt`, as packages for the sandbox's dependency image: without the
    project itself (the tree under test is the project), without entries that never installed, and
    without the test runner's pins (the sandbox brings its own pytest; its plugins stay, unpinned:
    test_deps.runner_safe)."""
    own = {canonical(project)} if isinstance(project, str) else project
    kept = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue  # a blank line, or pip options (-e, -r): not packages
        req = runner_safe(line)
        if req is not None and canonical(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0]) not in own:
            kept.append(req)
    return kept


def bug_dirs(data: Path, project: str) -> list[Path]:
    bugs = data / "projects" / project / "bugs"
    return sorted((d for d in bugs.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))


def load_bugsinpy(data: Path | str, repos: Path | str | None = None, projects: Iterable[str] | None = None,
                  ids: Iterable[str] | None = None, limit: int | None = None,
                  evaluation: bool = False) -> list[Task]:
    """The bugs of `projects` (default: the dev set) as tasks `P-N`. `repos/P` is the project's clone
    (default: DATA/repos/P). A held-out project is refused unless `evaluation` is true."""
    data = Path(data)
    repos = Path(repos) if repos else data / "repos"
    ids = list(ids) if ids is not None else None
    if not (data / "projects").is_dir():
        raise BadInput(f"{data} is not a BugsInPy checkout (no projects/ folder)")
    if projects is None:  # the ids' projects, else the dev set (those of it that the checkout has)
        projects = sorted({i.rsplit("-", 1)[0] for i in ids}) if ids else \
            [p for p in DEV_PROJECTS if (data / "projects" / p / "bugs").is_dir()]
    projects = list(projects)
    held_out = [p for p in projects if p not in DEV_PROJECTS]
    if held_out and not evaluation:
        raise BadInput(f"{', '.join(held_out)}: held out for evaluation (the dev set is "
                       f"{', '.join(DEV_PROJECTS)}); pass --evaluation only for an evaluation run")
    tasks = []
    for project in projects:
        if not (data / "projects" / project / "bugs").is_dir():
            raise BadInput(f"no BugsInPy project {project!r} in {data}")
        info = data / "projects" / project / "project.info"
        url = read_info(info).get("github_url", "") if info.is_file() else ""
        tasks += [loaded(d, project, repos / project, url) for d in bug_dirs(data, project)]
    return select(tasks, lambda t: t.task_id, ids, limit)


def loaded(bug: Path, project: str, clone: Path, url: str) -> Task:
    """The bug's task; one whose files cannot be read is a task that says why (tasks.LOAD_ERROR), so
    that the run records it as that task's error and goes on with the others."""
    try:
        return bug_task(bug, project, clone, url)
    except (OSError, ValueError) as exc:
        why = f"{project}-{bug.name} could not be loaded from {bug}: {type(exc).__name__}: {exc}"
        return Task(task_id=f"{project}-{bug.name}", dataset="bugsinpy", files={}, test_args=[], failing_tests=None,
                    problem="", meta={"project": project, "bug": int(bug.name), "load_error": why})


def _text(path: Path) -> str:
    """A bug's file as pip would read it (UTF-8, or the encoding its byte-order mark names), "" if absent."""
    return decode(path.read_bytes()) if path.is_file() else ""


def bug_task(bug: Path, project: str, clone: Path, url: str = "") -> Task:
    info = read_info(bug / "bug.info")
    test_files = [f.strip() for f in info.get("test_file", "").split(";") if f.strip()]
    run_test, reqs, setup = _text(bug / "run_test.sh"), _text(bug / "requirements.txt"), _text(bug / "setup.sh")
    python = info.get("python_version") or None
    buggy = info.get("buggy_commit_id")
    meta = {"repo": str(clone), "github_url": url, "project": project, "bug": int(bug.name),
            "commit": buggy, "fixed_commit": info.get("fixed_commit_id"),
            "test_files": test_files, "test_support": test_support(clone, buggy, info.get("fixed_commit_id"), test_files),
            "python_version": python, "release": release_for(python),
            "deps": requirements(reqs, own_names(clone, buggy, project)), "bug_dir": str(bug.resolve()),
            "install_project": bool(re.search(r"setup\.py\s+(install|develop)|pip3?\s+install\s+(-e\s+)?\.(\s|$)",
                                              setup))}
    return Task(task_id=f"{project}-{bug.name}", dataset="bugsinpy", files={},
                test_args=project_suite(clone, buggy, test_files),
                failing_tests=failing_tests(run_test, test_files) or None, problem="", meta=meta)


def test_support(clone: Path, buggy: str | None, fixed: str | None, test_files: list[str]) -> list[str]:
    """The files that the fixed commit adds to the bug's test folders and that are not test modules
    (data, helpers: cookiecutter-1's `tests/test-generate-context/non_ascii.json`): the fixed
    commit's tests read them, so the task's tree has them beside those tests. Never a source file of
    the project (only the test folders), never a new test module (the suite stays the buggy commit's)."""
    if not (clone.is_dir() and buggy and fixed):
        return []
    folders = [f for f in folders_of(test_files) if f != "."]  # a test file at the root: no test folder
    if not folders:
        return []
    added = subprocess.run(["git", "-C", str(clone), "diff", "--name-only", "--no-renames", "--diff-filter=A",
                            buggy, fixed, "--", *folders], capture_output=True, text=True)
    modules = set(suite_modules(added.stdout.splitlines()))
    return [p for p in added.stdout.splitlines() if p and p not in modules and p not in test_files] \
        if added.returncode == 0 else []


def project_suite(clone: Path, buggy: str | None, test_files: list[str]) -> list[str]:
    """The test modules of the buggy commit's test folders (`folders_of`) and the bug's test files
    (the fixed commit's, which the task's tree has): the suite a task's candidates pass, as `fix`
    would run it on the project. Named one by one, as a project's own naming (tqdm's
    `tests_tqdm.py`) may not be pytest's default. Without the clone, the bug's files (the task then
    fails where it is materialized, saying where the clone should be)."""
    listed = subprocess.run(["git", "-C", str(clone), "ls-tree", "-r", "--name-only", buggy or "HEAD", "--",
                             *folders_of(test_files)], capture_output=True, text=True) if clone.is_dir() else None
    found = suite_modules(listed.stdout.splitlines()) if listed and listed.returncode == 0 else []
    return sorted({*found, *test_files})


def suite_modules(paths: Iterable[str]) -> list[str]:
    """The paths that name a test module (test*.py, *_test.py)."""
    return sorted({p for p in paths if p.endswith(".py") and (Path(p).name.startswith("test")
                                                              or p.endswith("_test.py"))})


def folders_of(test_files: list[str]) -> list[str]:
    """The folders that hold these test files: each up to its first part named test* (`tests`,
    `tqdm/tests`), else the file's own folder."""
    out = []
    for rel in test_files:
        parts = Path(rel).parts[:-1]
        first = next((i for i, p in enumerate(parts) if p.startswith("test")), len(parts) - 1)
        out.append("/".join(parts[:first + 1]) or ".")
    return sorted(set(out))


def test_folders(task: Task) -> list[str]:
    """The folders that hold the bug's test files (`folders_of`)."""
    return folders_of(task.meta["test_files"])


def with_fixed_test_folders(task: Task, dest: Path) -> list[str]:
    """Replace the test folders of the tree at `dest` (a materialized task) by the fixed commit's, and
    commit them: a check after the agent runs the project's tests of the fixed commit, not only the
    bug's. The test modules in them (test*.py, *_test.py), for pytest: named one by one, as a
    project's own naming (tqdm's `tests_tqdm.py`) may not be pytest's default."""
    folders = test_folders(task)
    for rel in folders:
        if rel != ".":
            shutil.rmtree(dest / rel, ignore_errors=True)
    extract(Path(task.meta["repo"]), task.meta["fixed_commit"], dest, task.task_id, folders)
    init_commit(dest, f"bugsinpy: {task.task_id}, the fixed commit's tests", force=True, allow_empty=True)
    return suite_modules(p.relative_to(dest).as_posix() for rel in folders for p in (dest / rel).rglob("*.py"))


def reference_patch(task: Task) -> str | None:
    """The human fix (`bug_patch.txt`), for the harness only, after or before the agent: never put it
    where the agent reads."""
    if task.dataset != "bugsinpy":
        return None
    f = Path(task.meta["bug_dir"]) / "bug_patch.txt"
    return f.read_text(encoding="utf-8", errors="replace") if f.is_file() else None
