"""The dependency image of a small real repository with a requirements.txt: built once and reused, and
a requirement that cannot install is one `error:` line with pip's words and exit 3.

Nothing here reaches an index: the dependency is a wheel built here, served from a folder through
--find-links with PIP_NO_INDEX=1; the test tools come from the tools image that
`repair-agent sandbox build-base` makes once."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import git
import pytest

from repair_agent.sandbox import BASE_IMAGE, docker_client
from repair_agent.errors import DependencyError
from repair_agent.sandbox.images import PIP_CACHE_DIR, PIP_CACHE_VOLUME, _image_exists, env_image, env_tag, tools_tag

pytestmark = pytest.mark.docker


def wheel(folder: Path, name: str, version: str, module: str) -> Path:
    """A pure-Python wheel, written by hand (a zip with its dist-info and a RECORD of hashes)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": module,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return out


def project(path: Path, requirement: str) -> Path:
    """A package that uses its pinned dependency, with a failing test."""
    path.mkdir(parents=True)
    (path / "requirements.txt").write_text(f"# {uuid.uuid4().hex}: a dependency set of its own\n{requirement}\n")
    (path / "scale.py").write_text("import tinydep\n\n\ndef scale(x):\n    return x * tinydep.FACTOR + 1\n")
    (path / "test_scale.py").write_text("from scale import scale\n\n\ndef test_scale():\n    assert scale(2) == 6\n")
    repo = git.Repo.init(path)
    repo.index.add(["requirements.txt", "scale.py", "test_scale.py"])
    actor = git.Actor("t", "t@example.invalid")
    repo.index.commit("start", author=actor, committer=actor)
    return path


@pytest.fixture
def offline(tmp_path, monkeypatch, docker_ready):
    """A folder of wheels as the only package source; the tools image must be there already."""
    tools = tools_tag(BASE_IMAGE)
    if not _image_exists(docker_client(), tools):
        pytest.fail(f"{tools} missing: run `repair-agent sandbox build-base` (it installs the test tools once)")
    wheels = tmp_path / "wheels"
    wheel(wheels, "tinydep", "1.0", "FACTOR = 3\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    made: list[str] = []
    yield wheels, made
    for tag in made:
        try:
            docker_client().images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - never built
            pass


def test_the_dependency_image_is_built_once_then_reused(offline, tmp_path):
    wheels, made = offline
    repo = project(tmp_path / "repo", "tinydep==1.0")
    client, said = docker_client(), []
    tag = env_image(client, repo, BASE_IMAGE, {"repair-agent.test": "env"}, log=said.append)
    made.append(tag)
    assert len(said) == 1 and said[0].startswith("installing the repository's test dependencies into")
    assert env_image(client, repo, BASE_IMAGE, {}, log=said.append) == tag and len(said) == 1  # reused, silent
    out = client.containers.run(tag, ["sh", "-c", f"/opt/venv/bin/python -c 'import tinydep, pytest; "
                                      f"print(tinydep.FACTOR)'; ls -A {PIP_CACHE_DIR} | wc -l"],
                                remove=True, network_mode="none").decode().split()
    assert out == ["3", "0"]  # the pin is installed; the shared pip cache stayed in its volume
    assert client.volumes.get(PIP_CACHE_VOLUME).name == PIP_CACHE_VOLUME


def test_a_requirement_that_cannot_install_is_one_error_line_and_exit_3(offline, tmp_path):
    wheels, made = offline
    repo = project(tmp_path / "repo", "tinydep==9.9")
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(repo), "--sandbox", "docker",
                           "--strategies", "mutate", "--run-dir", str(tmp_path / "runs"), "--find-links", str(wheels)],
                          capture_output=True, text=True, timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 3 and len(errors) == 1, proc.stderr
    assert "installing test dependencies failed (exit 1)" in errors[0]
    assert "No matching distribution found for tinydep==9.9" in errors[0]  # pip's own last line
    assert not any(i.attrs["Config"]["Labels"].get("repair-agent.workdir", "").startswith(str(tmp_path))
                   for i in docker_client().containers.list(all=True))


def test_a_project_that_does_not_install_is_said_unless_only_its_requirements_are_asked_for(offline, tmp_path):
    wheels, made = offline
    repo = project(tmp_path / "repo", "tinydep==1.0")
    (repo / "setup.py").write_text("raise SystemExit('this old setup.py needs a generated file')\n")
    client = docker_client()
    with pytest.raises(DependencyError, match="installing test dependencies failed") as err:
        made.append(env_tag(repo, BASE_IMAGE))
        env_image(client, repo, BASE_IMAGE, {}, log=lambda m: None)
    assert "this old setup.py needs a generated file" in str(err.value)  # the build's own words
    tag = env_image(client, repo, BASE_IMAGE, {}, log=lambda m: None, install_project=False)
    made.append(tag)
    assert tag != env_tag(repo, BASE_IMAGE) and tag == env_tag(repo, BASE_IMAGE, install_project=False)
    out = client.containers.run(tag, ["/opt/venv/bin/python", "-c", "import tinydep; print(tinydep.FACTOR)"],
                                remove=True, network_mode="none")
    assert out.decode().strip() == "3"


def test_the_warm_worker_runs_on_bullseyes_python_3_9(tmp_path, docker_ready):
    """BugsInPy's bugs get bullseye's Python 3.9; the worker once asked importlib.metadata for a 3.10
    API there, died, and every run fell back to docker exec."""
    from repair_agent.sandbox import DockerSandbox

    client, base = docker_client(), "repair-agent/base:bullseye"  # built here on first use (about 80 s)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "test_x.py").write_text("import sys\n\n\ndef test_x():\n    assert sys.version_info[:2] == (3, 8)\n")
    made = not _image_exists(client, env_tag(repo, base))
    box = DockerSandbox(repo, image=base, log=lambda m: None)
    try:
        run = box.run_tests(["test_x.py"], timeout=120)
        assert run["runner"] == "worker", run.get("fallback")
        assert [c["id"] for c in run["cases"] if c["outcome"] == "failed"] == ["test_x.py::test_x"]
        assert "assert (3, 9) == (3, 8)" in run["cases"][0]["details"]
    finally:
        box.close()
        if made:
            client.images.remove(env_tag(repo, base), force=True)


def test_pips_error_lines_are_what_the_message_keeps():
    from repair_agent.sandbox.images import pip_error

    built = "Collecting psutil==5.7.0\n    building 'psutil._psutil_linux'\n" + "    noise\n" * 30 + \
        "    TypeError: hilite() got an unexpected keyword argument 'ok'\n    ----------------------------\n" \
        "ERROR: Command errored out with exit status 1: /opt/venv/bin/python3 -u -c " + "x" * 400 + "\n" \
        "Check the logs for full command output.\n"
    said, error = pip_error(built).splitlines()
    assert said == "TypeError: hilite() got an unexpected keyword argument 'ok'"  # the build's own last words
    assert error.startswith("ERROR: Command errored out with exit status 1") and len(error) == 200
    missing = "Collecting tinydep==9.9\nERROR: Could not find a version\nERROR: No matching distribution found\n"
    assert pip_error(missing) == "ERROR: Could not find a version\nERROR: No matching distribution found"
    assert pip_error("a\nb\n" + "c\n" * 10) == "\n".join(["c"] * 8)
