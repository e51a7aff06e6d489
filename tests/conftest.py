"""Shared fixtures: fixture repositories made as real git repos, the Docker sandbox check, a guarded
repository (helpers.py holds the plain helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

collect_ignore = ["fixtures"]  # the fixture repos' own tests run only inside the sandbox
sys.path.insert(0, str(Path(__file__).parent))  # for `helpers` and `scripted_server`
from helpers import fixture_repo, leftovers, tree_hash  # noqa: E402


@pytest.fixture
def make_repo(tmp_path):
    def make(name: str, dest: str | None = None) -> Path:
        return fixture_repo(name, tmp_path / (dest or name))

    return make


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


@pytest.fixture
def guarded(make_repo, runs_root, tmp_path, docker_ready):
    """A wrong_index repository; after the test: tree byte-identical, nothing left behind."""
    repo = make_repo("wrong_index")
    before = tree_hash(repo)
    yield repo
    assert tree_hash(repo) == before
    assert leftovers(tmp_path / "tmp", runs_root) == {"containers": 0, "temp": []}
