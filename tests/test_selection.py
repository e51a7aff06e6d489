"""Test selection in validation: after the failing tests, the passing tests whose coverage (from
localization's SBFL run) touches a changed line run before the full suite, in a real Docker
sandbox. A candidate that breaks one of them is rejected there without the full suite."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import git

from repair_agent import patching
from repair_agent.config import Settings
from repair_agent.nodes.localize import localize
from repair_agent.checks import changed_lines, run_checks
from repair_agent.runs import RunRecorder
from repair_agent.sandbox import DockerSandbox
from repair_agent.outcomes import failing_ids

CLAMP = '''\
def clamp(x, lo, hi):
    if x < lo:
        return lo
    return x if x < hi else lo


def double(x):
    return 2 * x
'''
TESTS = {
    "tests/test_clamp.py": """\
        from calc import clamp


        def test_high():
            assert clamp(5, 0, 3) == 3


        def test_low():
            assert clamp(-1, 0, 3) == 0


        def test_mid():
            assert clamp(2, 0, 3) == 2
        """,
    "tests/test_double.py": """\
        from calc import double


        def test_double_one():
            assert double(1) == 2


        def test_double_two():
            assert double(2) == 4
        """,
}
MID = "tests/test_clamp.py::test_mid"  # the only passing test that runs line 4


def clamp_repo(root: Path) -> Path:
    root.mkdir()
    (root / "calc.py").write_text(CLAMP)
    for rel, text in TESTS.items():
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


class Counted:
    """The real sandbox, with the arguments of every test run written down."""

    def __init__(self, sandbox):
        self.sandbox, self.runs = sandbox, []

    def run_tests(self, args, **kw):
        self.runs.append(list(args))
        return self.sandbox.run_tests(args, **kw)

    def __getattr__(self, name):
        return getattr(self.sandbox, name)


def line4(text: str) -> dict:
    return {"calc.py": CLAMP.replace("    return x if x < hi else lo\n", f"    {text}\n")}


@pytest.mark.docker
def test_a_candidate_that_breaks_a_covering_test_never_runs_the_suite(tmp_path, docker_ready):
    repo = clamp_repo(tmp_path / "repo")
    sb = DockerSandbox(repo, log=lambda m: None)
    try:
        box = Counted(sb)
        deps = SimpleNamespace(sandbox=box, workdir=repo, settings=Settings(), log=lambda m: None,
                               recorder=RunRecorder(tmp_path / "run", "r"))
        before = sb.run_tests([])
        state = {"test_args": [], "tests_before": before, "failing": failing_ids(before)}
        assert state["failing"] == ["tests/test_clamp.py::test_high"]
        state.update(localize(state, deps))
        assert state["covers"] and MID in state["covers"]["tests"]

        box.runs.clear()  # passes test_high, breaks test_mid, which runs the changed line
        bad = run_checks({}, state, deps, line4("return hi"))
        assert (bad["status"], bad["stage"]) == ("passed_failing", "covering"), bad["reason"]
        # the broken test once more (it passed before: noise?), then on the original code (it passes:
        # the patch broke it), then no full suite
        assert box.runs == [["-x", *state["failing"]], ["-x", MID], [MID], [MID]]
        assert bad["tests"]["suite"] is None and bad["reason"].startswith(f"breaks {MID}, also on a rerun (of the ")
        assert [c["id"] for c in bad["tests"]["covering_rerun"]["cases"]] == [MID]

        box.runs.clear()  # the fix: the covering test passes, then the full suite has the last word
        good = run_checks({}, state, deps, line4("return x if x < hi else hi"))
        assert (good["status"], good["stage"]) == ("fixed", "suite"), good["reason"]
        assert box.runs == [["-x", *state["failing"]], ["-x", MID], []]
        assert len(good["tests"]["suite"]["cases"]) == 5

        box.runs.clear()  # no coverage map (SBFL off): today's two runs
        plain = run_checks({}, {**state, "covers": None}, deps, line4("return hi"))
        assert (plain["status"], plain["stage"]) == ("passed_failing", "suite")
        assert box.runs == [["-x", *state["failing"]], [], [MID], [MID]]
    finally:
        sb.close()


def test_changed_lines_of_a_real_git_diff(tmp_path):
    repo = clamp_repo(tmp_path / "repo")
    lines = CLAMP.splitlines(True)
    lines[3] = "    return x if x < hi else hi\n"  # line 4 replaced
    lines.insert(7, "    x = int(x)\n")  # a new line between lines 7 and 8
    del lines[1]  # line 2 removed
    (repo / "calc.py").write_text("".join(lines))
    patch = patching.current_diff(repo)
    patching.reset(repo)
    assert changed_lines(patch) == {"calc.py": {2, 4, 7, 8}}


# A test that passes before any patch and fails now and then by noise (issue 33: tqdm's timing tests on
# a loaded machine), made deterministic: it fails on every second run in this container. Its count
# lives in /dev/shm, which the sandbox does not empty between runs (it empties /tmp).
TIMING = "tests/test_timing.py::test_timing"


def counting_test(count: str, name: str, check: str) -> str:
    """A test module whose test counts its runs in /dev/shm/<count> and asserts `check` on the count n."""
    return (f'import os\n\nCOUNT = "/dev/shm/{count}"\n\n\ndef {name}():\n'
            "    n = int(open(COUNT).read()) + 1 if os.path.exists(COUNT) else 1\n"
            '    with open(COUNT, "w") as f:\n        f.write(str(n))\n'
            f"    assert {check}\n")


TIMING_TEST = counting_test("test-timing-runs", "test_timing", 'n % 2, f"run {n}: too slow"')
DOUBLES = ["tests/test_double.py::test_double_one", "tests/test_double.py::test_double_two"]


def noisy_clamp(tmp_path, name: str, text: str):
    """The clamp repository with one more test module committed, its sandbox (counted), and the state
    after a first run of its tests (the noisy test's run 1: it passes)."""
    repo = clamp_repo(tmp_path / "repo")
    (repo / "tests" / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"add {name}")
    sb = DockerSandbox(repo, log=lambda m: None)
    box = Counted(sb)
    before = sb.run_tests([])
    return sb, box, SimpleNamespace(sandbox=box, workdir=repo, settings=Settings(), log=lambda m: None), \
        {"test_args": [], "tests_before": before, "failing": failing_ids(before), "covers": None}


@pytest.mark.docker
def test_a_test_that_fails_once_by_noise_is_run_again_before_it_rejects_a_fix(tmp_path, docker_ready):
    fixed = CLAMP.replace("    return x if x < hi else lo\n", "    return x if x < hi else hi\n")
    sb, box, deps, state = noisy_clamp(tmp_path, "test_timing.py", TIMING_TEST)
    try:
        assert state["failing"] == ["tests/test_clamp.py::test_high"]

        # the fix: the timing test fails in the suite (run 2), passes on its rerun (run 3): fixed, and said
        good = run_checks({}, state, deps, {"calc.py": fixed})
        assert (good["status"], good["stage"]) == ("fixed", "suite"), good["reason"]
        assert box.runs == [["-x", *state["failing"]], [], [TIMING]]  # only the newly failing test, once
        assert good["reason"] == f"the full suite passes; flaky, passed on a rerun or failed on the original code too: {TIMING}"
        assert good["flaky"] == [TIMING]
        assert [(c["id"], c["outcome"]) for c in good["tests"]["suite_rerun"]["cases"]] == [(TIMING, "passed")]
        assert TIMING in failing_ids(good["tests"]["suite"])

        # a fix that breaks double(): its two tests fail again on the rerun and reject it; the timing test
        # (run 4 fails, run 5 passes) does not count against it
        box.runs.clear()
        bad = run_checks({}, state, deps, {"calc.py": fixed.replace("2 * x", "3 * x")})
        assert (bad["status"], bad["stage"]) == ("passed_failing", "suite"), bad["reason"]
        assert box.runs == [["-x", *state["failing"]], [], [*DOUBLES, TIMING], DOUBLES]  # then on the original
        assert bad["reason"] == (f"breaks 2 test(s): {', '.join(DOUBLES)}, also on a rerun; "
                                 f"flaky, passed on a rerun or failed on the original code too: {TIMING}")
        assert failing_ids(bad["tests"]["suite_rerun"]) == DOUBLES
        assert failing_ids(bad["tests"]["suite_original"]) == []  # double() works on the original code
    finally:
        sb.close()


# A test that passed before the patch and now fails every time, on any code (tqdm's overhead tests once
# the machine is at load 5): the first run passes, every later one fails.
BUSY = "tests/test_busy.py::test_overhead"
BUSY_TEST = counting_test("test-busy-runs", "test_overhead", 'n == 1, f"run {n}: the machine is busy now"')


@pytest.mark.docker
def test_a_test_that_fails_on_the_original_code_too_now_does_not_reject_a_fix(tmp_path, docker_ready):
    fixed = CLAMP.replace("    return x if x < hi else lo\n", "    return x if x < hi else hi\n")
    sb, box, deps, state = noisy_clamp(tmp_path, "test_busy.py", BUSY_TEST)
    try:
        good = run_checks({}, state, deps, {"calc.py": fixed})
        assert (good["status"], good["stage"]) == ("fixed", "suite"), good["reason"]
        assert box.runs == [["-x", *state["failing"]], [], [BUSY], [BUSY]]  # the suite, the rerun, the original
        assert failing_ids(good["tests"]["suite_rerun"]) == failing_ids(good["tests"]["suite_original"]) == [BUSY]
        assert good["flaky"] == [BUSY]
        assert good["reason"].endswith(f"flaky, passed on a rerun or failed on the original code too: {BUSY}")
    finally:
        sb.close()


# A test that skips itself now and then (tqdm's timing tests: "cpu time not accurate" on a loaded
# machine): it runs, except on its second run. And one that a patch can make skip: calc.SLOW.
SKIPPY = "tests/test_skippy.py::test_timing"
SKIPPY_TEST = counting_test("test-skippy-runs", "test_timing", "True").replace(
    "    assert True\n", '    if n == 2:\n        import pytest\n        pytest.skip("cpu time not accurate")\n')
SKIPPED_BY_PATCH = "tests/test_skippy.py::test_fast"
FAST_TEST = ("\n\ndef test_fast():\n    import calc\n    import pytest\n\n"
             "    if getattr(calc, 'SLOW', False):\n        pytest.skip('slow')\n    assert calc.double(2) == 4\n")


@pytest.mark.docker
def test_a_test_that_skips_once_by_noise_does_not_reject_a_fix_but_one_the_patch_skips_does(tmp_path, docker_ready):
    fixed = CLAMP.replace("    return x if x < hi else lo\n", "    return x if x < hi else hi\n")
    sb, box, deps, state = noisy_clamp(tmp_path, "test_skippy.py", SKIPPY_TEST + FAST_TEST)
    try:
        # the suite (run 2) skips the timing test; its rerun (run 3) runs it: fixed, and said
        good = run_checks({}, state, deps, {"calc.py": fixed})
        assert (good["status"], good["stage"]) == ("fixed", "suite"), good["reason"]
        assert box.runs == [["-x", *state["failing"]], [], [SKIPPY]]
        assert good["flaky"] == [SKIPPY] and good["reason"].endswith(SKIPPY)
        assert [(c["id"], c["outcome"]) for c in good["tests"]["unran_rerun"]["cases"]] == [(SKIPPY, "passed")]

        # the same fix with calc.SLOW: test_fast skips in the suite, on its rerun, and runs on the original
        box.runs.clear()
        bad = run_checks({}, state, deps, {"calc.py": fixed + "\nSLOW = True\n"})
        assert (bad["status"], bad["stage"]) == ("passed_failing", "suite"), bad["reason"]
        assert bad["reason"].startswith("fewer tests ran (")
        assert box.runs == [["-x", *state["failing"]], [], [SKIPPED_BY_PATCH], [SKIPPED_BY_PATCH]]
        assert [c["outcome"] for c in bad["tests"]["unran_original"]["cases"]] == ["passed"]
    finally:
        sb.close()
