"""A user's repository as it is, and the commands as a user runs them: every command ends quietly
when its reader goes away, `ci` takes the flags `fix` takes and never the repository's own
known failures, the sandbox's Python is the repository's, and a run that never needs the model
never starts it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from helpers import CLI
from typer.testing import CliRunner

from repair_agent.bench import report, runner
from repair_agent.cli import app

SHELL_CLI = " ".join(shlex.quote(part) for part in CLI)


def shell(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`script` through a real shell; it echoes the pipeline's statuses last."""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout)


def test_explain_into_head_exits_141_quietly(make_repo, runs_root, tmp_path):
    """`explain ... 2>&1 | head -1`: the reader goes after the first log line while the run goes on;
    `explain ... | head -n 0`: the result page finds no reader. Both exit 141 and say nothing more."""
    repo = make_repo("passing")
    explain = f"{SHELL_CLI} explain {repo} --sandbox local --run-dir {runs_root}"
    err = tmp_path / "stderr.txt"
    proc = shell(f'{explain} 2>&1 | head -1; echo "status ${{PIPESTATUS[0]}}"')
    first, status = proc.stdout.splitlines()
    assert first.startswith("run ") and status == "status 141", proc.stdout + proc.stderr
    proc = shell(f'{explain} 2>{err} | head -n 0; echo "status ${{PIPESTATUS[0]}}"')
    assert proc.stdout.splitlines() == ["status 141"], proc.stdout + proc.stderr
    log = err.read_text()
    assert log.startswith("run ") and "Traceback" not in log and "error" not in log.lower(), log
    assert list(runs_root.glob("*/scratch")) == []  # the runs' trees are gone, their records stay
    assert len(list(runs_root.glob("*/run.json"))) == 2


def no_docker_env() -> dict:
    """DOCKER_HOST points nowhere: a run stops (exit 3) at the sandbox, after run.json records its settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIR_AGENT_")}
    return {**env, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "NO_PROXY": "*"}


def test_explain_takes_the_sandbox_flags_of_fix(make_repo, runs_root):
    proc = subprocess.run([*CLI, "explain", str(make_repo("wrong_index")), "--run-dir", str(runs_root),
                           "--sandbox", "docker", "--image", "repair-agent/base:trixie", "--deps", "attrs,idna",
                           "--known-failures", "tests/test_core.py::test_first", "--no-build", "--test-timeout", "90",
                           "--no-worker", "--index-url", "http://127.0.0.1:9/simple"],
                          env=no_docker_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "Docker engine not reachable" in proc.stderr, proc.stderr
    (run,) = runs_root.iterdir()
    s = json.loads((run / "run.json").read_text())["settings"]
    assert (s["sandbox"], s["image"], s["deps"], s["known_failures"]) == \
        ("docker", "repair-agent/base:trixie", ["attrs,idna"], ["tests/test_core.py::test_first"])
    assert (s["build_image"], s["test_timeout_s"], s["use_worker"], s["use_trace"]) == (False, 90, False, True)


def test_bench_takes_deps_image_and_no_build(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(runner, "run_benchmark", lambda tasks, settings, out, **kw: seen.update(settings=settings) or {})
    monkeypatch.setattr(report, "print_summary", lambda *a, **kw: None)
    res = CliRunner().invoke(app, ["bench", "quixbugs", "--ids", "gcd", "--out", str(tmp_path), "--deps", "attrs",
                                   "--image", "repair-agent/base:bullseye", "--no-build", "--no-worker"])
    assert res.exit_code == 0, res.output
    s = seen["settings"]
    assert (s.deps, s.image, s.build_image, s.use_worker) == (["attrs"], "repair-agent/base:bullseye", False, False)
