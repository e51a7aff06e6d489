"""Shared fixtures: fixture repositories made as real git repos, the Docker sandbox check."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
collect_ignore = ["fixtures"]  # the fixture repos' own tests run only inside the sandbox
sys.path.insert(0, str(Path(__file__).parent))


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def fixture_repo(name: str, repo: Path) -> Path:
    """Copy tests/fixtures/NAME to `repo`, a fresh git repository with one commit."""
    shutil.copytree(FIXTURES / name, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def make_repo(tmp_path):
    def make(name: str, dest: str | None = None) -> Path:
        return fixture_repo(name, tmp_path / (dest or name))

    return make


def tree_hash(root: Path) -> str:
    """A hash of every file under root, .git included: 'byte-identical' made checkable."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def pytest_collection_modifyitems(items):
    """A test that asks for docker_ready (itself or through a fixture) needs Docker: it gets the
    `docker` marker, so that `-m "not docker"` leaves it out."""
    for item in items:
        if "docker_ready" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_ready():
    from repair_agent.sandbox import BASE_IMAGE, docker_available, docker_client

    if not docker_available():
        pytest.fail("the Docker engine is not running (.ci/run starts it)")
    try:
        docker_client().images.get(BASE_IMAGE)
    except Exception:
        pytest.fail(f"{BASE_IMAGE} missing: run `repair-agent sandbox build-base`")
    return True


@pytest.fixture
def runs_root(tmp_path):
    return tmp_path / "runs"
