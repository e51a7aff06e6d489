"""Execution traces of one test through target functions: values, bounds, partial traces, text."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from repair_agent.sandbox import LocalSandbox
from repair_agent.tracing import around, parse_trace, trace_test, trace_text

FILES = {
    "algo/__init__.py": "",
    "algo/search.py": """\
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


        def fact(n):
            if n <= 1:
                return 1
            return n * fact(n - 1)


        def forever(x):
            while True:
                x = (x + 1) % 7


        def spin(n):
            total = 0
            for i in range(n):
                total += i
            return total


        def deep(n):
            return deep(n + 1)


        def parse(text):
            value = int(text)
            return value


        def find_nested(arr, x):
            def binsearch(start, end):
                if start == end:
                    return -1
                mid = start + (end - start) // 2
                if x < arr[mid]:
                    return binsearch(start, mid)
                elif x > arr[mid]:
                    return binsearch(mid, end)
                return mid

            return binsearch(0, len(arr))


        def multiples(items, k):
            kept = [v for v in items if v % k == 0]
            return kept
        """,
    "tests/test_search.py": """\
        from algo.search import deep, fact, find, find_nested, forever, multiples, parse, spin


        def test_find():
            assert find([1, 3, 5, 7, 9], 7) == 3


        def test_fact():
            assert fact(12) == 479001600


        def test_forever():
            forever(3)


        def test_spin():
            assert spin(10000) == 0


        def test_deep():
            deep(0)


        def test_parse():
            assert parse("x1") == 1


        def test_nested():
            assert find_nested([1, 2, 3, 4, 6, 7, 8], 5) == -1


        def test_multiples():
            assert multiples(range(7), 3) == [0, 3, 6, 9]
        """,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("trace_repo")
    for rel, text in FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def local(repo):
    sb = LocalSandbox(repo, python=sys.executable)
    yield sb
    sb.close()


def by_event(steps, event):
    return [s for s in steps if s["event"] == event]


def test_trace_of_a_known_call_holds_the_right_values(local):
    steps = trace_test(local, "tests/test_search.py::test_find", [("algo/search.py", "find")])
    call = steps[0]
    assert call["event"] == "call" and call["function"] == "find" and call["line"] == 1
    assert call["locals"] == {"arr": "[1, 3, 5, 7, 9]", "x": "7"}
    assert steps[1] == {"file": "algo/search.py", "line": 2, "event": "line", "function": "find",
                        "depth": 1, "locals": {"start": "0", "end": "4"}}
    middles = [(s["line"], s["locals"]["middle"]) for s in steps if "middle" in s["locals"]]
    assert middles == [(4, "2"), (4, "3")]  # 0..4 -> 2; start = 2 -> (2+4)//2 = 3
    assert [(s["line"], s["locals"]) for s in steps if "start" in s["locals"]][1] == (8, {"start": "2"})
    ret = by_event(steps, "return")
    assert ret and ret[-1]["value"] == "3" and ret[-1]["line"] == 6
    assert steps[-1]["event"] == "test" and steps[-1]["outcome"] == "passed"
    assert not list(Path(local.workdir).rglob("*.json"))  # nothing left in the tree
    text = trace_text(steps, 300)
    assert "call find(arr=[1, 3, 5, 7, 9], x=7)" in text and "L4: middle=2" in text
    assert "L6: return 3" in text
    near = around(steps, "algo/search.py", 8)  # the lines 7-9, with the call, the return and the outcome
    assert {s["line"] for s in near if s["event"] == "line"} == {7, 8}  # line 9 (`else`) never ran
    assert [s["event"] for s in near if s["event"] != "line"] == ["call", "return", "test"]
    assert around(steps, "other.py", 8) == [s for s in steps if s["event"] != "line"]


def test_exception_is_traced(local):
    steps = trace_test(local, "tests/test_search.py::test_parse", ["algo/search.py::parse"])
    exc = by_event(steps, "exception")
    assert exc and exc[0]["line"] == 37 and "ValueError" in exc[0]["exception"]
    assert by_event(steps, "raise") and steps[-1]["outcome"] == "failed"
    assert "ValueError" in steps[-1]["message"]


def test_a_nested_function_is_traced_by_the_name_localize_gives_it(local):
    # localize names it `find_nested.binsearch`; its code object says `find_nested.<locals>.binsearch`
    steps = trace_test(local, "tests/test_search.py::test_nested", ["algo/search.py::find_nested.binsearch"],
                       max_depth=4)
    calls = by_event(steps, "call")
    assert [(c["locals"]["start"], c["locals"]["end"]) for c in calls[:2]] == [("0", "7"), ("3", "7")]
    assert by_event(steps, "depth_limit")  # it never ends: mid stays 3 once start=3, end=4
    assert "call find_nested.binsearch(start=0, end=7, arr=[1, 2, 3, 4, 6, 7, 8], x=5)" in trace_text(steps)


def test_a_comprehension_is_folded_into_its_line(local):
    steps = trace_test(local, "tests/test_search.py::test_multiples", ["algo/search.py::multiples"])
    assert [s["function"] for s in by_event(steps, "call")] == ["multiples"]  # no <listcomp> frame
    text = trace_text(steps)
    assert "L56: kept=[0, 3, 6]" in text
    assert "0x" not in text and ".0=" not in text  # no iterator argument, no object address


def test_recursion_is_bounded_by_depth(local):
    steps = trace_test(local, "tests/test_search.py::test_fact", ["algo/search.py::fact"], max_depth=5)
    calls = by_event(steps, "call")
    assert [c["locals"]["n"] for c in calls] == ["12", "11", "10", "9", "8"]
    assert max(s.get("depth", 0) for s in steps) == 5
    assert by_event(steps, "depth_limit")
    assert [r["value"] for r in by_event(steps, "return")][-1] == "479001600"


def test_unbounded_recursion_keeps_a_partial_trace(local):
    steps = trace_test(local, "tests/test_search.py::test_deep", ["algo/search.py::deep"], max_depth=4,
                       timeout=30)
    assert len(by_event(steps, "call")) == 4
    assert steps[-1]["event"] == "test" and "RecursionError" in steps[-1]["message"]


def test_infinite_loop_is_cut_by_the_deadline_and_keeps_its_trace(local):
    steps = trace_test(local, "tests/test_search.py::test_forever", ["algo/search.py::forever"],
                       timeout=2, loop_keep=3)
    assert steps[0]["event"] == "call" and steps[0]["locals"] == {"x": "3"}
    assert [s["locals"]["x"] for s in steps if s["event"] == "line" and s["locals"]][:3] == ["4", "5", "6"]
    loops = by_event(steps, "loop")
    assert loops and all(s["skipped"] > 100 for s in loops)
    assert steps[-1]["event"] == "timeout"
    assert len(steps) < 20
    assert "timeout" in trace_text(steps, 200)


def test_ten_thousand_iterations_stay_within_the_token_budget(local):
    steps = trace_test(local, "tests/test_search.py::test_spin", ["algo/search.py::spin"], loop_keep=3)
    assert len(steps) < 30
    loop = [s for s in by_event(steps, "loop") if s["line"] == 27]
    assert loop and loop[0]["skipped"] == 10001 - 3 - 1  # the for line also runs to exit
    assert by_event(steps, "return")[-1]["value"] == "49995000"
    for budget in (5, 20, 60, 500):
        text = trace_text(steps, budget)
        assert len(text) <= budget * 4
    assert "ran 9996 more times" in trace_text(steps, 500)


def test_trace_text_budget_with_many_raw_steps():
    # 10,000 uncompressed steps (a tracer run with loop_keep=10**9) still fit the budget
    steps = [{"file": "m.py", "line": 1, "event": "call", "function": "f", "depth": 1, "locals": {"n": "10000"}}]
    steps += [{"file": "m.py", "line": 3 + i % 2, "event": "line", "function": "f", "depth": 1,
               "locals": {"i": str(i), "total": str(i * (i + 1) // 2)}} for i in range(10000)]
    steps.append({"file": "m.py", "line": 5, "event": "return", "function": "f", "depth": 1, "locals": {},
                  "value": "49995000"})
    for budget in (1, 10, 100, 400, 2000):
        text = trace_text(steps, budget)
        assert len(text) <= budget * 4, budget
    text = trace_text(steps, 400)
    assert text.startswith("call f(n=10000)") and text.endswith("return 49995000")
    assert "steps omitted" in text


def test_unknown_test_id_says_so(local):
    steps = trace_test(local, "tests/test_search.py::test_nope", ["algo/search.py::find"])
    assert steps[-1]["event"] == "test" and steps[-1]["outcome"] == "not_run"


def test_parse_trace_survives_a_cut_line():
    out = '@@STEP {"file": "a.py", "line": 1, "event": "call", "locals": {}}\n@@STEP {"file": "a.p'
    steps, end = parse_trace(out)
    assert len(steps) == 1 and end == {}


@pytest.mark.docker
def test_trace_in_docker(repo, docker_ready):
    from repair_agent.sandbox import DockerSandbox

    sb = DockerSandbox(repo, log=lambda *a: None)
    try:
        steps = trace_test(sb, "tests/test_search.py::test_find", [("algo/search.py", "find")])
        middles = [s["locals"]["middle"] for s in steps if "middle" in s["locals"]]
        assert middles == ["2", "3"]
        assert by_event(steps, "return")[-1]["value"] == "3"
        loop = trace_test(sb, "tests/test_search.py::test_forever", ["algo/search.py::forever"], timeout=2)
        assert loop[-1]["event"] == "timeout" and by_event(loop, "loop")
    finally:
        sb.close()
    assert sorted(p.name for p in repo.iterdir()) == ["algo", "tests"]
