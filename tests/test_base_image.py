"""A missing sandbox base image is built on first use; `fix --no-build` refuses instead.

Every image here has a throwaway tag (`repair-agent/base:test-...`), removed at the end: the real
base image (repair-agent/base:bookworm) is never touched. The build is the real recipe
(debootstrap from apt's Debian mirror, then `docker import`), about a minute."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from repair_agent.sandbox import BASE_IMAGE, dependency_key, docker_client
from repair_agent.sandbox.images import ENV_REPO, _image_exists

pytestmark = pytest.mark.docker


def throwaway() -> str:
    tag = f"repair-agent/base:test-{uuid.uuid4().hex[:8]}"
    assert tag != BASE_IMAGE
    return tag


def fix(repo: Path, image: str, runs: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(repo), "--sandbox", "docker",
                           "--image", image, "--strategies", "mutate", "--run-dir", str(runs), *extra],
                          capture_output=True, text=True, timeout=900)


def test_no_build_refuses_a_missing_base_image(make_repo, tmp_path, docker_ready):
    image = throwaway()
    proc = fix(make_repo("wrong_index"), image, tmp_path / "runs", "--no-build")
    assert proc.returncode == 3, proc.stderr
    assert f"error: sandbox image {image} missing; run `repair-agent sandbox build-base --tag {image}`" \
        in " ".join(proc.stderr.split())
    assert "building" not in proc.stderr and not _image_exists(docker_client(), image)


def test_a_foreign_image_is_never_built(make_repo, tmp_path, docker_ready):
    proc = fix(make_repo("wrong_index"), "example.invalid/nothing:here", tmp_path / "runs")
    assert proc.returncode == 3 and "not found; pull or build it first" in proc.stderr, proc.stderr
    assert "building" not in proc.stderr


@pytest.mark.slow
def test_a_missing_base_image_is_built_on_first_use(make_repo, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    image = throwaway()
    client = docker_client()
    try:
        proc = fix(repo, image, tmp_path / "runs")
        said = " ".join(proc.stderr.split())
        assert proc.returncode == 0, proc.stderr
        assert f"building {image} with debootstrap" in said  # the progress line, before the build
        built = re.search(rf"built {re.escape(image)} in (\d+) s", said)
        assert built and int(built.group(1)) > 5, said  # debootstrap takes tens of seconds
        assert _image_exists(client, image)
        # the second run finds it: no build, and --no-build is content
        again = fix(repo, image, tmp_path / "runs", "--no-build")
        assert again.returncode == 0 and "building" not in again.stderr, again.stderr
    finally:
        for tag in (f"{ENV_REPO}:{dependency_key(repo, image)}", image):
            if tag != BASE_IMAGE and _image_exists(client, tag):
                client.images.remove(tag, force=True)
