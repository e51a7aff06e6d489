"""Live progress of `fix` (repair_agent/progress.py), with a SCRIPTED slow model server on loopback
(tests/scripted_server.py): on a terminal (a real tmux pane, read with capture-pane) the status line
shows the node, the wait, tokens, tokens/s and candidates while the model is still answering; with
no terminal only the step lines come out."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from scripted_server import ScriptedServer, answer

CLI = [sys.executable, "-m", "repair_agent"]
WRONG = "def second(items):\n    return items[0]\n"
RIGHT = "def second(items):\n    return items[1]\n"
DELAY = 5.0  # seconds the scripted server waits before each reply


def fix_args(repo, srv, runs) -> list[str]:
    return [*CLI, "fix", str(repo), "--base-url", srv.base_url, "--run-dir", str(runs), "--strategies", "refine",
            "--sandbox", "local", "--rounds", "2", "--samples", "1"]


def test_progress_on_a_terminal_while_a_slow_scripted_server_answers(make_repo, tmp_path):
    if not shutil.which("tmux"):
        pytest.fail("tmux is missing: scripts/setup installs it")
    repo, sock, done = make_repo("wrong_index"), str(tmp_path / "tmux.sock"), tmp_path / "exit-code"
    tmux = ["tmux", "-S", sock]
    seen: list[tuple[int, int, str]] = []  # (requests received, replies sent, the pane) at each look
    with ScriptedServer([[answer(WRONG)], [answer(RIGHT)]], delay=DELAY) as srv:
        # the pane's own size, not one inherited from this process's environment
        run = shlex.join(fix_args(repo, srv, tmp_path / "runs"))
        cmd = f"env -u COLUMNS -u LINES {run}; echo $? > {done}; sleep 30"
        subprocess.run([*tmux, "new-session", "-d", "-x", "220", "-y", "50", cmd], check=True)
        try:
            deadline = time.monotonic() + 120
            while not done.exists() and time.monotonic() < deadline:
                received, answered = len(srv.requests), srv.answered
                pane = subprocess.run([*tmux, "capture-pane", "-p", "-J"], capture_output=True, text=True).stdout
                seen.append((received, answered, pane))
                time.sleep(0.5)
            final = subprocess.run([*tmux, "capture-pane", "-p", "-J"], capture_output=True, text=True).stdout
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True)
    assert done.exists() and done.read_text().strip() == "0", final
    status = re.compile(r"(\w+) · waiting for the model ([\dms]+)(.*?) · (\d+) tokens(?: \(([\d.]+) tok/s\))? · "
                        r"(\d+) candidates tried · ([\dms]+) elapsed")

    def lines(received, answered):  # the status lines seen while request `received` was unanswered
        return [m for r, a, pane in seen if r == received and a == received - 1 for m in status.finditer(pane)]

    first, second = lines(1, 0), lines(2, 1)
    panes = "\n".join(pane for *_, pane in seen[::10])
    assert first and second, "no status line while the scripted model answered:\n" + panes
    # the first answer is still coming: the node, a wait that ticks, nothing counted yet
    assert {m[1] for m in first} == {"propose"} and {m[4] for m in first} == {"0"} and {m[6] for m in first} == {"0"}
    assert len({m[2] for m in first}) >= 2, "the wait did not tick"
    # the second: the first answer's tokens and rate, its candidate counted, an estimate of the wait
    words = len(answer(WRONG).split())
    assert {m[4] for m in second} == {str(words)} and all(m[5] for m in second)
    assert {m[6] for m in second} == {"1"} and all("left at most" in m[3] for m in second)
    # the status line goes when the run ends; the log and the result stay
    assert not status.search(final) and "round 0: 1 candidate(s)" in final and "fixed" in final


def test_no_terminal_prints_one_line_per_step(make_repo, tmp_path):
    repo = make_repo("wrong_index")
    with ScriptedServer([[answer(WRONG)], [answer(RIGHT)]]) as srv:
        proc = subprocess.run(fix_args(repo, srv, tmp_path / "runs"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "round 0: 1 candidate(s)" in proc.stderr and "round 1: 1 candidate(s)" in proc.stderr
    assert "waiting for the model" not in proc.stderr and "candidates tried" not in proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith("  candidate")], proc.stderr
