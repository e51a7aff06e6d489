"""The sandbox seam: run pytest on a tree and return structured results.

`DockerSandbox` runs tests in a container with the network off, a read-only root, and memory,
pids and CPU limits; a warm container per task takes each candidate through `docker exec`.
The container mounts nothing of the host writable: it sees the scratch tree read-only and works
on a fresh tmpfs copy of it per command, output is capped in the container (the tail is kept),
and a run killed by a signal or the out-of-memory killer is reported as such, not as a timeout.
`LocalSandbox` runs a subprocess with rlimits: no network or file isolation, said loudly.
Results always come from pytest's JUnit XML.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Protocol

from .errors import BadInput, SandboxError
from .state import TestCase, TestRun

BASE_IMAGE = "repair-agent/base:bookworm"
ENV_REPO = "repair-agent/env"
LABEL = "repair-agent"  # every container we make carries this label, for cleanup checks
TOOLS = ["pytest", "pytest-timeout", "coverage"]
DEP_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "requirements-dev.txt",
             "requirements-test.txt", "test-requirements.txt")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
TOOLS_DIR = Path(__file__).resolve().parent.parent / "sandbox"  # scripts run inside the sandbox
OUTPUT_LIMIT = 64 * 1024  # bytes of console output kept per run
DETAILS_LIMIT = 4000


class Sandbox(Protocol):
    """Runs commands against one repository tree (the scratch copy)."""

    workdir: Path
    python: str  # the interpreter that has pytest + coverage, as the sandbox sees it

    def tool(self, name: str) -> str:
        """Path, as the sandbox sees it, of a script in the repo's `sandbox/` folder."""
        ...

    def run_tests(self, args: list[str], timeout: float = 300, per_test_timeout: int = 60) -> TestRun: ...

    def run(self, cmd: list[str], timeout: float = 300) -> tuple[int, str]: ...

    def close(self) -> None: ...


def pytest_command(args: list[str], junit: str, per_test_timeout: int) -> list[str]:
    return ["-m", "pytest", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
            f"--junitxml={junit}", f"--timeout={per_test_timeout}", "-q", "-rN", *args]


def read_junit(path: Path, returncode: int, timed_out: bool, duration: float, output: str) -> TestRun:
    """Turn pytest's JUnit XML (xunit1, which names each test's file) into a TestRun."""
    data = path.read_bytes() if path.exists() else None
    return junit_run(data, returncode, timed_out, duration, output)


def junit_run(data: bytes | None, returncode: int, timed_out: bool, duration: float, output: str,
              oom_killed: bool = False, memory: str = "") -> TestRun:
    """A TestRun from JUnit XML bytes. When pytest left no report, the output's last line says why
    (killed by a signal, by the out-of-memory killer, ...): `crash_note()` reads it back."""
    cases: list[TestCase] = []
    if data:
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            root = None
        for tc in root.iter("testcase") if root is not None else []:
            cases.append(_case(tc))
    if not cases and not timed_out and (oom_killed or returncode > 128 or returncode < 0
                                        or (data is None and returncode == 0)):
        output = output.rstrip("\n") + "\n" + _crash_line(returncode, oom_killed, memory) + "\n"
    elif oom_killed and not timed_out:
        output = output.rstrip("\n") + f"\n{CRASH} a process hit the memory limit ({memory}) and was killed\n"
    return TestRun(cases=cases, returncode=returncode, timed_out=timed_out,
                   duration_s=round(duration, 3), output_tail=output[-OUTPUT_LIMIT:])


CRASH = "[repair-agent sandbox]"


def _crash_line(rc: int, oom_killed: bool, memory: str) -> str:
    if oom_killed:
        why = f"was killed by the out-of-memory killer (memory limit {memory or 'reached'})"
    elif rc > 128 or rc < 0:
        num = rc - 128 if rc > 128 else -rc
        try:
            name = signal.Signals(num).name
        except ValueError:
            name = f"signal {num}"
        why = f"was killed by {name}"
    else:
        why = f"exited with code {rc}"
    return f"{CRASH} pytest {why} before it reported any result"


def crash_note(run: TestRun | None) -> str:
    """The sandbox's own line about a crashed run ("" when the run ended normally)."""
    for line in reversed((run or {}).get("output_tail", "").strip().splitlines()[-3:]):
        if line.startswith(CRASH):
            return line[len(CRASH):].strip()
    return ""


def _case(tc: ET.Element) -> TestCase:
    file = tc.get("file") or ""
    classname, name = tc.get("classname") or "", tc.get("name") or ""
    module = file[:-3].replace("/", ".") if file.endswith(".py") else ""
    inner = classname[len(module):].lstrip(".") if module and classname.startswith(module) else ""
    parts = [file or classname, *(inner.split(".") if inner else []), name]
    node_id = "::".join(p for p in parts if p)
    outcome, message, details = "passed", "", ""
    for child in tc:
        if child.tag in ("failure", "error", "skipped"):
            outcome = {"failure": "failed"}.get(child.tag, child.tag)
            message = (child.get("message") or "").splitlines()[0][:500] if child.get("message") else ""
            details = (child.text or "")[-DETAILS_LIMIT:]
            break
    return TestCase(id=node_id, outcome=outcome, message=message, details=details)


def _fresh_junit(results: Path) -> tuple[Path, str]:
    name = f"junit-{uuid.uuid4().hex[:8]}.xml"
    return results / name, name


def docker_client():
    """A client for a running engine, or SandboxError saying how to start one."""
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception as exc:  # docker raises several types for "no engine"
        raise SandboxError(
            "Docker engine not reachable; start it (e.g. `sudo dockerd &` or "
            "`sudo systemctl start docker`) or pass --sandbox local") from exc


def docker_available() -> bool:
    try:
        docker_client()
        return True
    except SandboxError:
        return False


def build_base_image(tag: str = BASE_IMAGE, mirror: str | None = None, force: bool = False,
                     log=print) -> str:
    """Build the base image with debootstrap + docker import (no registry needed)."""
    client = docker_client()
    if not force and _image_exists(client, tag):
        log(f"{tag} already built")
        return tag
    recipe = TOOLS_DIR / "build-base.sh"
    mirror = mirror or _debian_mirror()
    log(f"building {tag} with debootstrap from {mirror} (about a minute)")
    proc = subprocess.run(["bash", str(recipe), tag, mirror], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"base image build failed: {proc.stderr.strip().splitlines()[-1:]}")
    return tag


def _debian_mirror() -> str:
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            for line in f.read_text().splitlines():
                words = line.split()
                if words[:1] == ["URIs:"] or words[:1] == ["deb"]:
                    url = words[1] if words[0] == "URIs:" else next(w for w in words[1:] if "://" in w)
                    if "security" not in url:
                        return url
        except (OSError, StopIteration):
            continue
    return "http://deb.debian.org/debian"


def _image_exists(client, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def dependency_key(repo: Path, image: str) -> str:
    h = hashlib.sha256(f"{image}|{' '.join(TOOLS)}".encode())
    for name in DEP_FILES:
        f = repo / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


# -- the in-container wrapper ----------------------------------------------------------------------
# Each command runs through this script (dash), as `sh -c WRAPPER sh TIMEOUT LIMIT CMD...`:
#  - /workspace is a tmpfs refilled from the read-only /src (the scratch tree) at every run, so the
#    code under test can change or delete its workspace, or fill it, and the host tree never sees it;
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
if ! cp -R /src/. /workspace/ 2>/ra/copy.err; then echo copy > /ra/failed; exit 0; fi
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
"""


class DockerSandbox:
    """Tests in a container. One warm container per task; candidates go through `docker exec`.

    The container sees the scratch tree read-only at /src and works on a copy of it in a tmpfs
    /workspace (refilled for every command), with the network off, a read-only root, and memory,
    pids and CPU limits. Every container carries the label `repair-agent`, plus
    `repair-agent.sandbox` (this sandbox) and `repair-agent.workdir`, so that `close()` removes
    even one whose creation was interrupted.
    """

    def __init__(self, workdir: Path, image: str = BASE_IMAGE, reuse: bool = True,
                 memory: str = "2g", pids: int = 256, cpus: float = 2.0, log=print):
        self.workdir = Path(workdir).resolve()
        self.id = uuid.uuid4().hex[:12]
        self.container = None
        self.client = docker_client()
        self.base = image
        self.reuse = reuse
        self.memory = memory
        self.limits = dict(mem_limit=memory, memswap_limit=memory, pids_limit=pids,
                           nano_cpus=int(cpus * 1e9))
        self.log = log
        self.python = "/opt/venv/bin/python"
        self.last: dict = {}  # how the last command ended: rc, timed_out, oom_killed, seconds
        self._junit: bytes | None = None
        try:
            self.workspace_size = max(512 << 20, 2 * _tree_size(self.workdir) + (256 << 20))
            self.image = self._env_image()
        except BaseException:
            self.close()
            raise

    def tool(self, name: str) -> str:
        return f"/opt/repair-agent/{name}"

    @property
    def labels(self) -> dict:
        return {LABEL: "test-run", f"{LABEL}.sandbox": self.id, f"{LABEL}.workdir": str(self.workdir)}

    # -- environment -----------------------------------------------------------------------
    def _env_image(self) -> str:
        if not _image_exists(self.client, self.base):
            if self.base == BASE_IMAGE:
                raise SandboxError(f"sandbox image {self.base} missing; run `repair-agent sandbox build-base`")
            raise SandboxError(f"sandbox image {self.base} not found; pull or build it first")
        tag = f"{ENV_REPO}:{dependency_key(self.workdir, self.base)}"
        if _image_exists(self.client, tag):
            return tag
        self.log(f"installing the repository's test dependencies into {tag} (once)")
        script = (
            "set -e; python3 -m venv /opt/venv; PIP=/opt/venv/bin/pip; "
            f"$PIP install -q {' '.join(TOOLS)}; cp -r /src /tmp/src; cd /tmp/src; "
            "for r in requirements.txt requirements-dev.txt requirements-test.txt test-requirements.txt; do "
            "  [ -f $r ] && $PIP install -q -r $r; done; "
            "if [ -f pyproject.toml ] || [ -f setup.py ]; then $PIP install -q . || true; fi")
        # Mounts (not `volumes=`): docker commit would keep `volumes` as declared image volumes.
        from docker.types import Mount

        whole = any((self.workdir / n).is_file() for n in ("pyproject.toml", "setup.py"))
        mounts = [Mount("/src", str(self.workdir), type="bind", read_only=True)] if whole else [
            Mount(f"/src/{n}", str(self.workdir / n), type="bind", read_only=True)
            for n in DEP_FILES if (self.workdir / n).is_file()]
        if not mounts:  # an empty /src still has to exist for the script
            script = script.replace("cp -r /src /tmp/src", "mkdir -p /tmp/src")
        mounts.append(Mount("/run/host-ca.crt", HOST_CA, type="bind", read_only=True))
        c = self.client.containers.run(
            self.base, ["sh", "-c", script], detach=True, mounts=mounts,
            environment={"PIP_CERT": "/run/host-ca.crt", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            labels={**self.labels, LABEL: "env-build"})
        try:
            try:
                rc = c.wait(timeout=900)["StatusCode"]
            except Exception as exc:  # requests' ReadTimeout, or the engine went away
                raise SandboxError(f"installing test dependencies did not finish: {exc}") from exc
            if rc != 0:
                tail = c.logs(tail=5).decode(errors="replace").strip()
                raise SandboxError(f"installing test dependencies failed: {tail}")
            c.commit(repository=ENV_REPO, tag=tag.split(":")[1], conf={"Labels": {LABEL: "env"}})
        finally:
            c.remove(force=True)
        return tag

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
            self.container = self.client.containers.run(
                self.image, ["sleep", "infinity"], detach=True, init=True, **self._run_kwargs())
        return self.container

    # -- running ---------------------------------------------------------------------------
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

    def run_tests(self, args: list[str], timeout: float = 300, per_test_timeout: int = 60) -> TestRun:
        self._junit = None
        start = time.monotonic()
        rc, out = self.run([self.python, *pytest_command(args, "/ra/junit.xml", per_test_timeout)], timeout)
        return junit_run(self._junit, rc, rc == 124, time.monotonic() - start, out,
                         oom_killed=self.last.get("oom_killed", False), memory=self.memory)

    def _discard(self):
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

    def run_tests(self, args: list[str], timeout: float = 300, per_test_timeout: int = 60) -> TestRun:
        junit, _ = _fresh_junit(self.results)
        start = time.monotonic()
        rc, out = self.run([self.python, *pytest_command(args, str(junit), per_test_timeout)], timeout)
        run = read_junit(junit, rc, rc == 124, time.monotonic() - start, out)
        junit.unlink(missing_ok=True)
        return run

    def close(self) -> None:
        shutil.rmtree(self.results, ignore_errors=True)  # HOME of the tests: they may have left files


def _killpg(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def open_sandbox(kind: str, workdir: Path, image: str | None = None, log=print) -> Sandbox:
    """`auto` takes Docker when an engine answers, else the local sandbox with a warning."""
    if kind == "auto":
        kind = "docker" if docker_available() else "local"
        if kind == "local":
            log("warning: Docker engine not reachable; falling back to the local sandbox.")
    if kind == "docker":
        return DockerSandbox(workdir, image=image or BASE_IMAGE, log=log)
    if kind == "local":
        log(LOCAL_WARNING)
        return LocalSandbox(workdir)
    raise BadInput(f"unknown sandbox {kind!r}; use auto, docker or local")


def shell_args(test: str | None) -> list[str]:
    return shlex.split(test) if test else []
