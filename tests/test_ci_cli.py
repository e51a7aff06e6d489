"""`repair-agent ci` end to end: the agent repairs a real repo in Docker, pushes to a bare remote
on disk and opens a PR on the loopback GitHub stand-in. The model is a SCRIPTED server (control
flow only). The token must show up nowhere: run directory, logs, container environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import git
from github_standin import GitHubStandIn
from scripted_server import ScriptedServer, answer

from repair_agent.sandbox import DockerSandbox

TOKEN = "ghp_CiTokenThatMustNeverLeak0123456789"
RIGHT = "def second(items):\n    return items[1]\n"


def ci(repo, srv, gh, bare, runs, *extra):
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([sys.executable, "-m", "repair_agent", "ci", str(repo), "--remote", str(bare),
                           "--base", "main", "--github-repo", "octo/demo", "--github-api-url", gh.api_url,
                           "--run-dir", str(runs), *extra],
                          env={**env, "REPAIR_AGENT_BASE_URL": srv.base_url, "REPAIR_AGENT_SANDBOX": "docker",
                               "REPAIR_AGENT_STRATEGIES": "refine"},  # the scripted model decides the outcome
                          capture_output=True, text=True, timeout=300)


def test_ci_opens_then_updates_one_pr_and_never_leaks_the_token(make_repo, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "push", "-q", str(bare), "main")
    runs = tmp_path / "runs"
    with GitHubStandIn() as gh:
        gh.add_repo("octo/demo")
        with ScriptedServer([[answer(RIGHT, "Index 2 is the third element.")]]) as srv:
            first = ci(repo, srv, gh, bare, runs)
        assert first.returncode == 0, first.stderr
        branches = git(bare, "branch", "--list", "repair-agent/*").split()
        assert len(branches) == 1
        assert git(bare, "rev-list", "--count", f"main..{branches[0]}").strip() == "1"
        opened = gh.requests_to("POST", r"/pulls$")
        assert len(opened) == 1 and opened[0].json["base"] == "main" and opened[0].json["head"] == branches[0]
        assert "Index 2 is the third element." in opened[0].json["body"]
        with ScriptedServer([[answer(RIGHT, "Index 2 is the third element.")]]) as srv:
            second = ci(repo, srv, gh, bare, runs)
        assert second.returncode == 0, second.stderr
        assert len(gh.requests_to("POST", r"/pulls$")) == 1 and len(gh.pulls("octo/demo", "open")) == 1
        bodies = " ".join(str(r.json) for r in gh.requests)
    logs = first.stdout + first.stderr + second.stdout + second.stderr
    recorded = " ".join(p.read_text(errors="replace") for p in runs.rglob("*") if p.is_file()
                        and p.suffix in (".jsonl", ".json"))
    for text in (logs, recorded, bodies, git(bare, "log", "--all", "--format=%B")):
        assert TOKEN not in text


def test_no_fix_means_no_push_and_no_pr(make_repo, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "push", "-q", str(bare), "main")
    with GitHubStandIn() as gh:
        gh.add_repo("octo/demo")
        with ScriptedServer([["no idea"]]) as srv:
            proc = ci(repo, srv, gh, bare, tmp_path / "runs", "--test", "tests")
            proc_env = proc
        assert gh.requests_to("POST", r"/pulls") == []
    assert proc_env.returncode == 1, proc_env.stderr
    assert git(bare, "branch", "--list", "repair-agent/*").strip() == ""


def test_token_never_enters_the_container(make_repo, monkeypatch, docker_ready):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    box = DockerSandbox(make_repo("passing"), log=lambda m: None)
    try:
        box.run_tests([])
        env = box.container.attrs["Config"]["Env"]
        rc, out = box.run(["env"])
    finally:
        box.close()
    assert env and not any(TOKEN in e or e.startswith("GITHUB_TOKEN") for e in env)
    assert rc == 0 and "PYTHONPATH" in out and TOKEN not in out


SHARED_FLAGS = {"--base-url": "http://127.0.0.1:9/v1", "--model": "m", "--model-path": "/m.gguf",
                "--backend": "transformers", "--profile": "generic-chat", "--rounds": "2", "--samples": "4", "--test-timeout": "90",
                "--strategies": "mutate,refine", "--search-lines": "3", "--max-candidates": "7",
                "--infill-samples": "5", "--plausible": "1", "--sandbox": "docker", "--image": "repair-agent/base:trixie",
                "--deps": "attrs", "--known-failures": "tests/test_core.py::test_first"}
SHARED_SWITCHES = ["--no-build", "--allow-test-edits", "--no-trace", "--no-sbfl", "--no-worker"]
FIX_ONLY = {"--apply", "--branch", "--add-tests", "--json", "--resume", "--quiet", "--trust-repo-config"}  # not settings, or never in ci


def help_flags(cmd):
    proc = subprocess.run([sys.executable, "-m", "repair_agent", cmd, "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60)
    return {w.rstrip(",:.)") for w in proc.stdout.split() if w.startswith("--")}


def test_ci_takes_every_setting_flag_of_fix():
    shared = {*SHARED_FLAGS, *SHARED_SWITCHES, "--test", "--run-dir", "--index-url", "--find-links"}
    assert shared <= help_flags("fix")
    assert help_flags("fix") - FIX_ONLY - {"--help"} <= help_flags("ci")


def test_a_ci_flag_reaches_the_settings(make_repo, tmp_path):
    """No Docker (DOCKER_HOST points nowhere): the run stops at the sandbox, after run.json is written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIR_AGENT_")}
    env.update(DOCKER_HOST="unix:///nonexistent/docker.sock", REPAIR_AGENT_SANDBOX="docker",
               REPAIR_AGENT_ROUNDS="9", GITHUB_TOKEN=TOKEN)
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "ci", str(make_repo("wrong_index")), "--dry-run",
                           "--github-repo", "octo/demo", "--run-dir", str(runs),
                           *[x for kv in SHARED_FLAGS.items() for x in kv], *SHARED_SWITCHES], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "Docker engine not reachable" in proc.stderr, proc.stderr
    (run,) = runs.iterdir()
    info = json.loads((run / "run.json").read_text())
    s = info["settings"]
    assert (s["base_url"], s["model"], s["model_path"], s["backend"], s["profile"]) == \
        ("http://127.0.0.1:9/v1", "m", "/m.gguf", "transformers", "generic-chat")
    assert (s["rounds"], s["samples"], s["test_timeout_s"], s["strategies"]) == (2, 4, 90, "mutate,refine")
    assert (s["search_lines"], s["max_candidates"], s["infill_samples"], s["plausible"]) == (3, 7, 5, 1)
    assert (s["sandbox"], s["image"], s["deps"], s["known_failures"]) == \
        ("docker", "repair-agent/base:trixie", ["attrs"], ["tests/test_core.py::test_first"])
    assert (s["build_image"], s["allow_test_edits"], s["use_trace"], s["use_sbfl"], s["use_worker"]) == \
        (False, True, False, False, False)
    assert info["settings_source"]["rounds"] == "flag"  # the flag beats REPAIR_AGENT_ROUNDS
