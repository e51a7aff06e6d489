"""The local sandbox: pytest as a plain subprocess with rlimits. It isolates nothing."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..state import TestRun
from .base import OUTPUT_LIMIT, TOOLS_DIR, _fresh_junit, overlaid, pytest_command, read_junit

LOCAL_WARNING = ("WARNING: --sandbox local runs the tests as a plain subprocess: it does NOT isolate "
                 "the network or the file system. Use Docker for code you do not trust.")


class LocalSandbox:
    """A subprocess with rlimits and a wall-clock timeout. No isolation of network or files."""

    def __init__(self, workdir: Path, python: str = sys.executable, memory_bytes: int = 4 << 30):
        self.workdir = Path(workdir).resolve()
        self.python = python
        self.memory_bytes = memory_bytes
        self.results = Path(tempfile.mkdtemp(prefix="repair-agent-results-"))

    def tool(self, name: str) -> str:
        return str(TOOLS_DIR / name)

    def _limits(self):
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def run(self, cmd: list[str], timeout: float = 300) -> tuple[int, str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.results), "LANG": "C.UTF-8",
               "PYTHONPATH": f"{self.workdir}{os.pathsep}{self.workdir / 'src'}",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}  # no secrets pass through
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=self._limits, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                rc = 124
            except BaseException:  # Ctrl-C / SIGTERM: the tests must not outlive the agent
                _killpg(proc)
                raise
            _killpg(proc)  # leftovers (forks, sleepers) of the run go too
            out.seek(max(0, out.seek(0, 2) - OUTPUT_LIMIT))
            return rc, out.read().decode(errors="replace")

    def run_tests(self, args: list[str], timeout: float = 300, per_test_timeout: int = 60,
                  overlay: dict[str, str] | None = None) -> TestRun:
        junit, _ = _fresh_junit(self.results)
        start = time.monotonic()
        with overlaid(self.workdir, overlay):  # the tree itself: this sandbox has no copy of it
            rc, out = self.run([self.python, *pytest_command(args, str(junit), per_test_timeout)], timeout)
        run = read_junit(junit, rc, rc == 124, time.monotonic() - start, out)
        junit.unlink(missing_ok=True)
        run["runner"] = "exec"
        return run

    def close(self) -> None:
        shutil.rmtree(self.results, ignore_errors=True)  # HOME of the tests: they may have left files


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
