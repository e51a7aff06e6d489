"""Localization by functions first, then lines (localize/rank.py): the function-level tie-break, the
failure's data flow (localize/slice.py over a real trace), and a name the test imports that the code lacks."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from helpers import write_repo

from repair_agent.config import Settings
from repair_agent.localize import rank, sbfl
from repair_agent.localize.slice import dynamic_slice, trace_last_call
from repair_agent.nodes.localize import localize
from repair_agent.sandbox import LocalSandbox, open_sandbox
from repair_agent.tracing import trace_test

# Only the failing test runs this code, so every line ties; build() comes first in the file and has
# six lines, the faulty comparison in accept() one.
TIE = {
    "calc/__init__.py": "",
    "calc/ops.py": """\
        def build(n):
            a = n + 1
            b = a * 2
            c = b - 3
            d = c // 2
            e = d + a
            return e


        def accept(x):
            return x > 100
        """,
    "tests/test_ops.py": """\
        from calc.ops import accept, build


        def test_accept():
            assert accept(build(3))
        """,
}

# The total is wrong because of `count`; `label` runs on the way but never feeds the result.
SLICED = {
    "shop/__init__.py": "",
    "shop/bill.py": """\
        def price(qty, unit):
            label = "total for " + str(qty)
            note = label.upper()
            count = qty + 1
            return count * unit
        """,
    "tests/test_bill.py": """\
        from shop.bill import price


        def test_price():
            assert price(2, 3) == 6
        """,
}

# The test imports a name the module does not define yet.
MISSING = {
    "textkit/__init__.py": "",
    "textkit/case.py": """\
        def lower(s):
            return s.lower()


        def upper(s):
            return s.upper()
        """,
    "tests/test_case.py": """\
        from textkit.case import lower, title


        def test_lower():
            assert lower("AB") == "ab"


        def test_title():
            assert title("ab cd") == "Ab Cd"
        """,
}


def local_run(tmp_path, files, failing: str):
    repo = write_repo(tmp_path, files)
    box = LocalSandbox(repo, python=sys.executable)
    run = box.run_tests([failing.split("::")[0]])
    failed = [c for c in run["cases"] if c["outcome"] in ("failed", "error")]
    return repo, box, failed


def where(loc) -> tuple[str, int]:
    return loc["file"], loc["line"]


def test_function_first_turns_a_tie_among_lines_into_a_choice_among_functions(tmp_path):
    test = "tests/test_ops.py::test_accept"
    repo, box, failed = local_run(tmp_path, TIE, test)
    try:
        spec = sbfl.spectrum(box, ["tests/test_ops.py"], [test])
    finally:
        box.close()
    by_line = [where(loc) for loc in sbfl.rank_lines(spec)]
    assert len({loc["score"] for loc in sbfl.rank_lines(spec)}) == 1  # every line ties
    assert by_line.index(("calc/ops.py", 11)) == 6  # lines alone: after build()'s six
    ranked = rank.rank(spec, [c["details"] for c in failed], repo, [test])
    assert [where(loc) for loc in ranked[:2]] == [("calc/ops.py", 2), ("calc/ops.py", 11)]  # each function's best
    assert [loc["function"] for loc in ranked[:2]] == ["build", "accept"]
    assert [loc["score"] for loc in ranked] == sorted((loc["score"] for loc in ranked), reverse=True)


def test_slice_ranks_the_line_that_fed_the_assertion_first(tmp_path):
    test = "tests/test_bill.py::test_price"
    repo, box, failed = local_run(tmp_path, SLICED, test)
    try:
        spec = sbfl.spectrum(box, ["tests/test_bill.py"], [test])
        steps = trace_test(box, test, [("shop/bill.py", "price")])
    finally:
        box.close()
    assert dynamic_slice(steps, repo) == {("shop/bill.py", 4), ("shop/bill.py", 5)}  # count, and the return
    details = [c["details"] for c in failed]
    without = [where(loc) for loc in rank.rank(spec, details, repo, [test])]
    with_slice = [where(loc) for loc in rank.rank(spec, details, repo, [test], trace=steps)]
    assert without.index(("shop/bill.py", 2)) < without.index(("shop/bill.py", 4))  # a tie, in file order
    assert with_slice.index(("shop/bill.py", 4)) < with_slice.index(("shop/bill.py", 2))
    assert with_slice.index(("shop/bill.py", 4)) < with_slice.index(("shop/bill.py", 3))


def test_slice_follows_an_exception_to_where_its_operand_came_from(tmp_path):
    files = {"m/__init__.py": "", "m/div.py": """\
        def ratio(a, b):
            unused = a * 2
            d = b - b
            return a / d
        """, "tests/test_div.py": """\
        from m.div import ratio


        def test_ratio():
            assert ratio(4, 2) == 2
        """}
    repo, box, _ = local_run(tmp_path, files, "tests/test_div.py::test_ratio")
    try:
        steps = trace_test(box, "tests/test_div.py::test_ratio", [("m/div.py", "ratio")])
    finally:
        box.close()
    assert dynamic_slice(steps, repo) == {("m/div.py", 3), ("m/div.py", 4)}


def test_missing_name_is_said_plainly_and_no_def_line_is_a_suspect(tmp_path, docker_ready):
    repo = write_repo(tmp_path / "repo", MISSING)
    box = open_sandbox("docker", repo, log=lambda m: None)
    try:
        run = box.run_tests(["tests/test_case.py"])
        failing = [c["id"] for c in run["cases"] if c["outcome"] in ("failed", "error")]
        assert failing, run["output_tail"]
        logged: list[str] = []
        deps = SimpleNamespace(workdir=repo, sandbox=box, settings=Settings(), log=logged.append,
                               recorder=SimpleNamespace(write=lambda *a, **k: None))
        state = {"tests_before": run, "failing": failing, "test_args": ["tests/test_case.py"]}
        out = localize(state, deps)
        no_spectrum = localize(state, SimpleNamespace(**{**vars(deps), "settings": Settings(use_sbfl=False)}))
    finally:
        box.close()
    assert out["context"].startswith("The failing test imports `title` from `textkit.case`, which does not "
                                     "define it: the fix must add `title` to `textkit.case` (textkit/case.py).")
    assert any("the fix must add `title` to `textkit.case`" in line for line in logged)
    assert where(out["locations"][0]) == ("textkit/case.py", 6)  # the module's end, where a new name goes
    assert {loc["file"] for loc in out["locations"]} == {"textkit/case.py"}
    assert not {loc["line"] for loc in out["locations"]} & {1, 5}  # never a def line
    assert [where(loc) for loc in no_spectrum["locations"]] == [("textkit/case.py", 6)]  # nor without a spectrum


def test_the_slice_is_taken_from_the_last_call_the_test_made(tmp_path):
    files = {"m/__init__.py": "", "m/acc.py": """\
        def bump(i):
            j = i + 1
            k = i * 2
            return j
        """, "tests/test_acc.py": """\
        from m.acc import bump


        def test_many():
            for i in range(200):
                bump(i)
            assert bump(1000) == 0
        """}
    test = "tests/test_acc.py::test_many"
    repo, box, _ = local_run(tmp_path, files, test)
    try:
        everything = trace_test(box, test, [("m/acc.py", "bump")], max_steps=60)
        last = trace_last_call(box, test, [("m/acc.py", "bump")], max_steps=60)
    finally:
        box.close()
    # traced from the start, the step limit ends the record long before the call the test checked
    assert not any(s["event"] == "call" and s["locals"].get("i") == "1000" for s in everything)
    calls = [s for s in last if s["event"] == "call"]
    assert len(calls) == 1 and calls[0]["locals"] == {"i": "1000"}
    assert dynamic_slice(last, repo) == {("m/acc.py", 2), ("m/acc.py", 4)}  # j and the return, not k


def test_a_method_is_sliced_on_a_python_without_qualified_code_names(tmp_path, docker_ready):
    """Before Python 3.11 a code object has no qualified name: the tracer matches a method by its own name."""
    files = {"shop/__init__.py": "", "shop/cart.py": """\
        class Cart:
            def total(self, qty, unit):
                label = str(qty)
                count = qty + 1
                return count * unit
        """, "tests/test_cart.py": """\
        from shop.cart import Cart


        def test_total():
            assert Cart().total(2, 3) == 6
        """}
    repo = write_repo(tmp_path / "repo", files)
    box = open_sandbox("docker", repo, image="repair-agent/base:bullseye", log=lambda m: None)
    try:
        _rc, version = box.run([box.python, "-c", "import sys; print(sys.version_info[:2])"], timeout=60)
        steps = trace_last_call(box, "tests/test_cart.py::test_total", [("shop/cart.py", "Cart.total")])
    finally:
        box.close()
    assert "(3, 9)" in version
    assert dynamic_slice(steps, repo) == {("shop/cart.py", 4), ("shop/cart.py", 5)}


def test_a_missing_name_close_to_an_existing_one_points_at_that_function_too(tmp_path):
    repo = write_repo(tmp_path, {"pkg/__init__.py": "", "pkg/text.py": """\
        import re


        def fix_xml_all_ampersand(xml):
            return xml.replace('&', '&amp;')


        def shout(s):
            return s.upper()
        """})
    failure = ("E   ImportError: cannot import name 'fix_xml_ampersands' from 'pkg.text' "
               f"({tmp_path}/pkg/text.py)")
    missing = rank.missing_name([failure], repo)
    assert missing == ("fix_xml_ampersands", "pkg.text", "pkg/text.py")
    assert rank.missing_text(missing, repo).endswith("A similar name there: `fix_xml_all_ampersand` (renamed?).")
    spec = {"n_failed": 1, "n_passed": 0, "lines": [["pkg/text.py", 1, 1, 0], ["pkg/text.py", 4, 1, 0],
                                                    ["pkg/text.py", 8, 1, 0]], "covers": None}
    ranked = [where(loc) for loc in rank.rank(spec, [failure], repo, ["tests/test_text.py::test_fix"])]
    assert ranked == [("pkg/text.py", 9), ("pkg/text.py", 5), ("pkg/text.py", 1)]  # the end, the body; no def
