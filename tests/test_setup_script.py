"""scripts/setup's progress lines (scripts/progress.sh), run for real on short commands; the setup
itself (apt, dockerd, the llama.cpp build) is only parsed here: it takes up to 20 minutes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).parent.parent / "scripts"


def bash(script: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"set -euo pipefail; . {SCRIPTS / 'progress.sh'}; {script}"],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env})


def test_setup_parses_and_wraps_the_llama_cpp_build():
    assert subprocess.run(["bash", "-n", str(SCRIPTS / "setup")]).returncode == 0
    setup = (SCRIPTS / "setup").read_text()
    pip_llama = [ln for ln in setup.splitlines() if "pip install" in ln and "llama-cpp-python" in ln]
    assert len(pip_llama) == 2 and all(ln.strip().startswith("alive ") for ln in pip_llama), pip_llama
    assert "7 to 20 min" in setup and ". scripts/progress.sh" in setup


def test_a_line_per_step_with_the_time_so_far():
    proc = bash("step one; sleep 1.2; step two")
    assert proc.returncode == 0, proc.stderr
    times = re.findall(r"^== \[(\d+)m(\d\d)s\] (one|two)$", proc.stdout, re.M)
    assert [t[2] for t in times] == ["one", "two"] and int(times[1][1]) >= 1, proc.stdout


def test_alive_says_a_long_command_still_runs_and_keeps_its_status():
    proc = bash("alive 'pip (building llama.cpp)' sleep 3.5", ALIVE_EVERY="1")
    assert proc.returncode == 0, proc.stderr
    lines = re.findall(r"^   pip \(building llama\.cpp\): still running, (\d+)s so far", proc.stdout, re.M)
    assert len(lines) >= 2 and [int(x) for x in lines] == sorted(int(x) for x in lines), proc.stdout
    quick = bash("alive quick true")  # under 30 s: nothing to say
    assert quick.returncode == 0 and quick.stdout == ""
    failed = bash("alive failing sh -c 'exit 7'; echo not reached")
    assert failed.returncode == 7 and "not reached" not in failed.stdout  # set -e stops the setup
