"""A BugsInPy task's suite is the project's tests, not only the bug's: during the search a candidate
that passes the bug's tests and breaks another of the project's tests is rejected, as `fix` rejects
it on a user's repository (checks.run_checks: the failing tests, the tests that ran a changed line,
the suite). A small BugsInPy-shaped folder and project made here (no BugsInPy data, no network, no
model: the mutation search alone); the project is named `thefuck` only because the loader's default
is the dev set."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest
from test_bugsinpy import bug, commit, tools_only_image

from repair_agent.bench.bugsinpy import load_bugsinpy
from repair_agent.bench.solve import run_task
from repair_agent.config import Settings

BUGGY = ('def scale(x, k):\n    """x times k; a negative x by its size."""\n    if x < 0:\n'
         '        return -x * k\n    return x - k\n')
FIXED = BUGGY.replace("return x - k", "return x * k")
HUMAN_FIX = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -2,4 +2,4 @@ def scale(x, k):
     \"\"\"x times k; a negative x by its size.\"\"\"
     if x < 0:
         return -x * k
-    return x - k
+    return x * k
"""
BUG_TEST = "from calc import scale\n\n\ndef test_scale():\n    assert scale(2, 2) == 4\n"
# another of the project's tests, named as tqdm names its own (not pytest's default), passing on the
# buggy tree: `x - k` and `x * k` agree on (1, 0.5); `x + k` and `x ** k`, which pass the bug's test, do not
PROJECT_TEST = ("from calc import scale\n\n\ndef test_half():\n    assert scale(1, 0.5) == 0.5\n\n\n"
                "def test_negative():\n    assert scale(-1, 3) == 3\n")


@pytest.fixture
def project(tmp_path) -> tuple[Path, Path]:
    """BugsInPy's folder with one bug, and the project's clone: its buggy commit, the fix with the
    bug's test, and later work."""
    data, repos = tmp_path / "BugsInPy", tmp_path / "repos"
    repo = git.Repo.init(repos / "thefuck")
    buggy = commit(repo, {"calc.py": BUGGY, "tests/tests_scale.py": PROJECT_TEST, "tests/helpers.py": "X = 1\n",
                          "tests/data/test_case.txt": "not a module\n"}, "a bug")
    fixed = commit(repo, {"calc.py": FIXED, "tests/test_calc.py": BUG_TEST}, "the fix, with its test")
    commit(repo, {"calc.py": FIXED + "\n# later\n", "tests/test_later.py": "def test_later():\n    pass\n"}, "later")
    info = {"python_version": "3.11.2", "buggy_commit_id": buggy, "fixed_commit_id": fixed,
            "test_file": "tests/test_calc.py"}
    bug(data, "thefuck", 1, info, "pytest tests/test_calc.py::test_scale\n", reqs="pytest==5.4.2\n", patch=HUMAN_FIX)
    return data, repos


def test_a_tasks_suite_is_the_projects_test_modules(project, tmp_path):
    """The buggy commit's test modules in the bug's test folders (a project's own naming too), and the
    bug's test file from the fixed commit; not a helper, not a later commit's test. Without the
    clone, the bug's files: the task then says where the clone should be when it is materialized."""
    data, repos = project
    task = load_bugsinpy(data, repos)[0]
    assert task.test_args == ["tests/test_calc.py", "tests/tests_scale.py"]
    assert task.failing_tests == ["tests/test_calc.py::test_scale"]
    tree = task.materialize(tmp_path / "work")
    assert all((tree / rel).is_file() for rel in task.test_args)
    assert load_bugsinpy(data, tmp_path / "no-clones")[0].test_args == ["tests/test_calc.py"]


def test_a_patch_that_breaks_another_project_test_is_rejected_during_the_search(project, tmp_path, docker_ready):
    """`x + k` and `x ** k` pass the bug's test and break tests_scale.py::test_half: the search rejects
    them (that test ran the changed line, so it runs before the suite) and keeps `x * k`, the human
    fix, which the benchmark then verifies and scores correct."""
    data, repos = project
    task = load_bugsinpy(data, repos)[0]
    settings = Settings(sandbox="docker", image="repair-agent/base:bookworm", strategies="mutate")
    out = tmp_path / "out"
    with tools_only_image(tmp_path):
        record = run_task(task, settings, out, "agent", None, "test")
    assert record["status"] == "fixed" and record["verified"] is True, record.get("error")
    assert "+    return x * k" in record["patch"] and record["correct"] is True
    plausible = [p["patch"] for p in record["search"]["plausible"]]
    assert plausible and all("+    return x * k" in p for p in plausible), plausible
    (run,) = (out / "runs").iterdir()
    events = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    tried = {e["note"]: e for e in events if e["event"] == "candidate" and e["line"] == 5}
    for note in ("`-` -> `+`", "`-` -> `**`"):
        assert tried[note]["status"] == "passed_failing" and tried[note]["stage"] == "covering", tried[note]
        assert tried[note]["reason"] == ("breaks tests/tests_scale.py::test_half, also on a rerun (of the 1 tests "
                                         "that ran a changed line; the full suite did not run)")
    assert tried["`-` -> `*`"]["status"] == "fixed"


def test_a_big_suites_coverage_map_keeps_the_lines_a_failing_test_ran():
    """A project's suite is big: its whole line -> tests map does not fit the sandbox's console
    tail, so the map keeps the lines that a failing test ran (where a fix goes), and says how many
    passing tests there were: a change there still selects its tests, though they are every test
    the map names."""
    from types import SimpleNamespace

    from repair_agent.checks import selected_tests
    from repair_agent.sandbox.tools.coverage_contexts import covers_map

    measured = {"calc.py": {1: {"bug", "a", "b"}, 5: {"bug", "a"}, 9: {"b", "c"}}, "other.py": {2: {"c"}}}
    passing = {"a", "b", "c"}
    assert covers_map(measured, passing)["tests"] == ["a", "b", "c"]
    small = covers_map(measured, passing, {("calc.py", 1), ("calc.py", 5)})
    assert small == {"tests": ["a", "b"], "sets": [[0, 1], [0]], "files": {"calc.py": {"0": [1], "1": [5]}},
                     "passing": 3}
    patch = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"  # line 1: a and b ran it
    state = {"covers": small, "failing": ["bug"]}
    assert selected_tests({"patch": patch}, state, SimpleNamespace(), None) == ["a", "b"]
    assert selected_tests({"patch": patch}, {**state, "covers": covers_map(measured, passing)},
                          SimpleNamespace(), None) == ["a", "b"]


def test_a_slow_suite_of_quick_tests_gets_the_time_it_took_not_its_slowest_tests():
    """A candidate's limit comes from the slowest original test (policy.candidate_limits): youtube-dl's
    2,282 tests take over a minute, each well under a second. Past the failing tests, the run of the
    suite gets thrice what the original suite took (and half a minute), where that is longer."""
    from repair_agent.policy import candidate_limits, candidate_timeout, suite_limit

    quick = {"tests_before": {"duration_s": 70.0, "cases": [{"seconds": 0.05}] * 2000}}
    run_timeout, per_test = candidate_limits(candidate_timeout(quick, Settings()))
    assert (run_timeout, per_test) == (33.0, 1)
    assert suite_limit(quick, run_timeout) == 240.0
    assert suite_limit({"tests_before": {"duration_s": 1.0}}, run_timeout) == 33.0  # a small suite: as before
