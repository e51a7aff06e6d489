"""The Docker sandbox: one warm container per task, network off, read-only root, memory, pids
and CPU limits. Tests run in the warm test worker (a fork per candidate) or through `docker exec`."""

from __future__ import annotations

import base64
import os
import time
import uuid
from pathlib import Path

from ..errors import SandboxError
from ..state import TestRun
from .base import OUTPUT_LIMIT, TOOLS_DIR, junit_run, overlaid, overlay_path, pytest_command
from .images import BASE_IMAGE, LABEL, _image_exists, docker_client, env_image, env_tag, new_container
from .test_deps import discover
from .tools.warm_worker import WORKSPACE_SKIP
from .worker import SCRIPT, Worker, WorkerDied, refusal

# -- the in-container wrapper ----------------------------------------------------------------------
# Each command runs through this script (dash), as `sh -c WRAPPER sh TIMEOUT LIMIT CMD...`:
#  - /workspace is a tmpfs refilled from the read-only /src (the scratch tree) at every run, so the
#    code under test can change or delete its workspace, or fill it, and the host tree never sees it;
#    version control and tools' caches stay out (WORKSPACE_SKIP), as in the worker's workspace;
#  - the command's stdout+stderr go through a FIFO into `tail -c LIMIT`: gigabytes of output cost
#    no memory here or on the host, and the run goes on;
#  - `timeout -s KILL` puts the command in its own process group and kills the group at the
#    deadline; after the command, whatever it left behind (daemons, fork bombs) is killed too;
#  - the exit code, the out-of-memory kill count and the output land in /ra, a small tmpfs that
#    the host reads back as a tar (no host directory is writable from the container).
WRAPPER = r"""
t="$1"; n="$2"; shift 2
keep=" $(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ') "
oom() { sed -n 's/^oom_kill //p' /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null | head -n 1; }
rm -rf /ra/* 2>/dev/null
find /workspace -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null
if ! (cd /src && tar -cf - EXCLUDES .) 2>/ra/copy.err | tar -C /workspace -xmf - --no-same-owner 2>>/ra/copy.err
then echo copy > /ra/failed; exit 0; fi
oom > /ra/oom0
mkfifo /ra/pipe
tail -c "$n" < /ra/pipe > /ra/out & tp=$!
timeout -s KILL "$t" "$@" > /ra/pipe 2>&1 < /dev/null & p=$!
wait "$p"; rc=$?
kill -KILL -"$p" 2>/dev/null
for round in 1 2 3; do
  for q in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$keep" in *" $q "*) ;; *) [ "$q" = "$tp" ] || kill -KILL "$q" 2>/dev/null;; esac
  done
done
wait "$tp"
oom > /ra/oom1
echo "$rc" > /ra/rc
""".replace("EXCLUDES", " ".join(f"--exclude={name}" for name in sorted(WORKSPACE_SKIP)))
WORKER_JUNIT = "/ra/worker-junit.xml"


class DockerSandbox:
    """Tests in a container. One warm container per task; candidates go through the warm test
    worker (`use_worker`), or `docker exec` where the worker cannot take them.

    The container sees the scratch tree read-only at /src and works on a copy of it in a tmpfs
    /workspace (refilled for every run), with the network off, a read-only root, and memory,
    pids and CPU limits. Every container carries the label `repair-agent`, plus
    `repair-agent.sandbox` (this sandbox) and `repair-agent.workdir`, so that `close()` removes
    even one whose creation was interrupted.
    """

    def __init__(self, workdir: Path, image: str = BASE_IMAGE, reuse: bool = True,
                 memory: str = "2g", pids: int = 256, cpus: float = 2.0, log=print, use_worker: bool = True,
                 deps: list[str] | str | None = None, build: bool = True, install_project: bool = True):
        self.workdir = Path(workdir).resolve()
        self.id = uuid.uuid4().hex[:12]
        self.container = None
        self.client = docker_client()
        self.base = image
        self.reuse = reuse
        self.use_worker = use_worker and reuse  # a container per run leaves nothing to keep warm
        self.memory = memory
        self.limits = dict(mem_limit=memory, memswap_limit=memory, pids_limit=pids,
                           nano_cpus=int(cpus * 1e9))
        self.log = log
        self.python = "/opt/venv/bin/python"
        self.worker_flags: list[str] = []  # `--no-zygotes`: the benchmark compares the two ways
        self.last: dict = {}  # how the last command ended: rc, timed_out, oom_killed, seconds
        self._junit: bytes | None = None
        self._worker: Worker | None = None
        self.worker_deaths = 0  # the worker is restarted once after it died, not again
        try:
            self.workspace_size = max(512 << 20, 2 * _tree_size(self.workdir) + (256 << 20))
            needs = discover(self.workdir)  # once: it keys the image and decides what the build installs
            built = not _image_exists(self.client, env_tag(self.workdir, self.base, deps, install_project, needs))
            started = time.monotonic()
            self.image = env_image(self.client, self.workdir, self.base, self.labels, log=self.log, deps=deps,
                                   build=build, install_project=install_project, needs=needs)
            # for benchmark records: the dependency image, and the seconds its build took (0: it was there)
            self.env = {"image": self.image, "base": self.base,
                        "image_build_s": round(time.monotonic() - started, 1) if built else 0.0}
        except BaseException:
            self.close()
            raise

    def tool(self, name: str) -> str:
        return f"/opt/repair-agent/{name}"

    @property
    def labels(self) -> dict:
        return {LABEL: "test-run", f"{LABEL}.sandbox": self.id, f"{LABEL}.workdir": str(self.workdir)}

    def _run_kwargs(self) -> dict:
        return dict(
            network_mode="none", read_only=True, working_dir="/workspace",
            tmpfs={"/tmp": "rw,size=512m,exec", "/workspace": f"rw,size={self.workspace_size},exec",
                   "/ra": "rw,size=64m"},
            volumes={str(self.workdir): {"bind": "/src", "mode": "ro"},
                     str(TOOLS_DIR): {"bind": "/opt/repair-agent", "mode": "ro"}},
            environment={"PYTHONPATH": "/workspace:/workspace/src", "PYTHONDONTWRITEBYTECODE": "1",
                         "HOME": "/tmp", "PYTHONHASHSEED": "0"},
            security_opt=["no-new-privileges"], labels=self.labels, **self.limits)

    def _warm(self):
        if self.container is None:
            with new_container(self.workdir):
                self.container = self.client.containers.run(
                    self.image, ["sleep", "infinity"], detach=True, init=True, **self._run_kwargs())
        return self.container

    # -- tests -----------------------------------------------------------------------------
    def run_tests(self, args: list[str], timeout: float = 300, per_test_timeout: int = 60,
                  overlay: dict[str, str] | None = None) -> TestRun:
        """pytest `args` on the tree with `overlay` (relative path -> new text) written over it.
        The result says which way it ran (`runner`) and, where the worker could not, why (`fallback`)."""
        for rel in overlay or {}:
            overlay_path(self.workdir, rel)  # BadInput for a path outside the tree, on either path
        why = self._worker_refusal(overlay)
        if self.use_worker and not why:
            try:
                return self._worker_tests(args, timeout, per_test_timeout, overlay)
            except WorkerDied as exc:
                self.worker_deaths += 1
                self._discard()  # with whatever the worker's children left running
                why = f"the worker died ({exc})"
                self.log(f"warning: {why}; this run goes through docker exec")
        with overlaid(self.workdir, overlay):
            run = self._exec_tests(args, timeout, per_test_timeout)
        run["runner"] = "exec"
        if self.use_worker:
            run["fallback"] = why
        return run

    def _worker_refusal(self, overlay: dict[str, str] | None) -> str:
        if self.worker_deaths >= 2:
            return "the worker died twice in this task"
        return refusal(overlay)

    def _worker_tests(self, args: list[str], timeout: float, per_test_timeout: int,
                      overlay: dict[str, str] | None) -> TestRun:
        start = time.monotonic()
        request = {"id": uuid.uuid4().hex[:8], "args": pytest_command(args, WORKER_JUNIT, per_test_timeout)[2:],
                   "junit": WORKER_JUNIT, "overlay": overlay or {}, "timeout": timeout}
        reply = self._warm_worker().request(request, timeout + 30 + self.workspace_size / (100 << 20))
        if "error" in reply:
            self._discard()
            raise SandboxError(f"could not copy the tree into the sandbox's /workspace "
                               f"({self.workspace_size >> 20} MiB): {reply['error']}")
        if reply["timed_out"]:  # as on the exec path: the container and whatever ran in it go
            self._discard()
        self.last = {k: reply[k] for k in ("rc", "timed_out", "oom_killed", "seconds", "cpu_s", "zygote")}
        junit = base64.b64decode(reply["junit"]) if reply["junit"] else None
        run = junit_run(junit, reply["rc"], reply["timed_out"], time.monotonic() - start, reply["output"],
                        oom_killed=reply["oom_killed"], memory=self.memory)
        run["runner"] = "worker"
        return run

    def _warm_worker(self) -> Worker:
        import docker
        import requests

        try:
            container = self._warm()
            if self._worker is None or self._worker.container_id != container.id:
                self._stop_worker()
                self._worker = Worker(self.client.api, container.id,
                                      [self.python, self.tool(SCRIPT), *self.worker_flags])
            return self._worker
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise WorkerDied(f"it could not be started: {exc}") from exc

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _exec_tests(self, args: list[str], timeout: float, per_test_timeout: int) -> TestRun:
        self._junit = None
        start = time.monotonic()
        rc, out = self.run([self.python, *pytest_command(args, "/ra/junit.xml", per_test_timeout)], timeout)
        return junit_run(self._junit, rc, rc == 124, time.monotonic() - start, out,
                         oom_killed=self.last.get("oom_killed", False), memory=self.memory)

    # -- commands --------------------------------------------------------------------------
    def run(self, cmd: list[str], timeout: float = 300) -> tuple[int, str]:
        """Run `cmd` in /workspace; returns (returncode, output tail). 124 means it timed out.

        A command killed by a signal (its own SIGKILL, the out-of-memory killer) returns 128+N;
        `self.last` says which, and whether the memory limit was hit."""
        import docker
        import requests

        try:
            try:
                rc, out = self._exec(cmd, timeout)
            except docker.errors.APIError as exc:
                if not isinstance(exc, docker.errors.NotFound) and "is not running" not in str(exc):
                    raise
                self._discard()  # the container died (killed from outside?): one fresh try
                rc, out = self._exec(cmd, timeout)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            self._discard()
            raise SandboxError(f"the Docker engine failed during a test run: {exc}") from exc
        finally:
            if not self.reuse:
                self._discard()
        return rc, out

    def _exec(self, cmd: list[str], timeout: float) -> tuple[int, str]:
        api = self.client.api
        container = self._warm()
        start = time.monotonic()
        exec_id = api.exec_create(container.id, ["sh", "-c", WRAPPER, "sh", f"{timeout:g}",
                                                 str(OUTPUT_LIMIT), *cmd], workdir="/workspace")["Id"]
        api.exec_start(exec_id, detach=True)
        deadline = start + timeout + 30 + self.workspace_size / (100 << 20)  # + the copy, + slack
        pause = 0.02
        while api.exec_inspect(exec_id)["Running"]:
            if time.monotonic() > deadline:  # something held the output open past the deadline
                break
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
        seconds = time.monotonic() - start
        files = self._read_ra()
        if "failed" in files:
            self._discard()
            raise SandboxError(f"could not copy the tree into the sandbox's /workspace "
                               f"({self.workspace_size >> 20} MiB): "
                               f"{files.get('copy.err', b'').decode(errors='replace').strip()[-300:]}")
        out = files.get("out", b"")[-OUTPUT_LIMIT:].decode(errors="replace")
        try:
            rc = int(files.get("rc", b"").strip())
        except ValueError:
            rc = 137  # no exit code came back: the wrapper itself was killed, or the deadline passed
        oom = _count(files.get("oom1")) > _count(files.get("oom0"))
        timed_out = rc in (124, 137) and seconds >= timeout
        if timed_out:
            rc = 124
        if timed_out or rc == 137 or "rc" not in files:  # leftovers (forks, sleepers) go with the container
            self._discard()
        self.last = {"rc": rc, "timed_out": timed_out, "oom_killed": oom, "seconds": round(seconds, 3)}
        self._junit = files.get("junit.xml")
        return rc, out

    def _read_ra(self) -> dict[str, bytes]:
        """The files of /ra (a tmpfs of at most 64 MiB), by name."""
        import io
        import tarfile

        # not `get_archive`: docker cp does not see tmpfs mounts
        try:
            res = self.container.exec_run(["sh", "-c", "cd /ra && find . -maxdepth 1 -type f | tar -cf - -T - "
                                                 "2>/dev/null"], stdout=True, stderr=False)
            files = {}
            with tarfile.open(fileobj=io.BytesIO(res.output or b"")) as tar:
                for m in tar.getmembers():
                    if m.isfile():
                        files[Path(m.name).name] = tar.extractfile(m).read()
            return files
        except Exception:
            return {}

    def _discard(self):
        self._stop_worker()
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:
                pass
            self.container = None

    def close(self) -> None:
        """Remove every container this sandbox made, even one whose creation was interrupted."""
        self._discard()
        client = getattr(self, "client", None)
        if client is None:
            return
        try:
            for c in client.containers.list(all=True, filters={"label": f"{LABEL}.sandbox={self.id}"}):
                c.remove(force=True)
        except Exception:
            pass


def _count(data: bytes | None) -> int:
    try:
        return int((data or b"0").strip() or 0)
    except ValueError:
        return 0


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
