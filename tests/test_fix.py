"""`repair-agent fix` end to end on real git repositories, tests in Docker.

The model here is a SCRIPTED server on loopback (tests/scripted_server.py): these tests check the
loop's control flow (refinement, validation, --apply/--branch, exit codes), which a real model
cannot drive deterministically. Real-model tests live in test_llamacpp_real.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import git, tree_hash
from scripted_server import ScriptedServer, answer

from repair_agent.sandbox import DockerSandbox

CLI = [sys.executable, "-m", "repair_agent"]
WRONG = "def second(items):\n    return items[0]\n"
RIGHT = "def second(items):\n    \"\"\"Return the second element of a list.\"\"\"\n    return items[1]\n"


def fix(repo, server, *args, runs_root, timeout=300):
    cmd = [*CLI, "fix", str(repo), "--base-url", server.base_url, "--run-dir", str(runs_root), "--strategies", "refine",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def suite_passes_with(patch: str, make_repo, name: str) -> bool:
    """Apply the reported diff to a clean copy and run the full suite in the Docker sandbox."""
    clean = make_repo(name, dest=name + "-clean")
    subprocess.run(["git", "apply", "-"], input=patch, text=True, cwd=clean, check=True)
    box = DockerSandbox(clean, log=lambda m: None)
    try:
        run = box.run_tests([])
    finally:
        box.close()
    return bool(run["cases"]) and all(c["outcome"] == "passed" for c in run["cases"])


def test_fixes_wrong_index_after_a_refinement_round(make_repo, runs_root, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    before = tree_hash(repo)
    out = tmp_path / "result.json"
    with ScriptedServer([[answer(WRONG)], [answer(WRONG), answer(RIGHT, "It reads index 2, not 1.")]]) as srv:
        proc = fix(repo, srv, "--sandbox", "docker", "--samples", "2", "--json", str(out), runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and result["fixed_round"] == 1
    assert result["root_cause"] == "It reads index 2, not 1."  # the model's own fix keeps its monologue's cause
    ev = result["evidence"]  # and gets the evidence, read from the traces, as a search fix does
    assert (ev["changed_before"], ev["changed_after"], ev["computed_before"], ev["computed_after"]) == (
        "items[2]", "items[1]", "returned 6", "returned 5")
    assert "-    return items[2]" in result["patch"] and "+    return items[1]" in result["patch"]
    assert result["tests_before"]["failed"] == 2 and result["tests_after"]["failed"] == 0
    assert result["tests_after"]["passed"] == 4
    assert [c["status"] for c in result["rounds"][0]["candidates"]] == ["failed"]
    assert len(srv.requests) == 2 and srv.requests[1]["body"]["n"] == 2  # samples in ONE request
    assert srv.requests[0]["body"]["temperature"] == 0.0 and srv.requests[1]["body"]["temperature"] == 0.8
    assert "items[0]" in srv.requests[1]["body"]["messages"][-1]["content"]  # the previous attempt fed back
    assert tree_hash(repo) == before  # no --apply: the user's tree is byte-identical
    assert suite_passes_with(result["patch"], make_repo, "wrong_index")
    records = [json.loads(line) for line in (runs_root / result["run_id"] / "records.jsonl").read_text().splitlines()]
    assert {"reproduce", "localize", "propose", "validate", "refine", "report"} <= {r["event"] for r in records}


def test_two_module_bug_in_helper_and_branch(make_repo, runs_root, docker_ready):
    repo = make_repo("two_module")
    head = git(repo, "rev-parse", "HEAD").strip()
    fixed = "def apply_discount(price, percent):\n    return price - price * percent / 100\n"
    with ScriptedServer([[answer(fixed, "Divides by 10 instead of 100.")]]) as srv:
        proc = fix(repo, srv, "--sandbox", "docker", "--branch", "fix-discount", runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "rev-list", "--count", f"{head}..fix-discount").strip() == "1"
    assert git(repo, "rev-parse", "HEAD").strip() == head  # the checkout is left alone
    assert git(repo, "status", "--porcelain") == ""
    patch = git(repo, "diff", head, "fix-discount")
    assert "percent / 100" in patch and "pricing.py" in patch
    assert suite_passes_with(patch, make_repo, "two_module")


def test_apply_writes_the_fix(make_repo, runs_root, docker_ready):
    repo = make_repo("wrong_index")
    with ScriptedServer([[answer(RIGHT)]]) as srv:
        proc = fix(repo, srv, "--sandbox", "docker", "--apply", runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    assert "items[1]" in (repo / "mylist" / "core.py").read_text()


def test_no_fix_exits_1_and_keeps_the_tree(make_repo, runs_root, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    before = tree_hash(repo)
    out = tmp_path / "r.json"
    with ScriptedServer([[answer(WRONG)], [answer(WRONG)] * 2, ["I am not sure what is wrong."] * 2]) as srv:
        proc = fix(repo, srv, "--sandbox", "docker", "--samples", "2", "--rounds", "3", "--json", str(out),
                   "--apply", runs_root=runs_root)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "not_fixed" and result["patch"] == ""
    statuses = [c["status"] for r in result["rounds"] for c in r["candidates"]]
    assert statuses == ["failed", "failed", "failed", "no_code", "no_code"]
    assert result["stop_reason"] == "all 3 rounds used"
    assert tree_hash(repo) == before


def test_test_edit_is_rejected(make_repo, runs_root, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    cheat = ("```diff\n--- a/tests/test_core.py\n+++ b/tests/test_core.py\n@@ -8,3 +8,3 @@\n"
             " def test_second():\n-    assert second([4, 5, 6]) == 5\n+    assert second([4, 5, 6]) == 6\n \n```\n")
    out = tmp_path / "r.json"
    with ScriptedServer([[cheat]]) as srv:
        proc = fix(repo, srv, "--sandbox", "docker", "--rounds", "1", "--json", str(out), runs_root=runs_root)
    assert proc.returncode == 1, proc.stderr
    cand = json.loads(out.read_text())["rounds"][0]["candidates"][0]
    assert cand["status"] == "test_edit" and "tests/test_core.py" in cand["reason"]


def test_passing_repo_reports_no_failures(make_repo, runs_root, tmp_path, docker_ready):
    repo = make_repo("passing")
    out = tmp_path / "r.json"
    with ScriptedServer([]) as srv:
        proc = fix(repo, srv, "--sandbox", "docker", "--json", str(out), runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "no_failures" and result["tests_before"]["passed"] == 1
    assert srv.requests == []  # the model is never asked
    assert result["sandbox"] == "docker"  # the sandbox that ran, and who chose it
    assert {"base_url": "flag", "strategies": "flag", "sandbox": "flag"}.items() <= result["settings_source"].items()


@pytest.mark.parametrize("case, message", [
    ("missing", "path does not exist"),
    ("not_git", "not a git repository"),
    ("no_tests", "no tests collected"),
    ("hangs", "timed out"),
])
def test_bad_input_is_one_line_and_exit_2(case, message, make_repo, runs_root, tmp_path, docker_ready):
    repo = {"missing": lambda: tmp_path / "nope", "not_git": lambda: tmp_path,
            "no_tests": lambda: make_repo("no_tests"), "hangs": lambda: make_repo("hangs")}[case]()
    with ScriptedServer([]) as srv:
        proc = fix(repo, srv, "--sandbox", "docker", "--test-timeout", "5", runs_root=runs_root)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]


def test_model_refusing_connections_exits_3(make_repo, runs_root, docker_ready):
    import socket

    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = make_repo("wrong_index")
    proc = subprocess.run([*CLI, "fix", str(repo), "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m", "--strategies", "refine",
                           "--sandbox", "docker", "--run-dir", str(runs_root)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "connection" in proc.stderr.lower() and "error:" in proc.stderr


def test_model_dies_mid_run_then_resume_finishes(make_repo, runs_root, tmp_path, docker_ready):
    """The server goes away after round 0: exit 3, round 0 kept; --resume on a new server fixes it."""
    import time

    repo = make_repo("wrong_index")
    with ScriptedServer([[answer(WRONG)]]) as srv:
        proc = subprocess.Popen([*CLI, "fix", str(repo), "--base-url", srv.base_url, "--sandbox", "docker", "--strategies", "refine",
                                 "--run-dir", str(runs_root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.time() + 120
        while not srv.requests and time.time() < deadline:
            time.sleep(0.1)
    _, err = proc.communicate(timeout=300)  # the server is gone now: round 1 cannot be asked
    assert proc.returncode == 3, err
    assert "error:" in err and "connection" in err.lower()
    (run_dir,) = runs_root.iterdir()
    events = [json.loads(line)["event"] for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert events.count("propose") == 1 and "validate" in events and "report" not in events
    out = tmp_path / "r.json"
    with ScriptedServer([[answer(RIGHT)] * 3]) as srv:
        proc = fix(repo, srv, "--resume", run_dir.name, "--json", str(out), runs_root=runs_root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "fixed" and result["fixed_round"] == 1 and result["run_id"] == run_dir.name
    assert len(srv.requests) == 1  # round 0 was not asked again
    events = [json.loads(line)["event"] for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert events.count("propose") == 2 and events[-1] == "result"
