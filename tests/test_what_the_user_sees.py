"""What a user is told: a failed candidate's reason says what the `-x` run measured.

The sandbox here is a stand-in that returns prepared test runs: what is checked is the wording.
"""

from __future__ import annotations

from types import SimpleNamespace

from repair_agent.config import Settings
from repair_agent.nodes.validate import run_checks

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
