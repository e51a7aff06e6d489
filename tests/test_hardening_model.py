"""Hardening, part 2: broken models and hostile candidates, through the real CLI.

The model is a SCRIPTED server on loopback (tests/scripted_server.py, extended here with request
timestamps): it replays fixed answers, HTTP errors and delays so that each fault is exact. Every
run must end with one clear line, a defined exit code, the user's tree byte-identical and no
container or temp dir left behind.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from helpers import FIXTURES, RIGHT, error_lines, fixture_repo, leftovers, run_cli, tree_hash
from scripted_server import ScriptedServer, answer

pytestmark = pytest.mark.docker


class StampedList(list):
    def append(self, item):
        item["t"] = time.monotonic()
        super().append(item)


class TimedScriptedServer(ScriptedServer):
    """The scripted server, with the time each request arrived (to see the retry backoff)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.requests = StampedList()


def test_model_connection_refused_exits_3(guarded, runs_root, tmp_path):
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", f"http://127.0.0.1:{port}/v1",
                   "--model", "m", "--sandbox", "docker", "--rounds", "1")
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert "connection refused" in line.lower() and "Traceback" not in proc.stderr


@pytest.mark.parametrize("status", [500, 429])
def test_http_errors_are_retried_with_backoff_then_exit_3(status, guarded, runs_root, tmp_path):
    with TimedScriptedServer([], status=status) as srv:
        proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                       "--rounds", "1", "--no-sbfl")
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert f"scripted {status}" in line and "Traceback" not in proc.stderr
    times = [r["t"] for r in srv.requests]
    assert len(times) == 4  # one try and three retries
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.9  # backoff 1, 2, 4 s


def test_slow_model_past_the_timeout_exits_3(guarded, runs_root, tmp_path):
    with TimedScriptedServer([[answer(RIGHT)]], delay=5) as srv:
        start = time.monotonic()
        proc = run_cli(guarded, runs_root, tmp_path / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                       "--rounds", "1", "--no-sbfl", env={"REPAIR_AGENT_MODEL_TIMEOUT_S": "1"})
        took = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    (line,) = error_lines(proc)
    assert "timed out" in line.lower() and "Traceback" not in proc.stderr
    assert len(srv.requests) == 4 and took < 60


# -- hostile or useless answers: one run, two rounds, every kind of bad candidate -----------------
CORE = (FIXTURES / "wrong_index" / "mylist" / "core.py").read_text()
TESTS = (FIXTURES / "wrong_index" / "tests" / "test_core.py").read_text()


def fenced_diff(diff: str) -> str:
    return f"Here is the fix.\n```diff\n{diff}```\n"


def delete_file_diff(path: str, text: str) -> str:
    lines = text.splitlines()
    return (f"--- a/{path}\n+++ /dev/null\n@@ -1,{len(lines)} +0,0 @@\n" + "".join(f"-{ln}\n" for ln in lines))


def new_file_diff(path: str, text: str) -> str:
    lines = text.splitlines()
    return (f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{ln}\n" for ln in lines))


BAD_ANSWERS = {
    "empty": "",
    "prose": "The bug is in second(): it reads the wrong index. Use the second element instead.",
    "syntax_error": answer("def second(items)\n    return items[1]\n"),
    "diff_does_not_apply": fenced_diff("--- a/mylist/core.py\n+++ b/mylist/core.py\n@@ -3,3 +3,3 @@\n"
                                       " def first(items):\n-    return items[7]\n+    return items[8]\n \n"),
    "deletes_the_test": fenced_diff(delete_file_diff("tests/test_core.py", TESTS)),
    "edits_the_test": fenced_diff("--- a/tests/test_core.py\n+++ b/tests/test_core.py\n@@ -8,3 +8,3 @@\n"
                                  " def test_second():\n-    assert second([4, 5, 6]) == 5\n"
                                  "+    assert second([4, 5, 6]) == 6\n \n"),
    "conftest_forces_green": fenced_diff(new_file_diff(
        "conftest.py", "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport():\n"
                       "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n")),
    "skips_the_failing_tests": answer("import pytest\n\n\ndef second(items):\n    pytest.skip('not today')\n"),
    "sys_exit_at_import": fenced_diff("--- a/mylist/core.py\n+++ b/mylist/core.py\n@@ -1,2 +1,5 @@\n"
                                      " \"\"\"Small list helpers.\"\"\"\n+import sys\n+\n+sys.exit(0)\n \n"),
    "os_exit_in_the_code": answer("import os\n\n\ndef second(items):\n    os._exit(0)\n"),
    "pytest_ini_deselects": fenced_diff(new_file_diff("pytest.ini", "[pytest]\naddopts = -k \"not second\"\n")),
}
EXPECTED = {  # kind -> (status, a phrase of the reason)
    "empty": ("no_code", "no code in the answer"),
    "prose": ("no_code", "no code in the answer"),
    "syntax_error": ("no_code", "no parsable code in the answer"),
    "diff_does_not_apply": ("not_applicable", "diff does not apply"),
    "deletes_the_test": ("test_edit", "tests/test_core.py"),
    "edits_the_test": ("test_edit", "tests/test_core.py"),
    "conftest_forces_green": ("test_edit", "conftest.py"),
    "skips_the_failing_tests": ("failed", "did not run"),
    "sys_exit_at_import": ("failed", "the failing tests did not run: pytest::internal errored first"),
    "os_exit_in_the_code": ("failed", "exited with code 0 before it reported"),
    "pytest_ini_deselects": ("failed", "did not run"),
}
KINDS = list(BAD_ANSWERS)


@pytest.fixture(scope="module")
def bad_answers_run(tmp_path_factory, docker_ready):
    """Round 0 answers empty; round 1 asks for len(KINDS) - 1 samples in one request."""
    base = tmp_path_factory.mktemp("bad_answers")
    repo = fixture_repo("wrong_index", base / "repo")
    before = tree_hash(repo)
    out = base / "r.json"
    with ScriptedServer([[BAD_ANSWERS[KINDS[0]]], [BAD_ANSWERS[k] for k in KINDS[1:]]]) as srv:
        proc = run_cli(repo, base / "runs", base / "tmp", "--base-url", srv.base_url, "--sandbox", "docker",
                       "--rounds", "2", "--samples", str(len(KINDS) - 1), "--json", str(out), "--no-sbfl",
                       timeout=400)
    result = json.loads(out.read_text()) if out.exists() else {}
    cands = [c for r in result.get("rounds", []) for c in r["candidates"]]
    return {"proc": proc, "result": result, "by_kind": dict(zip(KINDS, cands)), "repo": repo,
            "before": before, "leftovers": leftovers(base / "tmp", base / "runs")}


def test_bad_answers_end_in_no_fix_exit_1(bad_answers_run):
    proc, result = bad_answers_run["proc"], bad_answers_run["result"]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and error_lines(proc) == []
    assert result["status"] == "not_fixed" and result["patch"] == ""
    assert len(bad_answers_run["by_kind"]) == len(KINDS)
    assert tree_hash(bad_answers_run["repo"]) == bad_answers_run["before"]
    assert bad_answers_run["leftovers"] == {"containers": 0, "temp": []}


@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_answer_is_rejected_with_its_reason(kind, bad_answers_run):
    cand = bad_answers_run["by_kind"][kind]
    status, phrase = EXPECTED[kind]
    assert cand["status"] == status, cand
    assert phrase in cand["reason"], cand["reason"]
