"""The mutants as localization evidence (search/schedule.py): the real mutants of a small module, each
executed; the check stands in for the test run (it calls the function the failing test asserts on and
builds the record the search's check gives: status, and the failing test's outcome and message)."""

from __future__ import annotations

from repair_agent.policy import Budget
from repair_agent.search import SearchContext
from repair_agent.search.schedule import by_evidence, failure_signature, run_search

SOURCE = """\
def area(w, h):
    spare = w - h
    return w * h + 1
"""
TEST = "tests/test_shape.py::test_area"


def run_area(text: str) -> dict:
    """The failing test `assert area(2, 3) == 6` on the mutated module, as a check record."""
    scope: dict = {}
    try:
        exec(compile(text, "shape.py", "exec"), scope)
        got = scope["area"](2, 3)
        message = "" if got == 6 else f"AssertionError: assert {got!r} == 6"
    except Exception as exc:  # noqa: BLE001 - a mutant that crashes fails differently
        message = f"{type(exc).__name__}: {exc}"
    case = {"id": TEST, "outcome": "failed" if message else "passed", "message": message}
    return {"status": "failed" if message else "fixed", "tests": {"failing": {"cases": [case], "timed_out": False}}}


def test_a_line_whose_mutants_change_the_failure_rises_and_one_whose_mutants_leave_it_sinks(tmp_path):
    (tmp_path / "shape.py").write_text(SOURCE)
    assert failure_signature(run_area(SOURCE)) == f"{TEST} failed: AssertionError: assert 7 == 6"
    spare, result, unseen = ({"file": "shape.py", "function": "area", "line": n, "score": 1.0} for n in (2, 3, 9))
    out = run_search([("mutate", [spare, result])], SearchContext(root=tmp_path, settings=None),
                     lambda edit: run_area(edit["text"]), Budget(plausible=100))
    untouched = failure_signature(run_area(SOURCE))
    at_spare, at_result = out.evidence[("shape.py", 2)], out.evidence[("shape.py", 3)]
    share = {n: sum(s != untouched for s in sigs) / len(sigs) for n, sigs in ((2, at_spare), (3, at_result))}
    assert share[3] > share[2]  # the returned value moves with its mutants; `spare` feeds nothing
    assert by_evidence([spare, result], {}) == [spare, result]  # no evidence: the order given
    assert by_evidence([spare, unseen, result], out.evidence) == [result, spare, unseen] if share[2] else \
        [result, unseen, spare]
    # a line whose every mutant left the failure as it was sinks below a line without mutants
    only_untouched = {("shape.py", 2): [untouched] * 3, ("shape.py", 3): [untouched, "passed"]}
    assert by_evidence([spare, unseen, result], only_untouched) == [result, unseen, spare]


def test_a_later_source_visits_its_first_lines_in_the_evidence_order(tmp_path, monkeypatch):
    """How infill gets its lines (nodes/search.py): the first N of the lines mutate visited, in the
    mutants' order. `spare` is ranked first, but only `result`'s mutants move the failure, so a
    source that takes one line takes `result`. A recording source stands in for the model."""
    from repair_agent.search import schedule

    (tmp_path / "shape.py").write_text(SOURCE)
    spare, result = ({"file": "shape.py", "function": "area", "line": n, "score": 1.0} for n in (2, 3))
    visited, real_source = [], schedule.source

    def source(name):
        return (lambda loc, ctx: visited.append(loc["line"]) or iter(())) if name == "recording" else real_source(name)

    monkeypatch.setattr(schedule, "source", source)
    never_fixed = lambda edit: {**run_area(edit["text"]), "status": "failed"}  # noqa: E731 - the search goes on
    run_search([("recording", [spare, result], 1)], SearchContext(root=tmp_path, settings=None), never_fixed, Budget())
    assert visited == [2]  # no evidence yet: the ranked order
    visited.clear()
    run_search([("mutate", [spare, result]), ("recording", [spare, result], 1)],
               SearchContext(root=tmp_path, settings=None), never_fixed, Budget(plausible=100))
    assert visited == [3]
