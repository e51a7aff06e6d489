"""The evidence of a fix (evidence.py), read from real traces of the failing test before and after
it in the Docker sandbox, and an explanation's words checked against them (faithfulness.py)."""

from __future__ import annotations

import difflib
import textwrap

import pytest

from repair_agent import evidence
from repair_agent.faithfulness import check_explanation
from repair_agent.prompting import prompt_chunks
from repair_agent.tracing import trace_test

CORE = """\
def second(items):
    return items[2]


def last(xs):
    i = len(xs)
    return xs[i]


def steps_to_zero(n):
    steps = 0
    while n != 0:
        n -= 2
        steps += 1
    return steps
"""
TESTS = """\
from calc.core import last, second, steps_to_zero


def test_second():
    assert second([4, 5, 6]) == 5


def test_last():
    assert last([1, 2, 3]) == 3


def test_steps():
    assert steps_to_zero(5) == 3
"""
FIXES = {  # test -> (function, the buggy text, the fixed text)
    "test_second": ("second", "return items[2]", "return items[1]"),
    "test_last": ("last", "return xs[i]", "return xs[i - 1]"),
    "test_steps": ("steps_to_zero", "while n != 0:", "while n > 0:"),
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, docker_ready):
    from repair_agent.sandbox import DockerSandbox

    root = tmp_path_factory.mktemp("evidence_repo")
    (root / "calc").mkdir()
    (root / "calc" / "__init__.py").write_text("")
    (root / "calc" / "core.py").write_text(CORE)
    (root / "tests").mkdir()
    (root / "tests" / "test_core.py").write_text(TESTS)
    sb = DockerSandbox(root, log=lambda *a: None)
    yield root, sb
    sb.close()


def traced(sandbox, test: str) -> tuple[list, list, str]:
    """The test traced through the buggy code and through the fixed code, and the fix's diff."""
    root, sb = sandbox
    function, old, new = FIXES[test]
    node, target = f"tests/test_core.py::{test}", [("calc/core.py", function)]
    before = trace_test(sb, node, target, timeout=3)
    fixed = CORE.replace(old, new)
    (root / "calc" / "core.py").write_text(fixed)
    try:
        after = trace_test(sb, node, target, timeout=3)
    finally:
        (root / "calc" / "core.py").write_text(CORE)
    patch = "".join(difflib.unified_diff(CORE.splitlines(True), fixed.splitlines(True), "a/calc/core.py",
                                         "b/calc/core.py"))
    return before, after, patch


def test_the_evidence_of_an_assertion_failure(sandbox):
    ev = evidence.build(*traced(sandbox, "test_second"))
    assert (ev["file"], ev["line"]) == ("calc/core.py", 2)
    assert (ev["changed_before"], ev["changed_after"]) == ("items[2]", "items[1]")
    assert ev["input"] == "second(items=[4, 5, 6])"
    assert (ev["computed_before"], ev["computed_after"]) == ("returned 6", "returned 5")
    assert (ev["outcome_before"], ev["outcome_after"]) == ("failed", "passed")
    assert "assert 6 == 5" in ev["test_message"] and ev["expected"] == "5"
    text = evidence.text(ev)
    assert "input: second(items=[4, 5, 6])" in text and "expected: 5" in text
    assert evidence.sentence(ev).startswith("`items[2]` at calc/core.py:2 was wrong: for second(items=[4, 5, 6]), "
                                            "the line returned 6; with `items[1]`, the line returned 5")


def test_the_evidence_of_an_exception(sandbox):
    ev = evidence.build(*traced(sandbox, "test_last"))
    assert ev["line"] == 7 and ev["input"] == "last(xs=[1, 2, 3])"
    assert ev["computed_before"] == "raised IndexError('list index out of range')"
    assert ev["computed_after"] == "returned 3" and ev["outcome_after"] == "passed"
    assert ev["test_message"] == "IndexError: list index out of range" and ev["expected"] == ""


def test_the_evidence_of_a_hang(sandbox):
    ev = evidence.build(*traced(sandbox, "test_steps"))
    assert ev["outcome_before"] == "did not finish (timed out)" and ev["result_before"] == ""
    # the condition, evaluated on the traced locals each time the loop came back to it
    assert ev["computed_before"].startswith("evaluated `n != 0` to True, True, True, True (and ran ")
    assert ev["computed_after"] == "evaluated `n > 0` to True, True, True, False"
    assert ev["result_after"] == "returned 3" and ev["outcome_after"] == "passed"
    assert "the test never finished" in evidence.sentence(ev)


def check(sandbox, test: str, text: str) -> dict:
    before, after, patch = traced(sandbox, test)
    ev = evidence.build(before, after, patch)
    cause = text.split("### Root Cause Analysis")[-1].strip()
    return check_explanation(text, cause, before, after, None, CORE + TESTS + patch,
                             [ev["changed_before"], ev["changed_after"]], prompt_chunks("explain_fix.j2"))


def test_a_true_explanation_passes_its_check(sandbox):
    result = check(sandbox, "test_second", "### Execution Simulation\n`second([4, 5, 6])` returns 6.\n\n"
                   "### Root Cause Analysis\n`items[2]` reads the third element; `items[1]` returns 5.")
    assert result["problems"] == [] and result["contradicted"] == 0 and result["names_change"]
    assert result["checked"] >= 3 and result["score"] == 1.0


def test_a_contradicted_claim_and_an_alien_name_are_caught_on_real_traces(sandbox):
    result = check(sandbox, "test_second", "### Execution Simulation\n`second([4, 5, 6])` returns 4.\n\n"
                   "### Root Cause Analysis\nThe fix should use `operator.itemgetter(1)` instead.")
    assert result["alien"] == ["itemgetter", "operator"]  # in neither the program, its test nor the fix
    assert any("returns 4" in p and "6" in p for p in result["problems"])
    assert "`operator` exists in neither the program nor the fix" in result["problems"]
    assert not result["names_change"] and result["score"] < 1



def test_a_false_claim_made_twice_is_one_problem(sandbox):
    """The root cause is checked within the whole answer and on its own: the model is told once."""
    claim = "`second([4, 5, 6])` returns 4."
    result = check(sandbox, "test_second", f"### Execution Simulation\n{claim}\n\n### Root Cause Analysis\n{claim}")
    assert len([p for p in result["problems"] if "returns 4" in p]) == 1

@pytest.mark.parametrize("echoed", [
    # the template's instruction, handed back with the changed expression filled in
    "Under Root Cause Analysis, say in your own words why `items[2]` was wrong and what the fix computes instead.",
    "(one or two sentences)",  # a template's placeholder, as 5 of 37 root causes once were
])
def test_an_echo_of_the_prompt_is_caught(echoed):
    chunks = prompt_chunks("explain_fix.j2")
    result = check_explanation(f"### Root Cause Analysis\n{echoed}", echoed, [], [], None, CORE,
                               ["items[2]", "items[1]"], chunks)
    assert result["echo"] and any("repeated the prompt's words" in p for p in result["problems"])
    assert result["contradicted"] == 1 and result["score"] < 1


@pytest.mark.parametrize("cause, problems", [
    # vague, not false: asked again (6 of 32 kept causes once never named the change), no contradiction
    ("The function returns the wrong element of the list.", ["the root cause does not name the changed code `items[2]`"]),
    ("", ["the answer gives no root cause"]),
])
def test_a_root_cause_that_does_not_name_the_change_is_asked_again_not_contradicted(cause, problems):
    result = check_explanation(f"### Root Cause Analysis\n{cause}", cause, [], [], None, CORE,
                               ["items[2]", "items[1]"], prompt_chunks("explain_fix.j2"))
    assert result["problems"] == problems and not result["names_change"]
    assert result["contradicted"] == 0 and result["contradictions"] == [] and result["score"] == 1.0


@pytest.mark.parametrize("text, cut, cause", [
    ("### Root Cause Analysis\n`items[2]` reads the third element. The fix reads the sec", True,
     "`items[2]` reads the third element."),
    ("### Root Cause Analysis\n`items[2]` reads the third element. The fix reads the sec", False,
     "`items[2]` reads the third element. The fix reads the sec"),
    ("### Root Cause Analysis\n`items[2]` reads the third", True, "`items[2]` reads the third"),  # nothing whole
])
def test_a_root_cause_cut_by_the_token_cap_ends_at_its_last_whole_sentence(text, cut, cause):
    from repair_agent.nodes.explain_fix import root_cause_of

    assert root_cause_of(text, cut=cut) == cause


def test_a_file_name_in_prose_is_not_a_call():
    from repair_agent.faithfulness import alien_names

    assert alien_names("In calc/core.py (line 2) `items[2]` is read; math.floor(x) is not used.", CORE) == \
        ["math", "floor"]


@pytest.mark.parametrize("old, new, expected", [
    ("    return gcd(a % b, b)", "    return gcd(b, a % b)", ("gcd(a % b, b)", "gcd(b, a % b)")),
    ("    return items[2]", "    return items[1]", ("items[2]", "items[1]")),
    ("        if x < y:", "        if x <= y:", ("x < y", "x <= y")),
    ("    elif n > 0:", "    elif n >= 0:", ("n > 0", "n >= 0")),
    ("    while True:", "    while hare:", ("while True", "while hare")),
    (None, "    i += 1", ("", "i += 1")),
])
def test_the_changed_expression_is_the_smallest_that_holds_the_difference(old, new, expected):
    assert evidence.changed_expression(old, new) == expected


def test_edited_lines_pair_what_a_diff_removes_and_adds():
    patch = textwrap.dedent("""\
        --- a/m.py
        +++ b/m.py
        @@ -3,3 +3,4 @@ def f():
             a = 1
        -    return a
        +    a += 1
        +    return a + 1
             # end
        """)
    assert evidence.edited_lines(patch) == [
        {"file": "m.py", "old_line": 4, "old": "    return a", "new_line": 4, "new": "    a += 1"},
        {"file": "m.py", "old_line": 5, "old": None, "new_line": 5, "new": "    return a + 1"}]


# -- where the evidence and the check are shown: the PR body, the bench summary ---------------------
EVIDENCE = {"text": "changed line calc.py:2: `return a - b` -> `return a + b`\ninput: add(a=2, b=3)"}
CHECKED = {"attempts": 2, "replaced": True, "problems": [["`math` exists in neither the program nor the fix"]] * 2,
           "names_change": True, "check": {"checked": 4, "contradicted": 1, "score": 0.75, "alien": ["math"],
                                           "echo": []}}


def test_the_pr_body_shows_the_evidence_and_how_the_explanation_fared():
    from repair_agent.ci.pr_text import pr_body

    result = {"status": "fixed", "patch": "", "root_cause": "`a - b` at calc.py:2 was wrong.",
              "tests_before": {"passed": 0, "failed": 1, "errors": 0, "skipped": 0, "failing": ["t.py::test_add"]},
              "tests_after": {"passed": 1, "failed": 0, "errors": 0, "skipped": 0, "failing": []},
              "tokens": {"prompt": 1, "completion": 1}, "run_id": "r", "model": "m",
              "evidence": EVIDENCE, "explanation": CHECKED}
    body = pr_body(result, "abc", "main")
    cause = body.split("### Root cause")[1]
    assert "```text\nchanged line calc.py:2: `return a - b` -> `return a + b`\ninput: add(a=2, b=3)\n```" in cause
    assert "4 claim(s), 1 false (faithfulness 0.75); set aside" in cause
    assert "Evidence" not in pr_body({**result, "evidence": None, "explanation": None}, "abc", "main")


def test_the_bench_summary_counts_evidence_and_checked_explanations():
    from repair_agent.bench.summary import explanations

    fixed = {"status": "fixed", "verified": True, "fixed_round": 0}
    records = [{**fixed, "evidence": EVIDENCE, "explanation": CHECKED},
               {**fixed, "evidence": EVIDENCE, "explanation": {**CHECKED, "replaced": False, "names_change": False,
                                                               "check": {**CHECKED["check"], "alien": []}}},
               {**fixed},  # a fix from an older run: neither
               {"status": "not_fixed", "verified": False, "evidence": EVIDENCE}]
    assert explanations(records) == {"fixes_with_evidence": 2, "fixes_explained_checked": 2,
                                     "root_causes_naming_the_change": 1, "explanations_set_aside": 1,
                                     "answers_with_alien_names": 1, "answers_echoing_the_prompt": 0}


@pytest.mark.parametrize("message, alien", [
    ("AttributeError: 'NoneType' object has no attribute 'successor'", []),  # shown in the prompt: known
    ("assert 6 == 5", ["NoneType"]),
])
def test_a_name_from_the_failure_the_prompt_showed_is_not_alien(message, alien, tmp_path):
    from types import SimpleNamespace

    from repair_agent.nodes.explain_fix import known_code

    (tmp_path / "calc").mkdir()
    (tmp_path / "calc" / "core.py").write_text(CORE)
    state = {"context": CORE, "failing": ["tests/test_core.py::test_second"],
             "tests_before": {"cases": [{"id": "tests/test_core.py::test_second", "message": message}]}}
    best = {"file": "calc/core.py", "evidence": {"text": "changed line calc/core.py:2"}}
    known = known_code(state, SimpleNamespace(workdir=tmp_path), best, "", [])
    cause = "`items[2]` is None here, so reading it raises on a `NoneType` value."
    result = check_explanation(f"### Root Cause Analysis\n{cause}", cause, [], [], None, known,
                               ["items[2]", "items[1]"], prompt_chunks("explain_fix.j2"))
    assert result["alien"] == alien
