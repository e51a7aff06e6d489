"""What a user is told: a failed candidate's reason says what the `-x` run measured, the closest
attempt is ranked when nothing fixes, and small exits (a broken pipe, an unknown sandbox, a test
path the repository lacks, no tests collected) each end with a clear line and code.

The sandbox here is a stand-in that returns prepared test runs, or `--sandbox local` on a tiny
fixture of our own: what is checked is the wording and the exits, not the isolation.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from repair_agent.config import Settings
from repair_agent.errors import BadInput
from repair_agent.fix import best_attempt, check_test_paths
from repair_agent.nodes.reproduce import reproduce
from repair_agent.checks import run_checks

CLI = [sys.executable, "-m", "repair_agent"]
FAILING = [f"tests/test_m.py::test_{c}" for c in "abcd"]


def run(*cases, returncode=1, output=""):
    return {"cases": [{"id": i, "outcome": o, "message": m, "details": ""} for i, o, m in cases],
            "returncode": returncode, "timed_out": False, "duration_s": 0.1, "output_tail": output}


class Box:
    """A sandbox stand-in: each run_tests call returns the next prepared run."""

    def __init__(self, *runs):
        self.runs = list(runs)

    def run_tests(self, args, **kw):
        return self.runs.pop(0)


def reason(target, failing=FAILING):
    deps = SimpleNamespace(sandbox=Box(target), settings=Settings())
    return run_checks({}, {"failing": failing, "test_args": []}, deps)["reason"]


def test_a_failed_candidate_says_where_the_x_run_stopped():
    a, b, c = FAILING[:3]
    assert reason(run((a, "failed", "assert 1 == 2"))) == \
        f"stopped at the first of 4 failing tests: {a} still fails"
    assert reason(run((a, "passed", ""), (b, "passed", ""), (c, "failed", ""))) == \
        f"2 of 4 failing tests pass, then {c} still fails (stopped there)"
    assert reason(run((a, "failed", "")), failing=[a]) == f"the failing test still fails: {a}"


def test_a_collection_error_says_the_failing_tests_did_not_run():
    why = reason(run(("tests/test_m.py::tests.test_m", "error", "collection failure"), returncode=4))
    assert why == "the failing tests did not run: tests/test_m.py::tests.test_m errored first (collection failure)"


def counts(passed, failed=0):
    return {"passed": passed, "failed": failed, "errors": 0, "skipped": 0, "failing": []}


def diff(*changed):
    return "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n" + "".join(f"{ln}\n" for ln in changed)


def candidate(index, status, failing_run, patch, suite=None):
    return {"round": 0, "index": index, "status": status, "reason": "r", "patch": patch,
            "tests": {"failing": failing_run, "suite": suite}}


def test_the_closest_attempt_passes_most_failing_tests_then_is_smallest():
    a, b = FAILING[:2]
    one = run((a, "passed", ""), (b, "failed", ""))
    search = {"source": "mutate", "file": "m.py", "line": 3, "note": "`<` -> `<=`", "status": "failed",
              "reason": "r", "patch": diff("-x", "+y"), "tests": {"failing": counts(1, 1)}}
    state = {"failing": FAILING, "attempt": search, "candidates": [
        candidate(0, "failed", run((a, "failed", "")), diff("-x", "+z")),  # no failing test passed
        candidate(1, "failed", one, diff("-x", "-w", "+y", "+v")),  # as far as the search's, but larger
    ]}
    assert best_attempt(state) == {**search, "failing_total": 4}
    two = run((a, "passed", ""), (b, "passed", ""), (FAILING[2], "failed", ""))
    state["candidates"].append(candidate(2, "failed", two, diff("-x", "-w", "+y", "+v")))
    best = best_attempt(state)
    assert (best["source"], best["index"], best["tests"]["failing"]["passed"]) == ("refine", 2, 2)
    assert best_attempt({"failing": FAILING, "attempt": None, "candidates": state["candidates"][:1]}) is None


def test_no_tests_collected_names_the_command_without_a_stray_space(tmp_path):
    deps = SimpleNamespace(sandbox=Box(run(returncode=5, output="\nno tests ran in 0.01s\n")), settings=Settings(),
                           recorder=SimpleNamespace(write=lambda *a, **k: None), workdir=tmp_path)
    with pytest.raises(BadInput) as bare:
        reproduce({"test_args": []}, deps)
    assert str(bare.value) == "no tests collected by pytest: no tests ran in 0.01s"
    deps.sandbox = Box(run(returncode=5, output="no tests ran in 0.01s\n"))
    with pytest.raises(BadInput) as with_args:
        reproduce({"test_args": ["-k", "slow"]}, deps)
    assert str(with_args.value) == "no tests collected by pytest -k slow: no tests ran in 0.01s"


def test_test_paths_are_checked_in_the_repository(make_repo):
    repo = make_repo("wrong_index")
    check_test_paths(repo, "tests/test_core.py::test_second -k 'second or first' -x")  # all there
    check_test_paths(repo, "--ignore tests/gone.py -o cache_dir=/no/such tests")  # values, not test paths
    with pytest.raises(BadInput, match="no such file or directory in the repository: tests/nope.py"):
        check_test_paths(repo, "-x tests/nope.py::test_a")


def fix(repo, runs_root, *args, **kw):
    return subprocess.run([*CLI, "fix", str(repo), "--run-dir", str(runs_root), "--strategies", "mutate", *args],
                          capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("args, message", [
    (["--sandbox", "foo"], "unknown sandbox 'foo'; use auto, docker or local"),
    (["--test", "tests/nope.py"],
     "no such file or directory in the repository: tests/nope.py (from the test arguments)"),
])
def test_bad_input_is_refused_before_a_run_directory_is_made(args, message, make_repo, runs_root):
    proc = fix(make_repo("wrong_index"), runs_root, *args)
    assert proc.returncode == 2, proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [f"error: {message}"]
    assert not runs_root.exists()


def scratch_trees(runs_root):
    return [p for p in runs_root.glob("*/scratch")]


def test_a_broken_pipe_exits_141_quietly_and_drops_the_scratch_tree(make_repo, runs_root):
    """`fix ... 2>&1 | head -1`: the reader goes after the first line, while the run goes on."""
    proc = subprocess.Popen([*CLI, "fix", str(make_repo("passing")), "--run-dir", str(runs_root), "--strategies",
                             "mutate", "--sandbox", "local"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    assert first.startswith(b"run ")
    assert [p.name for p in runs_root.glob("*/run.json")] == ["run.json"]  # the record stays
    assert scratch_trees(runs_root) == []


def test_a_broken_pipe_on_the_result_exits_141(make_repo, runs_root):
    """`fix ... | head -0`: the run ends (its tree goes as always), then the result cannot be printed."""
    proc = subprocess.Popen([*CLI, "fix", str(make_repo("passing")), "--run-dir", str(runs_root), "--strategies",
                             "mutate", "--sandbox", "local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "error" not in err.lower() and "Traceback" not in err
    assert [p.name for p in runs_root.glob("*/result.json")] == ["result.json"]
    assert scratch_trees(runs_root) == []
