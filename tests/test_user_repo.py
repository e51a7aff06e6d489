"""A user's repository as it is, and the commands as a user runs them: every command ends quietly
when its reader goes away, `ci` takes the flags `fix` takes and never the repository's own
known failures, the sandbox's Python is the repository's, and a run that never needs the model
never starts it."""

from __future__ import annotations

import shlex
import subprocess

from helpers import CLI

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
