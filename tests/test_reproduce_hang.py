"""The reproduce node when the suite never ends where no per-test limit reaches (tqdm-2's bars
deadlock in a garbage-collected __del__ while pytest writes a failure's report): with named failing
tests (a benchmark task's), their own modules become the suite, said with a warning; without, the
task ends with the timeout, as before. Here a module that outlasts the command's limit stands in."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from helpers import write_repo

from repair_agent.config import Settings
from repair_agent.errors import BadInput
from repair_agent.nodes.reproduce import reproduce
from repair_agent.runs import RunRecorder
from repair_agent.sandbox import LocalSandbox

REPO = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                          "def test_zero():\n    assert add(0, 0) == 0\n",
    "tests/test_hang.py": "import time\n\n\ndef test_hang():\n    time.sleep(120)\n",
}


@pytest.mark.parametrize("named", [["tests/test_calc.py::test_add"], []])
def test_a_suite_that_hangs_falls_back_to_the_named_tests_modules(tmp_path, named):
    repo = write_repo(tmp_path / "repo", REPO)
    sb = LocalSandbox(repo, python=sys.executable)
    logged: list[str] = []
    deps = SimpleNamespace(sandbox=sb, workdir=repo, log=logged.append, recorder=RunRecorder(tmp_path / "run", "r"),
                           settings=Settings(test_timeout_s=10, per_test_timeout_s=300, failing_tests=named))
    try:
        if not named:
            with pytest.raises(BadInput, match="timed out after 10s"):
                reproduce({"test_args": []}, deps)
            return
        out = reproduce({"test_args": []}, deps)
    finally:
        sb.close()
    assert out["test_args"] == ["tests/test_calc.py"] and out["failing"] == named
    assert sorted(c["id"] for c in out["tests_before"]["cases"]) == ["tests/test_calc.py::test_add",
                                                                     "tests/test_calc.py::test_zero"]
    assert logged[0] == ("warning: the test command timed out after 10s; the suite is now the failing tests' "
                         "own modules (tests/test_calc.py)")


def test_the_harness_verifies_a_fix_on_the_narrowed_suite_where_the_whole_one_hangs(tmp_path):
    """bench/solve.verify: the whole suite times out on the patched task too; the suite the run
    narrowed to is then what decides (without it, the fix could not be verified at all)."""
    import json

    from repair_agent.bench.datasets import load_repos
    from repair_agent.bench.solve import verify

    write_repo(tmp_path / "repo", REPO)
    data = tmp_path / "repos.jsonl"
    data.write_text(json.dumps({"task_id": "hangs", "repo": "repo", "test_command": "tests",
                                "failing_tests": ["tests/test_calc.py::test_add"]}) + "\n")
    (task,) = load_repos(data)
    patch = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n"
             "+    return a + b\n")
    settings = Settings(sandbox="local", test_timeout_s=10, per_test_timeout_s=300)
    assert verify(task, patch, tmp_path / "work", settings) is False
    assert verify(task, patch, tmp_path / "work", settings, narrowed=["tests/test_calc.py"]) is True
    wrong = patch.replace("+    return a + b", "+    return a * b")
    assert verify(task, wrong, tmp_path / "work", settings, narrowed=["tests/test_calc.py"]) is False
