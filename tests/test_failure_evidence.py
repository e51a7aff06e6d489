"""How the test fails, in the model's infill prompt (issue 31, item 3): read from a real pytest run's
JUnit report, a few lines, above the code the model fills."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from repair_agent.outcomes import failure_lines
from repair_agent.sandbox.base import pytest_command, read_junit
from repair_agent.search import infill

CODE = """def add(a, b):
    total = a - b
    return total


def first(xs):
    return xs[len(xs)]
"""
TESTS = """from calc import add, first


def test_add():
    assert add(2, 2) == 4


def test_first():
    assert first([1, 2]) == 1
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("calc")
    (root / "calc.py").write_text(CODE)
    (root / "test_calc.py").write_text(TESTS)
    # the sandbox's own pytest command line (xunit1 names each test's file)
    done = subprocess.run([sys.executable, *pytest_command(["test_calc.py"], "j.xml", 10)], cwd=root,
                          capture_output=True, text=True)
    return read_junit(root / "j.xml", done.returncode, False, 0.0, done.stdout)


def test_an_assertion_says_the_tests_line_and_the_values_it_compared(run):
    assert failure_lines(run, among=["test_calc.py::test_add"]).splitlines() == [
        "test_calc.py:5: assert add(2, 2) == 4", "assert 0 == 4", "+  where 0 = add(2, 2)"]


def test_an_exception_says_the_tests_line_the_codes_line_and_the_error(run):
    assert failure_lines(run, among=["test_calc.py::test_first"]).splitlines() == [
        "test_calc.py:9: assert first([1, 2]) == 1", "calc.py:7: return xs[len(xs)]",
        "IndexError: list index out of range"]


def test_no_failure_among_the_tests_asked_says_nothing(run):
    assert failure_lines(run, among=["test_calc.py::test_other"]) == ""
    assert failure_lines({**run, "cases": [], "timed_out": True}).startswith("the test run timed out")


def test_the_infill_prompt_opens_with_the_failure_and_keeps_the_rest(run):
    told = failure_lines(run, among=["test_calc.py::test_add"])
    lines, tree = CODE.splitlines(keepends=True), ast.parse(CODE)
    mask = infill.masks(CODE, 2, tree)[0]
    plain, suffix = infill.context(lines, tree, mask, 4000)
    prefix, same_suffix = infill.context(lines, tree, mask, 4000, told)
    assert prefix == ("# A test fails:\n#   test_calc.py:5: assert add(2, 2) == 4\n#   assert 0 == 4\n"
                      "#   +  where 0 = add(2, 2)\n\n" + plain)
    assert same_suffix == suffix


def test_a_test_whose_teardown_also_errors_is_one_case(tmp_path):
    """pytest's JUnit report holds two entries for a test that fails and then errors in teardown (tqdm's
    `posttest` after a failing test): one case, the failure, so that a fix makes it pass once, not
    "run" half of its ids."""
    (tmp_path / "test_bars.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef bars():\n    yield []\n    raise RuntimeError('a bar left open')\n\n\n"
        "def test_fails(bars):\n    assert bars == [1]\n\n\ndef test_passes(bars):\n    assert bars == []\n")
    done = subprocess.run([sys.executable, *pytest_command(["test_bars.py"], "j.xml", 10)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.stdout.count("ERROR at teardown") == 2, done.stdout
    run = read_junit(tmp_path / "j.xml", done.returncode, False, 0.0, done.stdout)
    assert [(c["id"], c["outcome"]) for c in run["cases"]] == [
        ("test_bars.py::test_fails", "failed"), ("test_bars.py::test_passes", "error")]
    assert "assert [] == [1]" in run["cases"][0]["message"]
