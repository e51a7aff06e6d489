"""A missing sandbox base image is built on first use; `fix --no-build` refuses instead.

Every image here has a throwaway tag (`repair-agent/base:test-...`): the real base image
(repair-agent/base:bookworm) is never touched. The build is the real recipe
(debootstrap, then `docker import`), pointed at a mirror on a closed loopback port: tests reach
nothing beyond this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from repair_agent.llm.llamacpp import free_port
from repair_agent.sandbox import BASE_IMAGE, docker_client
from repair_agent.sandbox.images import _image_exists

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


def test_a_missing_base_image_is_built_on_first_use(make_repo, tmp_path, docker_ready):
    """The build starts by itself, with its progress line. Its mirror is a closed loopback port (tests
    reach nothing beyond this machine), so the build fails: one clear error, exit 3, no image left.
    The build that succeeds is `sandbox build-base`, which scripts/setup runs with the same recipe."""
    image = throwaway()
    mirror = f"http://127.0.0.1:{free_port()}/debian"
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(make_repo("wrong_index")),
                           "--sandbox", "docker", "--image", image, "--strategies", "mutate",
                           "--run-dir", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "REPAIR_AGENT_DEBIAN_MIRROR": mirror})
    said = " ".join(proc.stderr.split())
    assert f"building {image} with debootstrap from {mirror}" in said  # the progress line, before the build
    assert proc.returncode == 3 and "base image build failed" in said, said
    assert not _image_exists(docker_client(), image)
