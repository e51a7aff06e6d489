"""The sandbox seam: run pytest on a tree and return structured results.

`DockerSandbox` (docker.py) runs tests in a container with the network off, a read-only root,
and memory, pids and CPU limits; one warm container per task. Candidates go through a warm test
worker in that container (worker.py here, `tools/warm_worker.py` inside), which forks a child
per candidate, or through `docker exec` where the worker cannot take them. The container mounts
nothing of the host writable: it sees the scratch tree read-only and works on a fresh tmpfs copy
of it per run, output is capped in the container (the tail is kept), and a run killed by a
signal or the out-of-memory killer is reported as such, not as a timeout. `LocalSandbox`
(local.py) runs a subprocess with rlimits, or the same worker on the host with a private workspace
and temporary folder: no network or file isolation, said loudly. Images are
built in images.py. Results always come from pytest's JUnit XML (base.py).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInput
from .base import (CRASH, DETAILS_LIMIT, OUTPUT_LIMIT, TOOLS_DIR, Sandbox, crash_note, junit_run,
                   overlaid, pytest_command, read_junit, shell_args)
from .docker import WRAPPER, DockerSandbox
from .images import (BASE_IMAGE, DEP_FILES, ENV_REPO, HOST_CA, LABEL, TOOLS, build_base_image,
                     clear_containers_under, dependency_key, docker_available, docker_client)
from .local import LOCAL_WARNING, LOCAL_WORKER_WARNING, LocalSandbox
from .releases import sandbox_image
from .worker import WorkerDied, refusal

__all__ = ["BASE_IMAGE", "CRASH", "DEP_FILES", "DETAILS_LIMIT", "ENV_REPO", "HOST_CA", "LABEL",
           "LOCAL_WARNING", "LOCAL_WORKER_WARNING", "OUTPUT_LIMIT", "TOOLS", "TOOLS_DIR", "WRAPPER",
           "DockerSandbox", "LocalSandbox", "Sandbox", "WorkerDied", "build_base_image", "check_kind",
           "clear_containers_under", "crash_note", "dependency_key", "docker_available", "docker_client",
           "junit_run", "open_sandbox", "overlaid", "pytest_command", "read_junit", "refusal", "shell_args"]


def check_kind(kind: str) -> None:
    """Refuse an unknown sandbox kind (fix calls this before it makes a run directory)."""
    if kind not in ("auto", "docker", "local"):
        raise BadInput(f"unknown sandbox {kind!r}; use auto, docker or local")


def open_sandbox(kind: str, workdir: Path, image: str | None = None, log=print,
                 use_worker: bool = True, deps: list[str] | str | None = None, build: bool = True,
                 install_project: bool = True) -> Sandbox:
    """`auto` takes Docker when an engine answers, else the local sandbox with a warning. `image`
    None: our base of the Python the tree asks for (releases.sandbox_image). `deps`: packages the
    Docker sandbox's image adds; the local one cannot install them. `build`: a missing base image
    of ours is built (else refused)."""
    check_kind(kind)
    if kind == "auto":
        kind = "docker" if docker_available() else "local"
        if kind == "local":
            log("warning: Docker engine not reachable; falling back to the local sandbox.")
    if kind == "docker":
        return DockerSandbox(workdir, image=image or sandbox_image(workdir)[0], log=log, use_worker=use_worker, deps=deps,
                             install_project=install_project,
                             build=build)
    log(LOCAL_WARNING)
    if use_worker:
        log(LOCAL_WORKER_WARNING)
    if deps:
        log("warning: --deps is for the Docker sandbox; install them where the local sandbox's Python finds them")
    return LocalSandbox(workdir, use_worker=use_worker, log=log)
