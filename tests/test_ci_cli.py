"""`repair-agent ci` end to end: the agent repairs a real repo in Docker, pushes to a bare remote
on disk and opens a PR on the loopback GitHub stand-in. The model is a SCRIPTED server (control
flow only). The token must show up nowhere: run directory, logs, container environment."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import git
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
