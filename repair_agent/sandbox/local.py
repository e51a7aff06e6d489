"""The local sandbox: pytest as a plain subprocess with rlimits, or in a fork of the warm test
worker (`tools/warm_worker.py --local`), as in the Docker sandbox. It isolates nothing."""

from __future__ import annotations

import base64
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ..state import TestRun
from .base import OUTPUT_LIMIT, TOOLS_DIR, _fresh_junit, junit_run, overlaid, overlay_path, pytest_command, read_junit
from .worker import SCRIPT, JsonLines, WorkerDied, refusal

LOCAL_WARNING = ("WARNING: --sandbox local runs the tests as a plain subprocess: it does NOT isolate "
                 "the network or the file system. Use Docker for code you do not trust.")
LOCAL_WORKER_WARNING = ("WARNING: the local test worker forks a Python process of yours for each candidate: "
                        "the code under test runs as you, with your network and files; only its workspace "
                        "and temporary folder are private. --no-worker runs plain subprocesses.")
MARKER = ".repair-agent-private"  # warm_worker.py --local empties only folders under one with this file


class LocalSandbox:
    """A subprocess with rlimits and a wall-clock timeout, or the warm test worker (`use_worker`).
    No isolation of network or files."""

    def __init__(self, workdir: Path, python: str = sys.executable, memory_bytes: int = 4 << 30,
                 use_worker: bool = False, log=print):
        self.workdir = Path(workdir).resolve()
        self.python = python
        self.memory_bytes = memory_bytes
        self.results = Path(tempfile.mkdtemp(prefix="repair-agent-results-"))
        self.use_worker = use_worker
        self.log = log
        self._worker: LocalWorker | None = None
        self.worker_deaths = 0  # restarted once after it died, not again
        self.private = Path(tempfile.mkdtemp(prefix="repair-agent-worker-")).resolve()  # its workspace and tmp
        (self.private / MARKER).write_text("")
        for name in ("workspace", "tmp"):  # before the worker starts: Python caches a missing path
            (self.private / name).mkdir()

    def tool(self, name: str) -> str:
        return str(TOOLS_DIR / name)

    def _limits(self):
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _env(self, root: Path) -> dict:
        return {"PATH": os.environ.get("PATH", ""), "HOME": str(self.results), "LANG": "C.UTF-8",
                "PYTHONPATH": f"{root}{os.pathsep}{root / 'src'}",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}  # no secrets pass through

    def run(self, cmd: list[str], timeout: float = 300) -> tuple[int, str]:
        env = self._env(self.workdir)
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
        for rel in overlay or {}:
            overlay_path(self.workdir, rel)  # BadInput for a path outside the tree, on either path
        why = "the worker died twice in this task" if self.worker_deaths >= 2 else refusal(overlay)
        if self.use_worker and not why:
            try:
                return self._worker_tests(args, timeout, per_test_timeout, overlay)
            except WorkerDied as exc:
                self.worker_deaths += 1
                self._stop_worker()
                why = f"the worker died ({exc})"
                self.log(f"warning: {why}; this run goes through a plain subprocess")
        junit, _ = _fresh_junit(self.results)
        start = time.monotonic()
        with overlaid(self.workdir, overlay):  # the tree itself: this path has no copy of it
            rc, out = self.run([self.python, *pytest_command(args, str(junit), per_test_timeout)], timeout)
        run = read_junit(junit, rc, rc == 124, time.monotonic() - start, out)
        junit.unlink(missing_ok=True)
        run["runner"] = "exec"
        if self.use_worker:
            run["fallback"] = why
        return run

    def _worker_tests(self, args: list[str], timeout: float, per_test_timeout: int,
                      overlay: dict[str, str] | None) -> TestRun:
        if self._worker is None:
            workspace = self.private / "workspace"
            self._worker = LocalWorker([self.python, str(TOOLS_DIR / SCRIPT), "--local", str(self.workdir),
                                        str(self.private)], cwd=self.private, preexec_fn=self._limits,
                                       env={**self._env(workspace), "HOME": str(self.private / "tmp"),
                                            "TMPDIR": str(self.private / "tmp")})  # emptied per candidate
        junit = self.results / "worker-junit.xml"  # the same for every request: one zygote per selection
        start = time.monotonic()
        request = {"id": uuid.uuid4().hex[:8], "args": pytest_command(args, str(junit), per_test_timeout)[2:],
                   "junit": str(junit), "overlay": overlay or {}, "timeout": timeout}
        try:
            reply = self._worker.request(request, timeout + 30)
        finally:
            junit.unlink(missing_ok=True)
        if "error" in reply:
            raise WorkerDied(f"it could not make its workspace: {reply['error']}")
        # paths as the plain path shows them: localization and the fault checks map the tree's paths
        here, there = str(self.private / "workspace"), str(self.workdir)
        data = base64.b64decode(reply["junit"]).replace(here.encode(), there.encode()) if reply["junit"] else None
        run = junit_run(data, reply["rc"], reply["timed_out"], time.monotonic() - start,
                        reply["output"].replace(here, there))
        run["runner"] = "worker"
        return run

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def close(self) -> None:
        self._stop_worker()
        shutil.rmtree(self.results, ignore_errors=True)  # HOME of the tests: they may have left files
        shutil.rmtree(self.private, ignore_errors=True)


class LocalWorker(JsonLines):
    """`warm_worker.py --local` as a child process of the agent: one JSON line each way per request."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict, preexec_fn, start_timeout: float = 300):
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._err, preexec_fn=preexec_fn, start_new_session=True)
        except OSError as exc:
            self._err.close()
            raise WorkerDied(f"it could not be started: {exc}") from exc
        self._hello(start_timeout)

    def _send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _read(self, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise WorkerDied("it gave no answer before the deadline")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self._err.seek(max(0, self._err.seek(0, 2) - 4096))
            last = self._err.read().decode(errors="replace").strip().splitlines()[-1:]
            raise WorkerDied("it exited" + (f": {last[0][:300]}" if last else ""))
        return chunk

    def close(self) -> None:
        """The worker and its process group; a child it forked dies with it (PR_SET_PDEATHSIG)."""
        _killpg(self.proc)
        for f in (self.proc.stdin, self.proc.stdout, self._err):
            f.close()


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
