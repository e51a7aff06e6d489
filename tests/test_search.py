"""The search end to end: `fix --strategies ...` on real git repositories, tests in Docker.

`--strategies mutate` needs no model at all. The infill test's model is a SCRIPTED server on
loopback (tests/scripted_server.py): it checks the control flow from a model's line to a validated
fix and its explanation, which a real model cannot drive deterministically.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from helpers import tree_hash
from scripted_server import ScriptedServer

from repair_agent.policy import Budget, candidate_timeout, rerun_timeout
from repair_agent.search import SearchContext
from repair_agent.search.schedule import run_search

CLI = [sys.executable, "-m", "repair_agent"]


def run(repo, *args, runs_root, timeout=300):
    return subprocess.run([*CLI, "fix", str(repo), "--run-dir", str(runs_root), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_mutate_alone_fixes_without_any_model(make_repo, runs_root, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    before = tree_hash(repo)
    out = tmp_path / "result.json"
    proc = run(repo, "--strategies", "mutate", "--json", str(out), runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and result["source"] == "mutate"
    assert result["tokens"] == {"prompt": 0, "completion": 0}
    assert result["model"] == ""
    assert "serving" not in proc.stderr and "llama" not in proc.stderr.lower()  # no server was started
    assert "-    return items[2]\n+    return items[1]\n" in result["patch"]
    assert sum(ln.startswith("+") and not ln.startswith("+++") for ln in result["patch"].splitlines()) == 1
    assert result["tests_after"]["failed"] == 0 and result["tests_after"]["passed"] == 4
    assert result["search"]["tried"] >= 1 and "mutate" in result["search"]["by_source"]
    assert "no model was asked" in result["root_cause"]
    assert tree_hash(repo) == before  # the user's tree is untouched


def test_a_test_that_failed_before_and_is_not_asked_about_is_the_baseline(make_repo, runs_root, tmp_path,
                                                                          docker_ready):
    """Issue 21: a test that fails before the bug's fix too (here: always) must not block every fix."""
    repo = make_repo("wrong_index")
    (repo / "tests" / "test_env.py").write_text("def test_needs_a_service():\n    assert False, 'no service here'\n")
    out = tmp_path / "result.json"
    proc = run(repo, "--strategies", "mutate", "--known-failures", "tests/test_env.py", "--json", str(out),
               runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and "+    return items[1]" in result["patch"]
    assert result["baseline"] == ["tests/test_env.py::test_needs_a_service"]
    assert result["tests_after"]["failed"] == 1 and result["tests_after"]["passed"] == 4  # the baseline, apart
    assert "baseline: 1 test(s) failed before" in proc.stdout
    # not named: the test is one of those to fix, which no mutation can, so there is no fix
    proc = run(repo, "--strategies", "mutate", "--json", str(out), runs_root=runs_root)
    result = json.loads(out.read_text())
    assert proc.returncode == 1 and result["status"] == "not_fixed" and result["baseline"] == []


def test_a_real_fix_shape_is_found_where_only_an_anti_pattern_passed(make_repo, runs_root, tmp_path, docker_ready):
    """Before the real fix shapes, the only mutant that passed turned `while True` into `while hare`
    (detect_cycle then returns None for False, which the truthiness tests accept: an anti-pattern).
    Now the search writes the guard the real fix needs (the hare without a successor ends the walk),
    not suspect, and keeps the outcome of the passing tests' calls: high."""
    out = tmp_path / "result.json"
    proc = run(make_repo("falsy_cycle"), "--strategies", "mutate", "--json", str(out), runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and "+    while hare:" not in result["patch"]
    assert '+        if getattr(hare, "successor", None) is None:' in result["patch"]
    assert not any(p["suspect"] for p in result["search"]["plausible"])
    assert result["confidence"] == "high"


def test_when_nothing_fixes_the_closest_attempt_is_shown_with_its_diff(make_repo, runs_root, tmp_path,
                                                                       docker_ready):
    """clamp lacks its upper bound, a statement no mutation adds. `return value` -> `return high`
    passes both failing tests and breaks another, which runs the changed line: of the candidates
    the closest to a fix, rejected by the covering tests without a run of the full suite."""
    out = tmp_path / "result.json"
    proc = run(make_repo("missing_check"), "--strategies", "mutate", "--json", str(out), runs_root=runs_root)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "not_fixed" and result["patch"] == ""
    attempt = result["best_attempt"]
    assert attempt["source"] == "mutate" and attempt["note"] == "`value` -> `high`"
    assert "-    return value\n+    return high\n" in attempt["patch"]
    assert attempt["tests"]["failing"]["passed"] == 2 == attempt["failing_total"]
    assert attempt["tests"]["covering"]["failing"] == ["tests/test_core.py::test_inside"]
    assert "suite" not in attempt["tests"] and "the full suite did not run" in attempt["reason"]
    assert "closest attempt, not a fix" in proc.stdout and "+    return high" in proc.stdout
    assert json.loads((runs_root / result["run_id"] / "result.json").read_text())["best_attempt"] == attempt


def test_an_unknown_strategy_is_bad_input(make_repo, runs_root):
    proc = run(make_repo("wrong_index"), "--strategies", "mutate,guess", runs_root=runs_root)
    assert proc.returncode == 2
    assert "unknown strategy guess" in proc.stderr


def test_infill_fix_end_to_end_with_a_scripted_server(make_repo, runs_root, tmp_path, docker_ready):
    """SCRIPTED model (control flow only): of two infill samples for the top line, in two batches of
    one, the first is wrong and the second right; the search stops there and the model explains the fix."""
    repo = make_repo("wrong_index")
    out = tmp_path / "result.json"
    cause = "`items[2]` points at the third element, not the second."  # names the change, so it is kept
    explanation = f"[MONOLOGUE]\n### Execution Simulation\nitems[2] is 6.\n\n### Root Cause Analysis\n{cause}\n"
    with ScriptedServer([["    return items[0]"], ["    return items[1]"], [explanation]]) as server:
        proc = run(repo, "--strategies", "infill", "--base-url", server.base_url, "--infill-samples", "2",
                   "--search-lines", "1", "--no-trace", "--json", str(out), runs_root=runs_root)
        paths = [r["path"] for r in server.requests]
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and result["source"] == "infill"
    assert "-    return items[2]\n+    return items[1]\n" in result["patch"]
    assert result["search"]["tried"] == 2 and result["search"]["by_source"]["infill"]["tried"] == 2
    assert result["root_cause"] == cause
    assert len(paths) == 3  # a request per batch of samples (the server takes `n`), one to explain
    assert result["tokens"]["prompt"] == 200  # 100 per request: the mask's prompt counted once, not per batch


def test_schedule_dedupes_and_stops_at_the_first_fix(tmp_path):
    """The schedule on its own, with a check that only reads the candidate's text."""
    (tmp_path / "m.py").write_text("def f(a, b):\n    return a < b\n")
    ctx = SearchContext(root=tmp_path, settings=None)
    checked = []

    def check(edit):
        checked.append(edit["text"])
        return {"status": "fixed" if "a <= b" in edit["text"] else "failed"}

    loc = {"file": "m.py", "function": "f", "line": 2, "score": 1.0}
    out = run_search([("mutate", [loc, loc])], ctx, check, Budget())
    assert out.fixes and "a <= b" in checked[-1] and len(out.fixes) == 1
    assert len(checked) == len(set(checked)) == out.tried
    out = run_search([("mutate", [loc, loc])], ctx, lambda e: {"status": "failed"}, Budget())
    assert not out.fixes and out.stop_reason == "every candidate of the search tried"
    assert out.by_source["mutate"]["tried"] == out.tried  # the second, equal location added nothing
    out = run_search([("mutate", [loc])], ctx, lambda e: {"status": "failed"}, Budget(candidates=3))
    assert out.tried == 3 and out.stop_reason == "3 candidates tried"


def test_schedule_gathers_plausible_fixes_on_the_fix_line_only(tmp_path):
    (tmp_path / "m.py").write_text("def f(a, b):\n    c = a < b\n    return c\n")
    ctx = SearchContext(root=tmp_path, settings=None)
    lines = []

    def check(edit):  # `<=` and `>=` in the comparison both "pass"; nothing on line 3 does
        lines.append(edit["line"])
        text = edit["text"].splitlines()[1]
        return {"status": "fixed" if ("<=" in text or ">=" in text) else "failed", "text": text}

    at = [{"file": "m.py", "function": "f", "line": n, "score": 1.0} for n in (2, 3)]
    out = run_search([("mutate", at)], ctx, check, Budget(plausible=3))
    assert [f["text"].strip() for f in out.fixes] == ["c = a <= b", "c = a >= b"]
    assert set(lines) == {2}  # line 2 searched to its end, line 3 never
    assert out.stop_reason == "the fix's line searched to its end"
    out = run_search([("mutate", at)], ctx, check, Budget(plausible=1))
    assert len(out.fixes) == 1 and out.stop_reason == "1 plausible fix(es) found"


def test_timeouts_derive_from_the_original_run():
    """A candidate gets ten times the slowest test that ended (at least 1 s); rerunning the original
    code (coverage, trace) keeps the full per-test limit unless a test hung, then a few seconds."""
    settings = SimpleNamespace(per_test_timeout_s=5)

    def state(*seconds):
        return {"tests_before": {"cases": [{"seconds": s} for s in seconds]}}

    assert candidate_timeout(state(0.01, 0.3), settings) == 3.0
    assert candidate_timeout(state(0.01), settings) == 1.0 and candidate_timeout(state(2.0), settings) == 5.0
    assert rerun_timeout(state(0.01, 0.3), settings) == 5  # nothing hung: the user's limit
    assert rerun_timeout(state(0.01, 5.0), settings) == 2  # one hung: it would hang again
    assert rerun_timeout(state(5.0, 5.0), SimpleNamespace(per_test_timeout_s=1)) == 1  # never above the limit
