"""The mutation source: the right mutant appears for each operator, and every byte outside the
mutated node (the user's formatting, comments) is kept."""

import difflib

import pytest

from repair_agent.search.mutate import NEAREST, closest, mutants
from repair_agent.search.schedule import normalized


def changed(before: str, after: str) -> list[str]:
    """The lines that differ, as (old, new) text."""
    return [ln for ln in difflib.ndiff(before.splitlines(), after.splitlines()) if ln[:1] in "+-"]


def find(source: str, line: int, wanted: str) -> tuple[str, str]:
    """The mutant of `line` whose text holds `wanted` on that line."""
    for text, note in mutants(source, line):
        if text.splitlines()[line - 1].strip() == wanted:
            return text, note
    got = [t.splitlines()[line - 1].strip() for t, _ in mutants(source, line)]
    raise AssertionError(f"no mutant gives {wanted!r}; got {got}")


CASES = [
    # (source, line, the right line after the mutation) -- one per operator
    ("def f(a, b):\n    return a  <  b   # keep me\n", 2, "return a  <=  b   # keep me"),
    ("def f(n):\n    n ^= n - 1\n    return n\n", 2, "n &= n - 1"),
    ("def f(n):\n    return n ^ (n-1)\n", 2, "return n & (n-1)"),
    ("def f(x, y):\n    return x and y\n", 2, "return x or y"),
    ("def f(xs):\n    return xs[len(xs)]\n", 2, "return xs[len(xs) - 1]"),
    ("def f(n):\n    return n * 3\n", 2, "return n * 4"),
    ("def f(a, b):\n    return g(b, a % b)\n", 2, "return g(a % b, b)"),
    ("def f(a, b):\n    return a - b\n", 2, "return b - a"),
    ("def f(xs, total):\n    count = 0\n    return total\n", 3, "return count"),
    ("def f(x):\n    if not x:\n        return 1\n", 2, "if x:"),
    ("def f(x):\n    while x > 0:\n        x -= 1\n", 2, "while not (x > 0):"),
    ("def f(node):\n    return node.outgoing\n\ndef g(n):\n    return n.incoming\n", 2, "return node.incoming"),
    ("def f(xs):\n    return any(x > 0 for x in xs)\n", 2, "return all(x > 0 for x in xs)"),
    ("def f(x):\n    yield f(x)\n", 2, "yield x"),
    ("def f(s, t):\n    return 1 + f(s[1:], t[1:])\n", 2, "return f(s[1:], t[1:])"),
    ("def f(n):\n    return []\n", 2, "return [n]"),
    ("def f(xs, k):\n    for x in xs:\n        pass\n", 2, "for x in xs[k:]:"),
    ("def f(r):\n    for c in range(0, r):\n        pass\n", 2, "for c in range(0, r + 1):"),
    ("def f(best, n):\n    best = n + 1\n    return best\n", 2, "best = max(best, n + 1)"),
    ("def f(q):\n    while True:\n        q.pop()\n", 2, "while q:"),
    ("def f(a, b):\n    return a + b\n", 2, "return b + a"),
    ("def f(a, b):\n    return a[0] + f(a[1:], b)\n", 2, "return a[0] + f(a[1:], b[1:])"),
    ("def f(d, i, j, k):\n    return d[i, k] + d[j, k]\n", 2, "return d[i, k] + d[k, j]"),
    ("def f(q, n, dist):\n    return g(q, n) + 1\n", 2, "return dist + 1"),
]


@pytest.mark.parametrize("source,line,wanted", CASES, ids=[c[2] for c in CASES])
def test_the_right_mutant_appears_and_only_its_line_changes(source, line, wanted):
    text, note = find(source, line, wanted)
    assert note
    diff = changed(source, text)
    assert len(diff) == 2, diff  # one line out, one line in: the rest of the file is byte-identical
    assert text.splitlines()[:line - 1] == source.splitlines()[:line - 1]


def test_statement_edits_delete_and_copy_a_neighbour():
    source = "def f(xs):\n    out = []\n    for x in xs:\n        out.append(x)\n        x += 1\n    return out\n"
    notes = [note for _, note in mutants(source, 5)]
    assert "delete the statement" in notes
    assert "insert `out.append(x)` after" in notes


def test_every_mutant_parses_differs_and_is_unique():
    source = "def f(a, b):\n    if a[0] < b and not a:\n        return a[1:b] + [b - 1]\n    return None\n"
    for line in (2, 3):
        texts = [t for t, _ in mutants(source, line)]
        assert texts
        keys = [normalized(t) for t in texts]
        assert None not in keys
        assert normalized(source) not in keys
        assert len(set(keys)) == len(keys)


def test_non_ascii_text_before_the_node_keeps_columns_right():
    source = "def f(a, b):\n    s = 'é'; return a < b\n"
    text, _ = find(source, 2, "s = 'é'; return a <= b")
    assert text.startswith("def f(a, b):\n")


def test_a_line_outside_any_statement_gives_nothing():
    assert list(mutants("x = 1\n\n\n", 3)) == []
    assert list(mutants("def broken(:\n", 1)) == []


def test_a_big_module_gives_the_nearest_names_and_attributes_only():
    # a real module uses hundreds of attributes; each alternative is one test run, so a node gets
    # the NEAREST most like it, those used on the same object first
    others = "".join(f"    os.attr_{i:03d}\n" for i in range(200))
    source = ("import os\n\nclass Bar:\n    def __init__(self):\n        self.total = 0\n        self.totals = []\n        self.zq = 0\n\n"
              "    def update(self, n):\n        return self.total + n\n\ndef noise():\n" + others)
    notes = [note for _, note in mutants(source, 10)]
    swaps = [n for n in notes if n.startswith("`.total` -> ")]
    assert 0 < len(swaps) <= NEAREST
    assert "`.total` -> `.totals`" in swaps  # same object and spelling
    assert "`.total` -> `.zq`" in swaps  # the same object (`self`), unlike as it is, beats those on `os`
    assert len(notes) < 60  # was over 200: every attribute of the file
    assert closest("total", [f"x{i}" for i in range(NEAREST)]) == [f"x{i}" for i in range(NEAREST)]
    assert closest("count", ["x", "counter", "y", "amount", "z"], k=2) == ["counter", "amount"]  # pool order
