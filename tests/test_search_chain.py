"""Two edits when one makes progress (search/chain.py): a fix that needs two edits is found only
through a first edit that moved the failure on, with real pytest runs (the local sandbox)."""

import json
import subprocess
import sys

import pytest

from helpers import fixture_repo, write_repo
from repair_agent.outcomes import failing_ids
from repair_agent.sandbox.local import LocalSandbox
from repair_agent.search import SearchContext, chain, mutate

STATS = (
    "def stats(values, factor):\n"
    "    total = sum(values) + factor  # scaled\n"
    "    mean = total / len(values) + 1\n"
    "    return total, mean\n"
)
TEST = (
    "from stats import stats\n\n\n"
    "def test_stats():\n"
    "    total, mean = stats([1, 2, 3], 2)\n"
    "    assert total == 12\n"
    "    assert mean == 4\n"
)


@pytest.mark.slow
def test_a_two_edit_fix_is_found_only_through_a_progressing_first_edit(tmp_path):
    root = write_repo(tmp_path / "repo", {"stats.py": STATS, "tests/test_stats.py": TEST})
    sandbox = LocalSandbox(root, use_worker=True, log=lambda _: None)
    try:
        before = sandbox.run_tests([])
        failing = failing_ids(before)
        assert failing == ["tests/test_stats.py::test_stats"]

        def check(edit) -> dict:
            run = sandbox.run_tests(["-x", *failing], overlay={edit["file"]: edit["text"]})
            return {"status": "failed" if failing_ids(run) else "fixed", "tests": {"failing": run}}

        ctx = SearchContext(root=root, settings=None, bases=chain.Bases(before, failing))
        first, second = {"file": "stats.py", "line": 2}, {"file": "stats.py", "line": 3}
        for loc in (first, second):  # no single edit of either line fixes it
            for edit in mutate.candidates(loc, ctx):
                record = check(edit)
                assert record["status"] != "fixed", edit["note"]
                ctx.bases.offer(edit, record)
        kept = ctx.bases.best()
        # `+` -> `*` passes the first assertion: the test now fails two lines later
        assert "`+` -> `*`" in [edit["note"] for edit in kept]
        assert 0 < len(kept) <= chain.BASES and all(e["line"] == 2 for e in kept)

        fixes = [edit for edit in chain.candidates(second, ctx) if check(edit)["status"] == "fixed"]
        assert fixes, "no second edit fixed it"
        assert {tuple(fix["chain"]) for fix in fixes} >= {("`+` -> `*`", "`+` -> `*`"),  # `... / len(values) * 1`
                                                          ("`+` -> `*`", "`total / len(values) + 1` -> `total / len(values)`")}
        dropped = next(fix for fix in fixes if fix["chain"][1].startswith("`total"))
        assert dropped["text"] == STATS.replace("+ factor", "* factor").replace(" + 1\n", "\n")  # bytes kept
        assert dropped["note"] == "`+` -> `*`; then `total / len(values) + 1` -> `total / len(values)`"
        assert ctx.bases.yielded <= chain.CANDIDATES
        assert list(chain.candidates(first, ctx)) == []  # never on the base's own line
    finally:
        sandbox.close()


def test_progress_reads_the_failure_point_of_pytest_s_report():
    def run(outcome, details):
        return {"cases": [{"id": "tests/test_a.py::test_a", "outcome": outcome, "details": details}]}

    at = "tests/test_a.py:{}: {}\n"
    before = run("failed", at.format(6, "AssertionError"))
    failing = ["tests/test_a.py::test_a"]
    later = {"status": "failed", "tests": {"failing": run("failed", at.format(7, "AssertionError"))}}
    other = {"status": "failed", "tests": {"failing": run("failed", "src/a.py:3: in f\n" + at.format(6, "TypeError"))}}
    same = {"status": "failed", "tests": {"failing": run("failed", at.format(6, "AssertionError"))}}
    passes = {"status": "passed_failing", "tests": {"failing": run("passed", "")}}
    assert chain.progress(before, failing, later) == (0, 1)
    assert chain.progress(before, failing, other) == (0, 1)
    assert chain.progress(before, failing, same) == (0, 0)
    assert chain.progress(before, failing, passes) == (1, 0)
    bases = chain.Bases(before, failing, keep=2)
    for note, record in (("same", same), ("later", later), ("other", other), ("passes", passes)):
        bases.offer({"file": "a.py", "line": 1, "note": note, "text": ""}, record)
    assert [e["note"] for e in bases.best()] == ["passes", "later"]  # most progress first, then the earlier


def test_the_agent_finds_the_two_edit_fix_with_no_model(tmp_path, docker_ready):
    """`fix --strategies mutate` on the same code as a repository: the search's chain step, after the
    single mutants, finds it (Docker, the graph, the judge)."""
    repo = fixture_repo("two_edits", tmp_path / "two_edits")
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(repo), "--run-dir", str(tmp_path / "runs"),
                           "--strategies", "mutate", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and result["source"] == "mutate"
    assert "\n+    total = sum(values) * factor  # scaled\n" in result["patch"]  # the first edit
    assert "\n-    mean = total / len(values) + 1\n" in result["patch"]  # and the second
    assert result["search"]["by_source"]["chain"]["tried"] > 0
