"""Mutants made by parsing only the statement's lines (`mutate._spliced_keys`) are the mutants the
whole-file parse made: the same texts, notes, trees and order, on every line of QuixBugs programs,
on lines of youtube-dl's `utils.py` (3,887 lines, bug 1's buggy commit) and on the layouts where a
statement does not have its lines to itself; and the whole file is parsed once a line, not once a
mutant."""

import ast
import json
from pathlib import Path

import pytest

from repair_agent.bench.datasets import quixbugs_dir
from repair_agent.search import mutate
from repair_agent.search.schedule import normalized

UTILS = (Path(__file__).parent / "fixtures" / "youtube-dl-utils-99036a1.py.txt").read_text()
# an assert with a regex, an except clause, a decorated method's line, a triple-quoted regex, a
# condition over lines with comments, a module-level dict's entry
UTILS_LINES = [261, 459, 950, 2532, 2546, 85]


def whole_file(text, tree, stmt):
    """The old way (every mutant's text parsed and dumped whole), checking on each edit, valid or
    not, that the spliced key agrees with it."""
    whole, key = mutate._spliced_keys(text, tree, stmt)
    assert whole == ast.dump(tree)

    def compare(new):
        old = normalized(new)
        assert key(new) == old
        return old

    return whole, compare


def assert_same(source: str, line: int) -> list:
    made = list(mutate._mutants(source, line))
    assert made == list(mutate._mutants(source, line, keys=whole_file))
    return made


def quixbugs() -> list[dict]:
    return [json.loads(x) for x in (quixbugs_dir() / "quixbugs_python.jsonl").open()]


@pytest.mark.parametrize("program", ["bitcount", "gcd", "knapsack", "lis", "mergesort", "next_palindrome",
                                     "powerset", "shortest_path_lengths", "topological_ordering", "wrap"])
def test_every_line_of_quixbugs_programs(program):
    source = next(r for r in quixbugs() if r["id"] == program)["buggy_source"]
    made = [m for line in range(1, source.count("\n") + 2) for m in assert_same(source, line)]
    assert len(made) > 20


@pytest.mark.parametrize("line", UTILS_LINES)
def test_lines_of_a_big_module(line):
    assert assert_same(UTILS, line)


@pytest.mark.parametrize("source, line", [
    ("def f(a, b):\n    x = a; y = b\n    return x < y\n", 2),  # two statements on a line
    ("def f(a):\n    if a: return a + 1\n    return 0\n", 2),  # a statement on its header's line
    ("def f(a, b):\n    x = a + \\\n        b\n    return x - 1\n", 3),  # a line run on with a backslash
    ("x = 1 + \\\n    2\ny = x - 1\n", 3),  # the statement after it, at module level
    ("class A:\n    @staticmethod\n    def f(a): return a + 1\n", 3),  # a decorated def
    ("def f(a):\n    return a + 1\n", 2),  # the block's only statement
    ("def f(a):\n    b = a - 1\n    return b\n", 2),  # deleted: the block's first statement
    ("def f(a):\n\tb = a - 1\n\treturn b + 1\n", 3),  # tabs
    ("def f(a):\r\n    b = a - 1\r\n    return b + 1\r\n", 3),  # CRLF
    ("def f(a):\n    s = '''x\n  y''' + a\n    return s * 2\n", 2),  # a string over lines
    ("def f(a):\n    try:\n        g(a - 1)\n    except ValueError:\n        return a + 1\n", 4),
    ("x = [1,\n     2]  # two\nprint(x[0] + 1)\n", 1),
])
def test_layouts(source, line):
    assert assert_same(source, line)


def test_the_file_is_parsed_once_a_line(monkeypatch):
    """On a big module, nearly all mutants are checked from their statement's lines alone: the
    whole text is parsed for one only where the edit does not parse alone (an invalid mutant)."""
    whole = []
    monkeypatch.setattr(mutate, "normalized", lambda text: whole.append(text) or normalized(text))
    made = [m for line in UTILS_LINES for m in mutate._mutants(UTILS, line)]
    assert len(made) > 100 and len(whole) <= len(UTILS_LINES)
