"""Anti-patterns of search-based repair: the edits that tests let through and that seldom fix."""

from __future__ import annotations

from pathlib import Path

from repair_agent.search import SearchContext
from repair_agent.judge.antipatterns import suspicions
from repair_agent.judge.guard import rank
from repair_agent.search.schedule import Budget, run_search

DFS = """\
def depth_first_search(startnode, goalnode):
    nodesvisited = set()

    def search_from(node):
        if node in nodesvisited:
            return False
        elif node is goalnode:
            return True
        else:
            return any(
                search_from(nextnode) for nextnode in node.successors
            )

    return search_from(startnode)
"""

FLATTEN = """\
def flatten(arr):
    for x in arr:
        if isinstance(x, list):
            for y in flatten(x):
                yield y
        else:
            yield flatten(x)
"""

CYCLE = (Path(__file__).parent / "fixtures" / "falsy_cycle" / "cycle.py").read_text()  # `while True`, no break

BFS = """\
def bfs(queue, goal):
    while True:
        node = queue.pop()
        if node == goal:
            return True
    return False
"""


def test_removing_the_last_recursive_call_is_suspect():
    patched = DFS.replace("search_from(nextnode) for", "nextnode for")
    assert suspicions(DFS, patched) == ["it removes the last recursive call of `search_from`"]
    # flatten's real fix unwraps one recursive call; another one stays
    assert suspicions(FLATTEN, FLATTEN.replace("yield flatten(x)", "yield x")) == []


def test_a_new_way_to_fall_off_the_end_is_suspect():
    assert suspicions(CYCLE, CYCLE.replace("while True:", "while hare:")) == [
        "it lets `detect_cycle` reach its end and return None, where it always returned a value"]
    # a loop that may now end reaches an explicit return: nothing falls off
    assert suspicions(BFS, BFS.replace("while True:", "while queue:")) == []
    # a `break` in the loop already let the function end: not new
    broken = CYCLE.replace("            return True", "            break")
    assert suspicions(broken, broken.replace("while True:", "while hare:")) == []


def test_ordinary_fixes_and_unparsable_text_are_not_suspect():
    assert suspicions(CYCLE, CYCLE.replace("is None", "is not None")) == []
    assert suspicions(CYCLE, "def detect_cycle(:") == []


def test_a_suspect_fix_does_not_end_the_search_and_ranks_last(tmp_path):
    (tmp_path / "m.py").write_text("def f(a, b):\n    c = a < b\n    return c + 1\n")
    ctx = SearchContext(root=tmp_path, settings=None)

    def check(edit):  # both `<=` (line 2) and `c - 1` (line 3) pass; `<=` is a planted suspect
        text = edit["text"]
        if "a <= b" in text:
            return {"status": "fixed", "suspect": ["planted"], "line": edit["line"], "patch": "-a\n+b\n",
                    "source": "mutate"}
        if "return c - 1" in text:
            return {"status": "fixed", "suspect": [], "line": edit["line"], "patch": "-a\n+bb\n", "source": "mutate"}
        return {"status": "failed"}

    at = [{"file": "m.py", "function": "f", "line": n, "score": 1.0} for n in (2, 3)]
    out = run_search([("mutate", at)], ctx, check, Budget(plausible=1))
    assert [f["line"] for f in out.fixes] == [2, 3]  # the suspect on line 2 did not stop it
    assert out.stop_reason == "2 plausible fix(es) found"
    assert [f["line"] for f in rank(out.fixes)] == [3, 2]  # the clean one first, though larger
    only_suspect = run_search([("mutate", at[:1])], ctx, check, Budget(plausible=1))
    assert len(only_suspect.fixes) == 1 and only_suspect.stop_reason == "every candidate of the search tried"
