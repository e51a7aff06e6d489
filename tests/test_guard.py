"""The overfitting guard (judge/guard.py): plausible patches run against each other, against the
buggy program on the passing tests' calls, and on docstring examples, in the real Docker sandbox;
and `ci`, which opens a pull request only at or above `--min-confidence`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import git
from github_standin import GitHubStandIn

from repair_agent import patching
from repair_agent.ci.publish import publish_fix
from repair_agent.config import Settings
from repair_agent.sandbox import open_sandbox
from repair_agent.judge import guard

GCD = '''"""Number theory helpers."""


def gcd(a, b):
    """The greatest common divisor of two non-negative ints.{doc}"""
    if b == 0:
        return a
    else:
        return gcd(a % b, b)
'''
DOC = "\n\n    >>> gcd(35, 21)\n    7\n    "
GCD_TESTS = '''from mathx.gcd import gcd


def test_zero():
    assert gcd(17, 0) == 17


def test_same():
    assert gcd(13, 13) == 13


def test_divides():
    assert gcd(12, 4) == 4


def test_coprime():
    assert gcd(37, 600) == 1
'''
BUGGY = "        return gcd(a % b, b)\n"
PATCHES = {  # each passes the four tests; only the first overfits them (and it is the smallest)
    "overfit": "        return b if a % b == 0 else 1\n",
    "two_lines": "        a, b = b, a % b\n        return gcd(a, b)\n",
    "loop": "        while b:\n            a, b = b, a % b\n        return a\n",
}
TEST_INPUTS = [(17, 0), (13, 13), (12, 4), (37, 600)]


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def gcd_repo(root: Path, doc: str = "") -> Path:
    return make(root, {"mathx/__init__.py": "", "mathx/gcd.py": GCD.format(doc=doc), "tests/test_gcd.py": GCD_TESTS})


def fixes_for(scratch: Path, names: list[str]) -> list[dict]:
    out = []
    for name in names:
        path = scratch / "mathx/gcd.py"
        path.write_text(path.read_text().replace(BUGGY, PATCHES[name]))
        patch = patching.current_diff(scratch)
        patching.reset(scratch)
        out.append({"patch": patch, "file": "mathx/gcd.py", "line": 9, "source": "mutate", "note": name,
                    "tests": {}, "index": 0, "status": "fixed", "reason": "the full suite passes"})
    return out


def choose(repo: Path, tmp_path: Path, names: list[str]) -> dict:
    scratch = patching.make_scratch(repo, tmp_path / f"scratch-{'-'.join(names)}")
    fixes = fixes_for(scratch, names)
    box = open_sandbox("docker", scratch, log=lambda m: None)
    state = {"test_args": ["tests"], "tests_before": {"cases": [{"seconds": 0.01}]}}
    try:
        verdict = guard.choose(fixes, state, SimpleNamespace(workdir=scratch, sandbox=box, settings=Settings(),
                                                             log=lambda m: None))
    finally:
        box.close()
    assert not (scratch / guard.GUARD_DIR).exists()  # the harness leaves the scratch tree as it was
    assert patching.current_diff(scratch) == ""
    return verdict


# -- in the sandbox --------------------------------------------------------------------------------
def test_an_overfitting_patch_is_outvoted_and_confidence_is_low(tmp_path, docker_ready):
    repo = gcd_repo(tmp_path / "repo")
    assert [f["note"] for f in guard.rank(fixes_for(patching.make_scratch(repo, tmp_path / "s"), list(PATCHES)))][0] \
        == "overfit"  # smallest first: without the guard, the overfitting patch would win
    v = choose(repo, tmp_path, list(PATCHES))
    assert [f["note"] for f in v["ranked"]] == ["two_lines", "loop", "overfit"]
    assert v["ranked"][2]["guard"]["outvoted"] > 0 and v["ranked"][0]["guard"]["outvoted"] == 0
    assert v["confidence"] == "low"
    d = v["disagreement"]
    a, b = d["input"]["args"]
    assert d["kind"] == "patches disagree" and d["function"] == "gcd" and (a, b) not in TEST_INPUTS
    assert d["outcomes"]["patch #3"]["value"] == 1 != d["outcomes"]["patch #1"]["value"]
    assert d["text"].startswith(f"gcd({a}, {b}): patches #1, #2 return ")
    assert d["text"] in v["reason"] and "disagree on" in v["reason"]
    c = v["checked"]
    assert c["functions"] == ["gcd"] and c["inputs"]["tests"] == 4 and c["inputs"]["passing"] == 1
    assert c["compared_generated"] > 100 and c["seconds"] < guard.BUDGET_S + 5


def test_two_equivalent_correct_patches_give_high_confidence(tmp_path, docker_ready):
    v = choose(gcd_repo(tmp_path / "repo"), tmp_path, ["two_lines", "loop"])
    assert v["confidence"] == "high" and v["disagreement"] is None
    assert [f["note"] for f in v["ranked"]] == ["two_lines", "loop"]  # equals: the smaller first
    assert v["checked"]["compared_passing"] == 1 and v["checked"]["compared_generated"] > 100
    assert "agree on" in v["reason"]


def test_docstring_examples_count_as_tests(tmp_path, docker_ready):
    repo = gcd_repo(tmp_path / "repo", doc=DOC)
    one = choose(repo, tmp_path, ["overfit"])  # alone, only its example can speak against it
    assert one["confidence"] == "low" and one["ranked"][0]["guard"]["examples_failed"] == 1
    assert one["disagreement"]["kind"] == "docstring example"
    assert one["disagreement"]["text"].startswith(">>> gcd(35, 21) expects 7; patch #1 gives 1")
    two = choose(repo, tmp_path, ["overfit", "two_lines"])  # a tie on the inputs; the example decides
    assert [f["note"] for f in two["ranked"]] == ["two_lines", "overfit"] and two["confidence"] == "low"
    good = choose(repo, tmp_path, ["two_lines"])
    assert good["confidence"] == "high" and "1 docstring example(s) pass" in good["reason"]


# -- no sandbox needed -----------------------------------------------------------------------------
def test_a_patch_outside_any_function_is_unknown(tmp_path):
    repo = make(tmp_path / "repo", {"m.py": "LIMIT = 3\n\n\ndef f(x):\n    return x < LIMIT\n"})
    scratch = patching.make_scratch(repo, tmp_path / "scratch")
    (scratch / "m.py").write_text("LIMIT = 4\n\n\ndef f(x):\n    return x < LIMIT\n")
    patch = patching.current_diff(scratch)
    patching.reset(scratch)
    fix = {"patch": patch, "file": "m.py", "line": 1, "source": "mutate", "note": "3 -> 4", "tests": {}}
    v = guard.choose([fix], {"test_args": []}, SimpleNamespace(workdir=scratch, sandbox=None, settings=Settings(),
                                                              log=lambda m: None))
    assert v["confidence"] == "unknown" and "no function" in v["reason"]
    assert v["ranked"][0]["note"] == "3 -> 4"  # still ranked: the caller always gets a choice


def test_changed_functions_and_examples():
    old = ("import re\n\n\ndef f(x):\n    def inner(y):\n        return y + 1\n    return inner(x)\n\n\n"
           "class C:\n    def m(self):\n        return 1\n\n    def n(self):\n        return 2\n")
    new = old.replace("y + 1", "y - 1").replace("return 2", "return 3")
    assert guard.changed_functions(old, new) == ["f", "C.n"]  # a nested function counts for its parent
    assert guard.changed_functions(old, old.replace("import re", "import os")) == []
    src = '"""Mod."""\n\n\ndef g(a):\n    """Twice.\n\n    >>> g(2)\n    4\n    """\n    return 2 * a\n\n\n' \
          '"""\nExamples:\n    >>> g(3)\n    6\n    >>> other(1)\n    1\n"""\n\n\n"""\n>>> unrelated()\n1\n"""\n'
    groups = guard.docstring_examples(src, "g")
    assert [[e["source"].strip() for e in g] for g in groups] == [["g(2)"], ["g(3)", "other(1)"]]
    assert [[e["own"] for e in g] for g in groups] == [[True], [False, False]]


def vote(labels, kinds, docs=None):
    return {"labels": labels, "kinds": kinds, "docs": docs or [], "details": [], "errors": [], "cut": []}


def test_judge_ranks_down_a_patch_that_changes_what_passing_tests_saw():
    fixes = [{"patch": "-a\n+b\n", "source": "mutate", "note": "small"},
             {"patch": "-a\n+bb\n+c\n", "source": "mutate", "note": "larger"}]
    targets = [{"qualname": "f", "examples": []}]
    inputs = [{"target": 0, "source": "tests", "passed": True, "call": {"args": [1], "kwargs": {}, "objects": []}},
              {"target": 0, "source": "tests", "passed": False, "call": {"args": [2], "kwargs": {}, "objects": []}}]
    # the buggy program and the larger patch agree on the passing test's call; the smaller one does not
    v = guard.judge(fixes, inputs, vote(["010", "-00"], ["ooo", "-oo"]), targets)
    assert [f["note"] for f in v["ranked"]] == ["larger", "small"] and v["confidence"] == "low"
    assert v["ranked"][1]["guard"]["passing_changed"] == 1
    assert v["disagreement"]["kind"] == "changes what a passing test saw"
    assert v["disagreement"]["text"].startswith("f(1): ")
    alone = guard.judge(fixes[:1], inputs, vote(["01", "-0"], ["oo", "-o"]), targets)
    assert alone["confidence"] == "low"  # a single patch: the passing-tests check alone
    kept = guard.judge(fixes[:1], inputs, vote(["00", "-0"], ["oo", "-o"]), targets)
    assert kept["confidence"] == "high" and "keeps the outcome of the 1 call(s)" in kept["reason"]


def test_judge_skips_inputs_outside_the_domain():
    fixes = [{"patch": f"-a\n+{n}\n", "source": "mutate", "note": n} for n in ("x", "yy", "zzz")]
    targets = [{"qualname": "f", "examples": []}]
    gen = {"target": 0, "source": "generated", "passed": False, "call": {"args": [0], "kwargs": {}, "objects": []}}
    # most patches raise on a generated input: outside the domain, whatever the third one does
    v = guard.judge(fixes, [gen, gen], vote(["-001", "-000"], ["-rro", "-ooo"]), targets)
    assert v["confidence"] == "high" and v["checked"]["compared_generated"] == 1
    # a strict majority outvotes the odd one; a two-way tie ranks no one down
    v = guard.judge(fixes, [gen], vote(["-010"], ["-ooo"]), targets)
    assert [f["note"] for f in v["ranked"]] == ["x", "zzz", "yy"] and v["confidence"] == "low"
    v = guard.judge(fixes[:2], [gen], vote(["-01"], ["-oo"]), targets)
    assert [f["note"] for f in v["ranked"]] == ["x", "yy"] and v["confidence"] == "low"


def test_judge_leaves_out_a_program_whose_call_touched_what_the_recording_only_described():
    fixes = [{"patch": f"-a\n+{n}\n", "source": "mutate", "note": n} for n in ("x", "yy")]
    targets = [{"qualname": "f", "examples": []}]
    seen = {"target": 0, "source": "tests", "passed": True, "call": {"args": [0], "kwargs": {}, "objects": []}}
    # on the first call the smaller patch calls the callback the recording kept as text: no outcome
    # there, so no change and no vote; the second call they all agree on
    v = guard.judge(fixes, [seen, seen], vote(["010", "000"], ["ouo", "ooo"]), targets)
    assert v["confidence"] == "high" and v["ranked"][0]["guard"]["passing_changed"] == 0
    v = guard.judge(fixes, [seen, seen], vote(["010", "000"], ["ooo", "ooo"]), targets)  # had it returned
    assert v["confidence"] == "low" and v["ranked"][-1]["guard"]["passing_changed"] == 1


def test_a_suspect_patch_ranks_last_and_its_disagreement_does_not_lower_confidence():
    fixes = [{"patch": "-a\n+b\n", "source": "mutate", "note": "deletes the recursion", "suspect": ["removes"]},
             {"patch": "-a\n+bb\n+c\n", "source": "infill", "note": "adds the missing line", "suspect": []}]
    targets = [{"qualname": "f", "examples": []}]
    gen = {"target": 0, "source": "generated", "passed": False, "call": {"args": [0], "kwargs": {}, "objects": []}}
    v = guard.judge(fixes, [gen], vote(["-01"], ["-oo"]), targets)  # the two disagree
    assert [f["note"] for f in v["ranked"]] == ["adds the missing line", "deletes the recursion"]
    assert v["confidence"] == "high" and "1 suspect patch(es) ranked last and not counted" in v["reason"]
    clean = [{**f, "suspect": []} for f in fixes]  # the same disagreement between clean patches
    assert guard.judge(clean, [gen], vote(["-01"], ["-oo"]), targets)["confidence"] == "low"


def test_confidence_order():
    assert guard.at_least("high", "high") and not guard.at_least("low", "high")
    assert guard.at_least("low", "low") and guard.at_least(None, "unknown") and not guard.at_least(None, "high")


# -- ci --------------------------------------------------------------------------------------------
TOKEN = "ghp_GuardTokenThatMustNeverLeak0123456789"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A repo on `main` pushed to a bare remote, a result with two plausible patches, the stand-in."""
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_REPOSITORY", "GH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    repo = gcd_repo(tmp_path / "repo")
    git(repo, "push", "-q", str(bare), "main")
    scratch = patching.make_scratch(repo, tmp_path / "scratch")
    fixes = fixes_for(scratch, ["two_lines", "overfit"])
    plausible = [{"source": "mutate", "file": "mathx/gcd.py", "line": 9, "note": f["note"], "patch": f["patch"],
                  "guard": {"examples_failed": 0, "passing_changed": 0, "outvoted": 0}} for f in fixes]
    result = {"status": "fixed", "patch": fixes[0]["patch"], "root_cause": "gcd recurses on the wrong pair.",
              "rounds": [], "tests_before": {"passed": 1, "failed": 3, "errors": 0, "skipped": 0,
                                             "failing": ["tests/test_gcd.py::test_same"]},
              "tests_after": {"passed": 4, "failed": 0, "errors": 0, "skipped": 0, "failing": []},
              "tokens": {"prompt": 0, "completion": 0}, "duration_s": 3.0, "run_id": "run-1", "model": "",
              "search": {"plausible": plausible, "guard": {"functions": ["gcd"], "compared_tests": 4,
                                                          "compared_generated": 199}}, "confidence": "low",
              "confidence_reason": "the 2 plausible patches disagree on 57 of 203 inputs",
              "disagreement": {"kind": "patches disagree",
                               "text": "gcd(46, 436): patch #1 returns 2; patch #2 returns 1"}}
    with GitHubStandIn() as gh:
        gh.add_repo("octo/demo", default_branch="main")
        yield SimpleNamespace(repo=repo, bare=bare, result=result, gh=gh)


def publish(w, **kw):
    return publish_fix(w.repo, w.result, remote=str(w.bare), base="main", github_repo="octo/demo",
                       api_url=w.gh.api_url, token=TOKEN, log=lambda m: None, **kw)


def test_ci_holds_a_low_confidence_fix_and_opens_a_high_one(world, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    held = publish(world, min_confidence="high")
    assert held["action"] == "none" and "confidence low is below --min-confidence high" in held["held"]
    assert world.gh.requests == [] and git(world.bare, "branch", "--list", "repair-agent/*").strip() == ""
    text = summary.read_text()
    assert "no pull request (confidence: `low`)" in text and "gcd(46, 436): patch #1 returns 2" in text
    assert "#### Patch #1 (the guard's choice): mutate, mathx/gcd.py:9, `two_lines`" in text
    assert "#### Patch #2: mutate, mathx/gcd.py:9, `overfit`" in text
    assert "+        return b if a % b == 0 else 1" in text and "gcd recurses on the wrong pair." in text
    assert publish(world, min_confidence="low")["action"] == "opened"  # low: always
    world.result.update(confidence="high", confidence_reason="the 2 plausible patches agree on 203 inputs")
    opened = publish(world, min_confidence="high")
    assert opened["action"] == "updated" and opened["held"] is None
    body = world.gh.requests_to("PATCH", r"/pulls/\d+$")[-1].json["body"]
    assert "### Confidence" in body and "**high**: the 2 plausible patches agree on 203 inputs" in body
    assert "Checked: `gcd` run with each plausible patch on 4 input(s) from the tests and 199 generated." in body
    world.result.pop("confidence")  # a result from before the guard: unknown, held at high
    assert publish(world, min_confidence="high")["held"] and publish(world, min_confidence="unknown")["held"] is None


MEAN = '"""Averages."""\n\n\ndef average(a, b):\n    """The mean of two numbers."""\n    return (a + b) / 3\n'
MEAN_TESTS = ("from stats.mean import average\n\n\ndef test_zero():\n    assert average(0, 0) == 0\n\n\n"
              "def test_same():\n    assert average(3, 3) == 3\n")


def test_ci_opens_no_pull_request_at_low_confidence(tmp_path, docker_ready):
    """Mutation finds `(a * b) / 3` and `(a + b) / 2`: both pass the two tests, and disagree elsewhere."""
    repo = make(tmp_path / "repo", {"stats/__init__.py": "", "stats/mean.py": MEAN, "tests/test_mean.py": MEAN_TESTS})
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "push", "-q", str(bare), "main")
    summary = tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
           "GITHUB_STEP_SUMMARY": str(summary), "REPAIR_AGENT_SANDBOX": "docker", "REPAIR_AGENT_STRATEGIES": "mutate"}
    with GitHubStandIn() as gh:
        gh.add_repo("octo/demo")
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "ci", str(repo), "--remote", str(bare),
                               "--base", "main", "--github-repo", "octo/demo", "--github-api-url", gh.api_url,
                               "--run-dir", str(tmp_path / "runs")], env=env, capture_output=True, text=True,
                              timeout=300)
        assert gh.requests_to("POST", r"/pulls") == []
    assert proc.returncode == 1, proc.stderr
    assert git(bare, "branch", "--list", "repair-agent/*").strip() == ""
    text = summary.read_text()
    assert "no pull request (confidence: `low`)" in text and "#### Patch #2" in text
    assert "plausible patches disagree on" in text and "average(" in text
    assert "no pull request: confidence low is below --min-confidence high" in proc.stderr
    result = json.loads(next((tmp_path / "runs").glob("*/result.json")).read_text())
    assert result["confidence"] == "low" and len(result["search"]["plausible"]) == 2
    assert TOKEN not in proc.stdout + proc.stderr + text


def test_one_line_edits_of_the_same_line_that_always_agree_vote_once():
    """find_in_sorted: `(start + 1) == end` and `start == (end - 1)` are one fix written twice;
    they must not outvote `binsearch(mid + 1, end)` on line 9."""
    one_line = lambda line, note: {"patch": "-a\n+b\n", "source": "mutate", "note": note, "file": "f.py",  # noqa: E731
                                   "line": line}
    fixes = [one_line(3, "start + 1"), one_line(3, "end - 1"), one_line(9, "mid + 1")]
    targets = [{"qualname": "f", "examples": []}]
    gen = {"target": 0, "source": "generated", "passed": False, "call": {"args": [0], "kwargs": {}, "objects": []}}
    v = guard.judge(fixes, [gen, gen], vote(["-000", "-001"], ["-ooo", "-ooo"]), targets)
    assert [f["guard"]["outvoted"] for f in v["ranked"]] == [0, 0, 0] and v["confidence"] == "low"
    fixes[1]["line"] = 4  # different lines: independent evidence, a majority
    v = guard.judge(fixes, [gen, gen], vote(["-000", "-001"], ["-ooo", "-ooo"]), targets)
    assert [f["note"] for f in v["ranked"]] == ["start + 1", "end - 1", "mid + 1"]
    assert v["ranked"][2]["guard"]["outvoted"] == 1


def test_a_time_out_on_an_input_that_is_slow_for_all_is_no_disagreement():
    fixes = [{"patch": f"-a\n+{n}\n", "source": "mutate", "note": n} for n in ("x", "yy")]
    targets = [{"qualname": "f", "examples": []}]
    gen = {"target": 0, "source": "generated", "passed": False, "call": {"args": [0], "kwargs": {}, "objects": []}}
    v = guard.judge(fixes, [gen, gen], {**vote(["-00", "-01"], ["-oo", "-ot"]), "slow": [1]}, targets)
    assert v["confidence"] == "high" and v["checked"]["too_slow"] == 1
    v = guard.judge(fixes, [gen, gen], vote(["-00", "-01"], ["-oo", "-ot"]), targets)  # fast for the other: a hang
    assert v["confidence"] == "low"


def test_the_calls_come_from_the_tests_that_ran_a_changed_function_not_the_whole_suite(tmp_path, docker_ready):
    """A real project's whole suite outlasts the guard's budget (tqdm's 91 tests: 22 s against 12 s), so
    every tqdm fix was `unknown`: the calls are recorded from the failing tests and the passing ones that
    ran a line of a changed function (localization's coverage map); a slow test elsewhere no longer counts."""
    from repair_agent.nodes.localize import localize
    from repair_agent.outcomes import failing_ids
    from repair_agent.runs import RunRecorder

    repo = make(tmp_path / "repo", {"mathx/__init__.py": "", "mathx/gcd.py": GCD.format(doc=""),
                                    "tests/test_gcd.py": GCD_TESTS,
                                    "tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(15)\n"})
    scratch = patching.make_scratch(repo, tmp_path / "scratch")
    fixes = fixes_for(scratch, ["two_lines", "loop"])
    box = open_sandbox("docker", scratch, log=lambda m: None)
    deps = SimpleNamespace(workdir=scratch, sandbox=box, settings=Settings(), log=lambda m: None,
                           recorder=RunRecorder(tmp_path / "run", "r"))
    try:
        before = box.run_tests(["tests"])
        state = {"test_args": ["tests"], "tests_before": before, "failing": failing_ids(before)}
        state.update(localize(state, deps))
        assert state["covers"] and "tests/test_slow.py::test_slow" in state["covers"]["tests"]
        # gcd's calls: the failing tests and test_zero, which passes; not the slow test, which calls nothing
        assert guard.recording_tests(state, scratch, [{"file": "mathx/gcd.py", "qualname": "gcd"}]) == \
            [*state["failing"], "tests/test_gcd.py::test_zero"]
        v = guard.choose(fixes, state, deps)
        assert v["confidence"] == "high" and v["checked"]["compared_generated"] > 100, v["reason"]
        whole = guard.choose(fixes, {**state, "covers": None}, deps)  # the whole suite: 15 s > 0.6 x 20 s
        assert whole["confidence"] == "unknown"
        assert whole["reason"].endswith("recording the calls took longer than the guard's budget")
    finally:
        box.close()
