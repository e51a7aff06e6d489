"""The sandbox seam: run pytest on a tree and return structured results.

`DockerSandbox` runs tests in a container with the network off, a read-only root, and memory,
pids and CPU limits; a warm container per task takes each candidate through `docker exec`.
`LocalSandbox` runs a subprocess with rlimits: no network or file isolation, said loudly.
Results always come from pytest's JUnit XML.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Protocol

from .errors import SandboxError
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
    cases: list[TestCase] = []
    if path.exists() and path.stat().st_size:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            root = None
        for tc in root.iter("testcase") if root is not None else []:
            cases.append(_case(tc))
    return TestRun(cases=cases, returncode=returncode, timed_out=timed_out,
                   duration_s=round(duration, 3), output_tail=output[-OUTPUT_LIMIT:])


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


class DockerSandbox:
    """Tests in a container. One warm container per task; candidates go through `docker exec`."""

    def __init__(self, workdir: Path, image: str = BASE_IMAGE, reuse: bool = True,
                 memory: str = "2g", pids: int = 256, cpus: float = 2.0, log=print):
        self.workdir = Path(workdir).resolve()
        self.client = docker_client()
        self.base = image
        self.reuse = reuse
        self.limits = dict(mem_limit=memory, memswap_limit=memory, pids_limit=pids,
                           nano_cpus=int(cpus * 1e9))
        self.results = Path(tempfile.mkdtemp(prefix="repair-agent-results-"))
        self.log = log
        self.container = None
        self.image = self._env_image()
        self.python = "/opt/venv/bin/python"

    def tool(self, name: str) -> str:
        return f"/opt/repair-agent/{name}"

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
            labels={LABEL: "env-build"})
        try:
            rc = c.wait(timeout=900)["StatusCode"]
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
            tmpfs={"/tmp": "rw,size=512m,exec"},
            volumes={str(self.workdir): {"bind": "/workspace", "mode": "rw"},
                     str(self.results): {"bind": "/results", "mode": "rw"},
                     str(TOOLS_DIR): {"bind": "/opt/repair-agent", "mode": "ro"}},
            environment={"PYTHONPATH": "/workspace:/workspace/src", "PYTHONDONTWRITEBYTECODE": "1",
                         "HOME": "/tmp", "PYTHONHASHSEED": "0"},
            labels={LABEL: "test-run"}, **self.limits)

    def _warm(self):
        if self.container is None:
            self.container = self.client.containers.run(
                self.image, ["sleep", "infinity"], detach=True, init=True, **self._run_kwargs())
        return self.container

    # -- running ---------------------------------------------------------------------------
    def run(self, cmd: list[str], timeout: float = 300) -> tuple[int, str]:
        """Run `cmd` in /workspace; returns (returncode, output). 124/137 means it timed out."""
        wrapped = ["timeout", "-s", "KILL", str(int(timeout)), *cmd]
        if self.reuse:
            res = self._warm().exec_run(wrapped, workdir="/workspace")
            rc, out = res.exit_code, res.output or b""
            if rc in (124, 137):  # leftovers of a killed run (forks, sleepers) go with the container
                self._discard()
        else:
            c = self.client.containers.run(self.image, wrapped, detach=True, **self._run_kwargs())
            try:
                rc = c.wait(timeout=timeout + 30)["StatusCode"]
                out = c.logs()
            finally:
                c.remove(force=True)
        return rc, out[-OUTPUT_LIMIT:].decode(errors="replace")

    def run_tests(self, args: list[str], timeout: float = 300, per_test_timeout: int = 60) -> TestRun:
        junit, name = _fresh_junit(self.results)
        start = time.monotonic()
        rc, out = self.run([self.python, *pytest_command(args, f"/results/{name}", per_test_timeout)], timeout)
        run = read_junit(junit, rc, rc in (124, 137), time.monotonic() - start, out)
        junit.unlink(missing_ok=True)
        return run

    def _discard(self):
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:
                pass
            self.container = None

    def close(self) -> None:
        self._discard()
        for f in self.results.glob("*"):
            f.unlink(missing_ok=True)
        self.results.rmdir()


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
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = 124
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
        for f in self.results.glob("*"):
            f.unlink(missing_ok=True)
        self.results.rmdir()


def open_sandbox(kind: str, workdir: Path, image: str | None = None, log=print) -> Sandbox:
    """`auto` takes Docker when an engine answers, else the local sandbox with a warning."""
    if kind == "auto":
        kind = "docker" if docker_available() else "local"
        if kind == "local":
            log("Docker engine not reachable; falling back to the local sandbox.")
    if kind == "docker":
        return DockerSandbox(workdir, image=image or BASE_IMAGE, log=log)
    if kind == "local":
        log(LOCAL_WARNING)
        return LocalSandbox(workdir)
    raise ValueError(f"unknown sandbox {kind!r}; use auto, docker or local")


def shell_args(test: str | None) -> list[str]:
    return shlex.split(test) if test else []
