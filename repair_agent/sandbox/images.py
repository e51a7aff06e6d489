"""Docker images: the engine client, the base image (debootstrap, no registry) and the per-repo
environment image that holds the test tools and the repository's dependencies: those its files
declare, the test dependencies and pytest plugins that test_deps.py finds, and `--deps`
(install_deps.py installs them inside the build). What was found, installed, left out or moved to
another version is the image's label `repair-agent.deps` (dependency_record) and `--json`/records'
business; its warnings are said each time the image is used."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import subprocess
import threading
import time
from importlib import resources
from pathlib import Path

from ..errors import BadInput, DependencyError, SandboxError
from .install_deps import MARKER, NO_WHEEL
from .test_deps import TestNeeds, command_line, discover

BASE_IMAGE = "repair-agent/base:bookworm"
BASE_REPO = BASE_IMAGE.split(":")[0]  # any tag of it is built by build-base.sh when missing
ENV_REPO = "repair-agent/env"
TOOLS_REPO = "repair-agent/tools"  # base + a venv with TOOLS, under every env image
LABEL = "repair-agent"  # every container we make carries this label, for cleanup checks
DEPS_LABEL = f"{LABEL}.deps"  # the dependency image's record: what was found, installed, left out
INSTALLER_SOURCE = Path(__file__).with_name("install_deps.py")
INSTALLER = "/opt/repair-agent-install/install_deps.py"  # where a dependency build sees install_deps.py
COMPAT = "/opt/repair-agent-install/pytest_compat.py"  # and pytest_compat.py, which it copies where needed
TOOLS = ["pytest", "pytest-timeout", "coverage"]
# The tools venv's own pip, before the tools: bullseye's pip 20.3 names no versions when a pin has no
# wheel (install_deps.without_wheels reads them from pip's refusal); 24.1 and later refuse the
# non-PEP 440 versions and metadata of old pins. `wheel`: a setup.py project without a build-system
# table is built in this venv, as pip before 23.1 did (install_deps.project_options)
PIP = "pip>=23.1,<24.1 wheel"
DEP_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "requirements-dev.txt",
             "requirements-test.txt", "test-requirements.txt")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
PIP_CACHE_VOLUME = "repair-agent-pip-cache"  # a named volume, shared by every dependency build
PIP_CACHE_DIR = "/var/cache/repair-agent-pip"  # where builds see it; a volume never enters the image
# pip's own settings that pass from this process's environment into a dependency build: an index
# behind a proxy, or a folder of wheels for a machine offline (--index-url, --find-links)
PIP_PASS_THROUGH = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TRUSTED_HOST")


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


_creating = threading.Lock()
_stopping: set[str] = set()  # roots of runs being stopped: no new container for a tree under them


@contextlib.contextmanager
def new_container(workdir: Path):
    """Around the creation of a container for `workdir`: refused once its run is being stopped."""
    with _creating:
        if any(str(workdir).startswith(root) for root in _stopping):
            raise SandboxError("the run is stopping: no new sandbox container")
        yield


def clear_containers_under(root: Path, stopping: bool) -> None:
    """Remove the containers made for trees under `root`. `stopping`: and refuse new ones there (a
    run ends early: its threads may still try); else allow them again (a run starts there)."""
    prefix = str(Path(root).resolve()) + os.sep
    with _creating:  # a container being created now exists once this lock is ours, and goes below
        if stopping:
            _stopping.add(prefix)
        else:
            _stopping.discard(prefix)
    try:
        found = docker_client().containers.list(all=True, filters={"label": LABEL})
    except Exception:  # noqa: BLE001 - no engine (the local sandbox): nothing to remove
        return
    for c in found:
        if c.labels.get(f"{LABEL}.workdir", "").startswith(prefix):
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001 - gone already (its own sandbox closed it)
                pass


def docker_available() -> bool:
    try:
        docker_client()
        return True
    except SandboxError:
        return False


# The -cc bases' build tools and headers, for requirements that have no wheel for the release's Python:
# C and C++ compilers, Python's headers, and the libraries the common C extensions build against:
# libffi (cffi), OpenSSL (cryptography, pyOpenSSL), zlib and libjpeg (Pillow), libxml2 and libxslt
# (lxml), libyaml (PyYAML's C loader), bzip2 and xz (compression modules)
COMPILER = ("gcc,g++,make,pkg-config,libc6-dev,python3-dev,libffi-dev,libssl-dev,zlib1g-dev,libjpeg-dev,"
            "libxml2-dev,libxslt1-dev,libyaml-dev,libbz2-dev,liblzma-dev")


def build_base_image(tag: str = BASE_IMAGE, mirror: str | None = None, force: bool = False,
                     log=print, release: str | None = None, compiler: bool = False) -> str:
    """Build the base image with debootstrap + docker import (no registry needed). `release`: the
    Debian release (its Python: sandbox/releases.py); default: the tag's, else bookworm."""
    from .releases import DEFAULT_RELEASE, RELEASES, read_base_tag

    named = read_base_tag(tag)  # a missing `repair-agent/base:bullseye-cc` is built as its tag says
    release = release or (named[0] if named else DEFAULT_RELEASE)
    compiler = compiler or bool(named and named[1])
    if release not in RELEASES:
        raise BadInput(f"unknown release {release!r}; use one of {', '.join(RELEASES)}")
    client = docker_client()
    if not force and _image_exists(client, tag):
        log(f"{tag} already built")
        return tag
    recipe = resources.files(__package__) / "build-base.sh"  # package data, beside this module
    mirror = mirror or _debian_mirror()
    log(f"building {tag} with debootstrap from {mirror} (about a minute)")
    proc = subprocess.run(["bash", str(recipe), tag, mirror, release, COMPILER if compiler else ""],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise SandboxError(f"base image build failed: {last}")
    return tag


_BUILDING = threading.Lock()  # benchmark workers share a process: one of them builds


def ensure_base(client, base: str, build: bool = True, log=print) -> None:
    """A missing `repair-agent/base:*` image is built on first use (as a container tool pulls an
    image it lacks), with a progress line and its duration; `build=False` refuses instead."""
    if _image_exists(client, base):
        return
    if base.split(":")[0] != BASE_REPO:
        raise SandboxError(f"sandbox image {base} not found; pull or build it first")
    if not build:
        how = "" if base == BASE_IMAGE else f" --tag {base}"
        raise SandboxError(f"sandbox image {base} missing; run `repair-agent sandbox build-base{how}`")
    with _BUILDING:
        if _image_exists(client, base):
            return
        started = time.monotonic()
        build_base_image(base, log=log)
        log(f"built {base} in {time.monotonic() - started:.0f} s")


def _debian_mirror() -> str:
    """REPAIR_AGENT_DEBIAN_MIRROR, else the machine's own apt mirror, else Debian's."""
    if os.environ.get("REPAIR_AGENT_DEBIAN_MIRROR"):
        return os.environ["REPAIR_AGENT_DEBIAN_MIRROR"]
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


def packages(deps: list[str] | str | None) -> list[str]:
    """`--deps` as a sorted list of pip requirements, from a list or "a,b" (each item may hold commas).
    A comma before a version operator belongs to the requirement (`blis>=0.4.0,<0.5.0`, spacy's
    pins: split there, pip was given '<0.5.0')."""
    items = [deps] if isinstance(deps, str) else list(deps or [])
    names = sorted({p.strip() for item in items for p in re.split(r",(?=\s*[A-Za-z0-9_])", item) if p.strip()})
    if bad := [p for p in names if p.startswith("-")]:
        raise BadInput(f"--deps takes package names, not pip options: {' '.join(bad)}")
    return names


def env_tag(repo: Path, image: str, deps: list[str] | str | None = None, install_project: bool = True,
            needs: TestNeeds | None = None) -> str:
    """The dependency image's tag for `repo` on `image` with `deps` (and what test_deps finds there)."""
    return f"{ENV_REPO}:{dependency_key(repo, image, packages(deps), install_project, needs)}"


def dependency_key(repo: Path, image: str, deps: list[str] | str | None = None, install_project: bool = True,
                   needs: TestNeeds | None = None) -> str:
    h = hashlib.sha256(f"{image}|{_tools_key()}".encode())
    h.update(INSTALLER_SOURCE.read_bytes())  # an image built before a fix to the installer keeps its fault
    if not install_project:  # installed: the same key as before this choice existed
        h.update(b"project not installed\0")
    if extra := packages(deps):  # no --deps: the same key as before they existed
        h.update(b"deps\0" + "\0".join(extra).encode())
    for name in DEP_FILES:
        f = repo / name
        if f.is_file() and (install_project or "requirements" in name):  # not installed: its metadata is moot
            h.update(name.encode() + b"\0" + f.read_bytes())
    needs = needs or discover(repo)
    if needs.found():  # nothing found beyond what was installed before discovery: the same key as then
        h.update(b"found\0" + needs.key())
    if needs.compat:  # the image holds a copy of the compat plugin: a new one is a new image
        h.update(Path(__file__).with_name(Path(COMPAT).name).read_bytes())
    return h.hexdigest()[:16]


def tools_tag(base: str) -> str:
    key = hashlib.sha256(f"{base}|{_tools_key()}".encode()).hexdigest()[:16]
    return f"{TOOLS_REPO}:{key}"


def _tools_key() -> str:
    return f"{PIP} {' '.join(TOOLS)}"


def tools_image(client, base: str, log=print, workdir: Path | None = None) -> str:
    """`base` with a venv (/opt/venv) holding the test tools: built once per base and kept, so that
    each dependency image installs only the repository's own dependencies on top of it."""
    tag = tools_tag(base)
    if not _image_exists(client, tag):
        log(f"installing the test tools ({' '.join(TOOLS)}) into {tag} (once per base image)")
        _build_layer(client, base, ["sh", "-c", "set -e; python3 -m venv /opt/venv; "
                                                f"/opt/venv/bin/pip install -q {' '.join(map(shlex.quote, PIP.split(' ')))}; "
                                                f"/opt/venv/bin/pip install -q {' '.join(TOOLS)}"],
                     [], tag, "installing the test tools", {LABEL: "tools-build"}, workdir)
    return tag


def env_image(client, workdir: Path, base: str, labels: dict, log=print, deps: list[str] | str | None = None,
              build: bool = True, install_project: bool = True, needs: TestNeeds | None = None) -> str:
    """The image with the test tools, `workdir`'s dependencies, the test dependencies and plugins
    that test_deps finds there, and the packages `deps`, on `base`: built once per dependency set
    (its key: the dependency files, what was found, `deps`) and kept. `build`: a missing base image
    of ours is built first (see ensure_base). A requirement, the project or `deps` that does not
    install is a DependencyError with pip's last words (one line): a project that does not install
    says so here, not as collection errors. A test dependency or plugin that was found but does not
    install is left out with a warning. `install_project=False`: the requirements only (a benchmark
    whose own recipe does not install it). `needs`: what test_deps found, when the caller has it."""
    ensure_base(client, base, build=build, log=log)
    extra = packages(deps)
    needs = needs or discover(workdir)
    tag = env_tag(workdir, base, extra, install_project, needs)
    if _image_exists(client, tag):
        for warning in dependency_record(client, tag).get("warnings", []):
            log(warning)  # every time the image is used: never silently
        return tag
    tools = tools_image(client, base, log=log, workdir=workdir)
    log(f"installing the repository's test dependencies{' and ' + ' '.join(extra) if extra else ''} "
        f"into {tag} (once)")
    if found := [f"{x.get('requirement') or x['plugin']} ({x['source']})" for x in needs.packages + needs.plugins]:
        log(f"found for the tests: {', '.join(found)}")
    from docker.types import Mount

    project = install_project and any((workdir / n).is_file() for n in ("pyproject.toml", "setup.py"))
    plan = {"requirement_files": needs.requirement_files, "project": project, "packages": needs.packages,
            "plugins": needs.plugins, "deps": extra, "compat": COMPAT if needs.compat else "",
            "package_roots": needs.package_roots if project else []}
    mounts = [Mount("/src", str(workdir), type="bind", read_only=True),
              *(Mount(inside, str(Path(__file__).with_name(Path(inside).name)), type="bind", read_only=True)
                for inside in (INSTALLER, COMPAT))]

    def finish(output: str) -> dict:
        report = install_report(output)
        tokens, warnings = command_line(needs, {p["plugin"] for p in report.get("plugins", [])})
        warnings += [f"warning: {f.get('requirement') or f.get('plugin')} ({f['source']}) did not install, left "
                     f"out: {f['why']}" for f in report.get("failed", [])]
        warnings += [f"note: {r['requirement']}{' has no wheel for this Python' if r['why'] == NO_WHEEL else ': ' + r['why']}"
                     f"; {r['with']} instead ({r['source']})" for r in report.get("replaced", [])]
        if report.get("runner"):
            warnings.append(f"note: the repository's pins broke the sandbox's pytest; its requirements were installed "
                            f"again over them: {', '.join(report['runner'])}")
        if report.get("tree_paths"):
            warnings.append(f"note: the project's packages are imported from the tree ({', '.join(needs.package_roots)}),"
                            f" not from the copy installed with its dependencies"
                            f"{' (' + ', '.join(report['uninstalled']) + ' uninstalled)' if report.get('uninstalled') else ''}")
        warnings += [f"note: the pins of {source} conflict (pip's resolver refused them): installed with pip's "
                     f"legacy resolver, as pip installed them before 20.3" for source in report.get("legacy_resolver", [])]
        for warning in warnings:
            log(warning)
        record = {"needs": needs.to_dict(), **report, "pytest_addopts": tokens, "warnings": warnings}
        return {"Labels": {LABEL: "env", DEPS_LABEL: json.dumps(record, sort_keys=True)},
                **({"Env": ["PYTEST_ADDOPTS=" + shlex.join(tokens)]} if tokens else {})}

    _build_layer(client, tools, ["/opt/venv/bin/python", INSTALLER, json.dumps(plan)], mounts, tag,
                 "installing test dependencies", {**labels, LABEL: "env-build"}, workdir, finish)
    return tag


def install_report(output: str) -> dict:
    """The report install_deps.py printed last (after MARKER), else {}."""
    for line in reversed(output.splitlines()):
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER):])
            except json.JSONDecodeError:
                return {}
    return {}


def dependency_record(client, tag: str) -> dict:
    """What the dependency image `tag` holds and why (its DEPS_LABEL): what test_deps found, what was
    installed, left out (`failed`) or moved to another version (`replaced`), the pytest options the
    sandbox adds (`pytest_addopts`) and the warnings. {} for an image without one."""
    try:
        return json.loads(client.images.get(tag).labels.get(DEPS_LABEL) or "{}")
    except Exception:  # noqa: BLE001 - an image of before the record, or gone
        return {}


def _build_layer(client, image: str, command: list[str], mounts: list, tag: str, what: str, labels: dict,
                 workdir: Path | None, finish=lambda output: {"Labels": {LABEL: "env"}}) -> None:
    """Run `command` in a container of `image` (network on: it installs) and commit it as `tag`,
    with the image configuration that `finish(its output)` gives."""
    # Mounts (not `volumes=`): docker commit would keep `volumes` as declared image volumes.
    from docker.types import Mount

    environment, links = pip_environment()
    mounts = [*mounts, Mount("/run/host-ca.crt", HOST_CA, type="bind", read_only=True),
              Mount(PIP_CACHE_DIR, PIP_CACHE_VOLUME, type="volume"),  # downloads and wheels, kept between builds
              *(Mount(d, d, type="bind", read_only=True) for d in links)]
    with new_container(workdir) if workdir else contextlib.nullcontext():
        c = client.containers.run(image, command, detach=True, mounts=mounts,
                                  environment=environment, labels=labels)
    try:
        try:
            rc = c.wait(timeout=1800)["StatusCode"]
        except Exception as exc:  # requests' ReadTimeout, or the engine went away
            raise SandboxError(f"{what} did not finish: {exc}") from exc
        output = c.logs().decode(errors="replace")
        if rc != 0:
            said = "\n".join(ln for ln in output.splitlines()[-80:] if not ln.startswith(MARKER))
            raise DependencyError(f"{what} failed (exit {rc}): {' | '.join(pip_error(said).splitlines())}")
        repo, name = tag.split(":")
        c.commit(repository=repo, tag=name, conf=finish(output))
    finally:
        c.remove(force=True)


def pip_error(log: str) -> str:
    """What pip said went wrong: its `ERROR:` lines (they name the requirement), each cut short, and
    where a build failed, the build's own last words before them; else pip's last lines."""
    lines = [ln.strip() for ln in log.strip().splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.startswith("ERROR:")), None)
    if first is None:
        return "\n".join(lines[-8:])
    errors = [ln if len(ln) <= 200 else ln[:197] + "..." for ln in lines[first:] if ln.startswith("ERROR:")]
    said = [ln for ln in lines[:first] if set(ln) != {"-"}][-1:] if "errored out" in lines[first] else []
    return "\n".join(said + errors[-3:])


def pip_environment() -> tuple[dict[str, str], list[str]]:
    """The environment of a dependency build, and the local folders of PIP_FIND_LINKS to mount
    (read-only, at the same path, which the environment then names absolute)."""
    environment = {"PIP_CERT": "/run/host-ca.crt", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                   "PIP_CACHE_DIR": PIP_CACHE_DIR, **pip_settings()}
    links, folders = [], []
    for x in environment.get("PIP_FIND_LINKS", "").split():
        if "://" not in x and Path(x).is_dir():
            folders.append(str(Path(x).resolve()))
            x = folders[-1]
        links.append(x)
    if links:
        environment["PIP_FIND_LINKS"] = " ".join(links)
    return environment, folders


def pip_settings() -> dict[str, str]:
    """The PIP_* settings of PIP_PASS_THROUGH that this process has (see `--index-url`)."""
    return {k: os.environ[k] for k in PIP_PASS_THROUGH if os.environ.get(k)}
