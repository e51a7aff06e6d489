"""Monologue claims checked against a real execution trace."""

from __future__ import annotations

import sys
import textwrap

import pytest

from repair_agent.faithfulness import check_monologue, parse_claims, simulation_section
from repair_agent.sandbox import LocalSandbox
from repair_agent.tracing import trace_test

SEARCH = """\
def find(arr, x):
    start, end = 0, len(arr) - 1
    while start <= end:
        middle = (start + end) // 2
        if arr[middle] == x:
            return middle
        elif arr[middle] < x:
            start = middle
        else:
            end = middle - 1
    return -1
"""
TEST = """\
from algo import find


def test_find():
    assert find([1, 3, 5, 7, 9], 7) == 3
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("faith_repo")
    (root / "algo.py").write_text(SEARCH)
    (root / "tests").mkdir()
    (root / "tests" / "test_algo.py").write_text(TEST)
    return root


@pytest.fixture(scope="module")
def steps(repo):
    sb = LocalSandbox(repo, python=sys.executable)
    try:
        return trace_test(sb, "tests/test_algo.py::test_find", [("algo.py", "find")])
    finally:
        sb.close()


def monologue(simulation: str) -> str:
    return ("[MONOLOGUE]\n### Understanding the Function\nBinary search; `x = 99` is not a claim here.\n"
            "### Execution Simulation\n" + textwrap.dedent(simulation) +
            "\n### Root Cause Analysis\n`start = middle` can loop forever; `middle = 100`.\n[/MONOLOGUE]")


def test_matching_monologue_is_not_contradicted(steps, repo):
    text = monologue("""\
        1. `find([1, 3, 5, 7, 9], 7)`: at line 2, `start = 0` and `end = 4`.
        2. Line 4: `middle = (0 + 4) // 2 = 2`. The condition `arr[middle] == x` is False (5 != 7).
        3. The condition `arr[middle] < x` is True, so at line 8 `start` becomes 2.
        4. Line 4 again: `middle = (2 + 4) // 2 = 3`, and `arr[3] == 7`, so the function returns 3.
        """)
    r = check_monologue(text, steps, repo)
    assert r["checked"] >= 6 and r["contradicted"] == 0 and r["score"] == 1.0
    assert r["contradictions"] == []
    kinds = {i["kind"] for i in r["items"]}
    assert {"value", "condition", "returns"} <= kinds


def test_one_false_claim_is_contradicted(steps, repo):
    text = monologue("""\
        1. At line 2, `start = 0` and `end = 4`.
        2. Line 4: `middle = (0 + 4) // 2 = 2`; `arr[middle] < x` is True so `start = 2` at line 8.
        3. Line 4: `middle = 4`. The function returns 3.
        """)
    r = check_monologue(text, steps, repo)
    assert r["contradicted"] == 1
    assert r["contradictions"] == ["you said `middle = 4` at line 4; it was 2, 3"]
    assert r["score"] == pytest.approx(1 - 1 / r["checked"], abs=1e-3)


def test_false_condition_return_and_failure_line(steps):
    text = monologue("""\
        - The condition `start <= end` is False at line 3, so the loop never runs.
        - The function returns -1.
        """)
    r = check_monologue(text, steps)
    assert r["checked"] == 2 and r["contradicted"] == 2 and r["score"] == 0.0
    assert "you said `start <= end` is False at line 3; it was True" in r["contradictions"]
    assert "you said it returns -1; it returned 3" in r["contradictions"]


def test_nothing_checkable_scores_none(steps):
    r = check_monologue(monologue("The code looks at the list and `total = 5` somewhere."), steps)
    assert r["claims"] == 1 and r["checked"] == 0 and r["score"] is None


def test_claims_on_compressed_loops_or_partial_traces_are_not_accused():
    steps = [
        {"file": "m.py", "line": 1, "event": "call", "function": "f", "depth": 1, "locals": {"n": "9"}},
        {"file": "m.py", "line": 3, "event": "line", "function": "f", "depth": 1, "locals": {"i": "0"}},
        {"file": "m.py", "line": 3, "event": "loop", "function": "f", "depth": 1, "locals": {}, "skipped": 7},
        {"file": "m.py", "line": 3, "event": "line", "function": "f", "depth": 1, "locals": {"i": "8"}},
        {"file": "m.py", "line": 5, "event": "exception", "function": "f", "depth": 1, "locals": {},
         "exception": "IndexError('list index out of range')"},
        {"file": "", "line": 0, "event": "timeout", "locals": {}},
    ]
    r = check_monologue(monologue("`i = 4` at line 3. It fails at line 5. `n = 10`."), steps)
    verdicts = {i["text"]: i["verdict"] for i in r["items"]}
    assert verdicts["`i = 4`"] == "unchecked"
    assert verdicts["fails at line 5"] == "ok"
    assert verdicts["`n = 10`"] == "unchecked"  # the trace was cut short: n may change later
    r2 = check_monologue(monologue("It raises an error at line 4."), steps[:-1])
    assert r2["contradicted"] == 1 and "raised at line 5" in r2["contradictions"][0]


def test_parse_claims_forms():
    text = ("### Execution Simulation\n"
            "- Line 6: `mid = (lo + hi) // 2 = 2`, then hi is 4 and `lo` is set to `3`.\n"
            "- x = 1.5. The result returns `xs[1]`, which is 2.\n"
            "```python\nfor y = 7 in code blocks\n```\n")
    claims = parse_claims(text)
    got = [(c["kind"], c.get("name"), c.get("value"), c["line"]) for c in claims]
    assert ("value", "mid", "2", 6) in got and ("value", "hi", "4", 6) in got
    assert ("value", "lo", "3", 6) in got and ("value", "x", "1.5", None) in got
    assert ("returns", None, "2", None) in got
    assert not any(c.get("name") == "y" for c in claims)
    body, found = simulation_section("no sections at all: `a = 1`")
    assert not found and "a = 1" in body


def test_values_cut_by_reprlib_are_judged_by_their_prefix():
    steps = [{"file": "m.py", "line": 2, "event": "line", "function": "f", "depth": 1,
              "locals": {"xs": "[0, 1, 2, 3, 4, 5, 6, 7, ...]"}}]
    r = check_monologue(monologue("`xs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]` at line 2. `xs = [5, 6]`."), steps)
    verdicts = [i["verdict"] for i in r["items"]]
    assert verdicts == ["ok", "unchecked"] and r["score"] == 1.0
