"""The dependency image of a small real repository: built once and reused, a requirement that cannot
install is one `error:` line with pip's words and exit 3, and what test_deps finds in the tree (test
extras, the plugins addopts needs, UTF-16 requirement files, pins without a wheel) is installed.

Only the `slow` ujson test reaches an index (PyPI); the others' dependencies are wheels built here,
served from a folder through --find-links with PIP_NO_INDEX=1; the test tools come from the tools
image that `repair-agent sandbox build-base` makes once."""

from __future__ import annotations

import base64
import codecs
import contextlib
import hashlib
import io
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path

import git
import pytest

from repair_agent.sandbox import BASE_IMAGE, docker_client
from repair_agent.errors import DependencyError
from repair_agent.sandbox.images import (PIP_CACHE_DIR, PIP_CACHE_VOLUME, _image_exists, dependency_key,
                                        dependency_record, env_image, env_tag, tools_tag)

pytestmark = pytest.mark.docker


def wheel(folder: Path, name: str, version: str, module: str, entry_points: str = "", requires: str = "") -> Path:
    """A pure-Python wheel, written by hand (a zip with its dist-info and a RECORD of hashes)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": module,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 + (f"Requires-Dist: {requires}\n" if requires else ""),
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             **({f"{info}/entry_points.txt": entry_points} if entry_points else {})}
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


def run_on_base(repo: Path, base: str, log=lambda m: None) -> tuple[dict, dict]:
    """The tree's tests in a sandbox on `base` (the project not installed), and its dependency
    image's record; the image is removed after."""
    from repair_agent.sandbox import DockerSandbox

    tag = env_tag(repo, base, install_project=False)
    box = DockerSandbox(repo, image=base, log=log, install_project=False)
    try:
        return box.run_tests(["tests"], timeout=120), dependency_record(box.client, box.image)
    finally:
        box.close()
        with contextlib.suppress(Exception):
            docker_client().images.remove(tag, force=True)


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


# -- what the repository needs, found in its files (test_deps.py) ---------------------------------
def sdist(folder: Path, name: str, version: str, build_error: str) -> Path:
    """A source distribution whose build fails as a C extension's does without a compiler (its own
    in-tree build backend, so that pip needs nothing from an index to try it)."""
    base = f"{name}-{version}"
    files = {"pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
             "backend.py": f"def build_wheel(*args, **kwargs):\n    raise RuntimeError({build_error!r})\n\n\n"
                           "def build_sdist(*args, **kwargs):\n    raise RuntimeError('no')\n",
             "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"}
    out = folder / f"{base}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{base}/{rel}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return out


def tree(path: Path, files: dict[str, str | bytes]) -> Path:
    """A repository of `files` and a test that needs tinydep; a dependency set of its own (a fresh
    comment in requirements.txt), so that no image of an earlier run serves it."""
    fresh = f"# {uuid.uuid4().hex}\n"
    files = {"tests/test_calc.py": "import tinydep\n\n\ndef test_factor():\n    assert tinydep.FACTOR == 3\n",
             "requirements.txt": "", **files}
    if isinstance(files["requirements.txt"], str):  # the UTF-16 one has its own
        files["requirements.txt"] += fresh
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def sandbox_run(repo: Path, made: list, said: list, **kw) -> tuple[dict, dict]:
    """The tests of `repo` in the Docker sandbox, and its dependency image's record."""
    from repair_agent.sandbox import DockerSandbox

    made.append(env_tag(repo, BASE_IMAGE, kw.get("deps"), kw.get("install_project", True)))
    box = DockerSandbox(repo, image=BASE_IMAGE, log=said.append, **kw)
    try:
        run = box.run_tests(["tests"], timeout=120)
        return run, dependency_record(box.client, box.image)
    finally:
        box.close()


def test_a_test_dependency_declared_only_in_the_test_extras_is_installed(offline, tmp_path):
    """As a BugsInPy project's: its requirements lack what a test module imports; setup.py's test extra
    has it. setup.py is read, never run (it would stop the build here)."""
    wheels, made = offline
    repo = tree(tmp_path / "repo", {"setup.py": "raise SystemExit('never run me')\n"
                                                "setup(name='calc', extras_require={'test': ['tinydep']})\n"})
    said: list[str] = []
    run, record = sandbox_run(repo, made, said, install_project=False)
    assert [(c["id"], c["outcome"]) for c in run["cases"]] == [("tests/test_calc.py::test_factor", "passed")]
    assert record["installed"] == [{"requirement": "tinydep", "source": "setup.py extras_require['test']"}]
    assert "found for the tests: tinydep (setup.py extras_require['test'])" in said


COV_STANDIN = """\
import pytest


def pytest_addoption(parser):
    group = parser.getgroup("cov", "a stand-in for pytest-cov, made by the test")
    group.addoption("--cov", action="append", nargs="?", const=True, default=[])
    group.addoption("--cov-report", action="append", default=[])
    group.addoption("--no-cov", action="store_true", default=False)


def pytest_configure(config):
    if config.getoption("cov") and not config.getoption("no_cov"):
        raise pytest.UsageError("the stand-in would measure coverage here")
"""


def test_addopts_that_need_the_coverage_plugin_get_it_else_lose_the_options_with_a_warning(offline, tmp_path,
                                                                                          monkeypatch):
    """The plugin is a stand-in named pytest_cov, built here (no index is reached): it provides the
    options and refuses to run unless the sandbox kept coverage off (--no-cov)."""
    wheels, made = offline
    wheel(wheels, "pytest_cov", "9.0", COV_STANDIN, entry_points="[pytest11]\npytest_cov = pytest_cov\n")
    config = {"setup.cfg": "[tool:pytest]\naddopts = --cov=calc --cov-report term-missing -ra\n",
              "requirements.txt": "tinydep==1.0\n"}
    said: list[str] = []
    run, record = sandbox_run(tree(tmp_path / "with", config), made, said)
    assert [c["outcome"] for c in run["cases"]] == ["passed"], run["output_tail"]
    assert record["plugins"] == [{"plugin": "pytest-cov", "source": "setup.cfg [tool:pytest] addopts",
                                  "options": ["--cov", "--cov-report"]}]
    assert record["pytest_addopts"] == ["--no-cov"] and record["warnings"] == []

    only_tinydep = tmp_path / "only-tinydep"
    wheel(only_tinydep, "tinydep", "1.0", "FACTOR = 3\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(only_tinydep))  # no pytest-cov to be had
    said = []
    run, record = sandbox_run(tree(tmp_path / "without", config), made, said)
    assert [c["outcome"] for c in run["cases"]] == ["passed"], run["output_tail"]  # pytest took its command line
    warning = "warning: --cov=calc --cov-report term-missing dropped from setup.cfg [tool:pytest] addopts " \
              "(its plugin could not be installed)"
    assert warning in said and record["warnings"][0] == warning
    assert record["failed"][0]["plugin"] == "pytest-cov" and "pytest-cov" in record["failed"][0]["why"]
    assert record["pytest_addopts"] == ["-o", "addopts=-ra"]


def test_requirement_files_in_utf16_and_with_a_utf8_bom_are_read_as_pip_reads_them(offline, tmp_path):
    wheels, made = offline
    wheel(wheels, "otherdep", "2.0", "NAME = 'other'\n")
    repo = tree(tmp_path / "repo", {
        "requirements.txt": codecs.BOM_UTF16_LE + f"# saved on Windows {uuid.uuid4()}\ntinydep==1.0\n".encode("utf-16-le"),
        "requirements-test.txt": codecs.BOM_UTF8 + b"otherdep\n",
        "tests/test_other.py": "import otherdep\n\n\ndef test_other():\n    assert otherdep.NAME == 'other'\n"})
    run, record = sandbox_run(repo, made, [], install_project=False)
    assert sorted(c["outcome"] for c in run["cases"]) == ["passed", "passed"], run["output_tail"]
    assert record["installed"] == [{"requirement": "otherdep", "source": "requirements-test.txt"}]


def test_a_pin_without_a_wheel_for_the_sandboxs_python_moves_to_the_nearest_version_with_one(offline, tmp_path):
    """fastcalc 1.0 is a source distribution that does not build here (as a C extension without a
    compiler); 1.1 has a wheel. Both a requirement file's pin and a --deps pin move, recorded."""
    wheels, made = offline
    sdist(wheels, "fastcalc", "1.0", "fastcalc/_speedups.c: error: command 'gcc' failed: No such file or directory")
    wheel(wheels, "fastcalc", "1.1", "VERSION = '1.1'\n")
    wheel(wheels, "fastcalc", "0.9", "VERSION = '0.9'\n")
    check = "tests/test_fast.py"
    test = "import fastcalc\n\n\ndef test_version():\n    assert fastcalc.VERSION == '1.1'\n"
    said: list[str] = []
    run, record = sandbox_run(tree(tmp_path / "file", {"requirements.txt": "tinydep==1.0\nfastcalc==1.0\n", check: test}),
                              made, said, install_project=False)
    assert sorted(c["outcome"] for c in run["cases"]) == ["passed", "passed"], run["output_tail"]
    assert record["replaced"] == [{"requirement": "fastcalc==1.0", "with": "fastcalc==1.1", "source": "requirements.txt",
                                   "why": "no wheel of the pinned version for this Python"}]
    assert "note: fastcalc==1.0 has no wheel for this Python; fastcalc==1.1 instead (requirements.txt)" in said
    run, record = sandbox_run(tree(tmp_path / "deps", {check: test}), made, [], install_project=False,
                              deps=["fastcalc==1.0", "tinydep==1.0"])
    assert sorted(c["outcome"] for c in run["cases"]) == ["passed", "passed"], run["output_tail"]
    assert [(r["requirement"], r["with"], r["source"]) for r in record["replaced"]] == [
        ("fastcalc==1.0", "fastcalc==1.1", "--deps")]


def test_a_pin_released_only_for_other_pythons_or_taken_down_moves_to_the_nearest_version_with_a_wheel(offline,
                                                                                                        tmp_path):
    """A release with files for other Pythons only (oldbin 1.0: a cp37 wheel) was taken for a version
    that never was (a typo: an error); pip names the files it skipped as made for another Python, and
    such a pin moves, as one without a wheel does. A release the index no longer has between two it
    has (youtube-dl-27's freeze: mysql-connector-python==8.0.19; PyPI has 8.0.5 and 8.0.23, nothing
    between) moves too, with why; tinydep==9.9, beyond every release, stays an error (the test above)."""
    wheels, made = offline
    (wheels / "oldbin-1.0-cp37-cp37m-manylinux1_x86_64.whl").write_bytes(b"never read: its tags do not fit")
    wheel(wheels, "oldbin", "1.1", "VERSION = '1.1'\n")
    for version in ("1.0", "1.2"):  # 1.1 was taken down: the index has files of neither
        wheel(wheels, "relpkg", version, f"VERSION = '{version}'\n")
    test = ("import oldbin\nimport relpkg\n\n\ndef test_version():\n"
            "    assert (oldbin.VERSION, relpkg.VERSION) == ('1.1', '1.2')\n")
    said: list[str] = []
    repo = tree(tmp_path / "repo", {"requirements.txt": "oldbin==1.0\nrelpkg==1.1\ntinydep==1.0\n", "tests/test_old.py": test})
    run, record = sandbox_run(repo, made, said, install_project=False)
    assert sorted(c["outcome"] for c in run["cases"]) == ["passed", "passed"], run["output_tail"]
    assert sorted((r["requirement"], r["with"]) for r in record["replaced"]) == [("oldbin==1.0", "oldbin==1.1"),
                                                                                 ("relpkg==1.1", "relpkg==1.2")]
    assert "note: oldbin==1.0 has no wheel for this Python; oldbin==1.1 instead (requirements.txt)" in said
    assert ("note: relpkg==1.1: the index no longer has the pinned version (it has older and newer ones); "
            "relpkg==1.2 instead (requirements.txt)") in said


def test_a_pin_the_index_has_nothing_for_is_left_out_with_a_warning_and_the_rest_installs(offline, tmp_path):
    """As youtube-dl-27's freeze (PythonLabs==1.0.2: PyPI has no distribution of it at all) and
    ansible-6's (ansible-base==2.10.0.dev0, installed from a checkout): both stopped the image. Here
    gonepkg is in no folder pip reads and otherdep has only 1.0 there; a requirement file's pins and
    --deps' alike are left out, each said, and tinydep, pinned beside them, installs."""
    wheels, made = offline
    wheel(wheels, "otherdep", "1.0", "NAME = 'other'\n")
    gone = ["gonepkg==1.0.2", "otherdep==2.0.dev0"]
    why = {"gonepkg==1.0.2": "the index has no distribution of it for this Python (pip: from versions: none)",
           "otherdep==2.0.dev0": "a development release (installed from a checkout) that the index does not have"}
    said: list[str] = []
    repo = tree(tmp_path / "file", {"requirements.txt": "gonepkg==1.0.2  # gone\ntinydep==1.0\notherdep==2.0.dev0\n"})
    run, record = sandbox_run(repo, made, said, install_project=False)
    assert [c["outcome"] for c in run["cases"]] == ["passed"], run["output_tail"]
    assert sorted(record["failed"], key=lambda f: f["requirement"]) == [
        {"requirement": r, "source": "requirements.txt", "why": why[r]} for r in gone]
    assert f"warning: gonepkg==1.0.2 (requirements.txt) did not install, left out: {why['gonepkg==1.0.2']}" in said
    run, record = sandbox_run(tree(tmp_path / "deps", {}), made, [], install_project=False,
                              deps=["otherdep==2.0.dev0", "tinydep==1.0", "gonepkg==1.0.2"])
    assert [c["outcome"] for c in run["cases"]] == ["passed"], run["output_tail"]
    assert sorted((f["requirement"], f["source"]) for f in record["failed"]) == [(r, "--deps") for r in gone]


def test_on_bullseye_too_a_pin_without_a_wheel_moves_to_the_nearest_version_with_one(tmp_path, monkeypatch,
                                                                                      docker_ready):
    """BugsInPy's bugs get bullseye's Python 3.9, whose own pip (20.3) names no versions when it
    refuses a pin: the tools venv's pip (images.PIP) does, so the move works there as on bookworm.
    Before, sanic-1's numpy==1.18.4 (no wheel for 3.9, its source build fails) stopped the build."""
    from repair_agent.sandbox.images import ensure_base, tools_image

    client, base = docker_client(), "repair-agent/base:bullseye"  # built here on first use (about 80 s)
    ensure_base(client, base, log=lambda m: None)
    tools_image(client, base, log=lambda m: None)  # from the index, before the wheels folder is the only source
    wheels = tmp_path / "wheels"
    wheel(wheels, "tinydep", "1.0", "FACTOR = 3\n")
    sdist(wheels, "fastcalc", "1.0", "fastcalc/_speedups.c: error: command 'gcc' failed: No such file or directory")
    wheel(wheels, "fastcalc", "1.1", "VERSION = '1.1'\n")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    repo = tree(tmp_path / "repo", {"requirements.txt": "tinydep==1.0\nfastcalc==1.0\n", "tests/test_fast.py":
                                    "import fastcalc\n\n\ndef test_version():\n    assert fastcalc.VERSION == '1.1'\n"})
    run, record = run_on_base(repo, base)
    assert sorted(c["outcome"] for c in run["cases"]) == ["passed", "passed"], run["output_tail"]
    assert [(r["requirement"], r["with"]) for r in record["replaced"]] == [("fastcalc==1.0", "fastcalc==1.1")]


def test_a_freeze_whose_pins_conflict_installs_as_pip_installed_it_before_its_resolver(offline, tmp_path):
    """An old `pip freeze` (BugsInPy's sanic: h11==0.9.0 beside httpcore==0.3.0) can hold pins that
    contradict each other's requirements; pip's resolver refuses the set, its legacy resolver installs it."""
    wheels, made = offline
    wheel(wheels, "needsnew", "1.0", "OK = True\n", requires="tinydep>=2")
    wheel(wheels, "tinydep", "2.0", "FACTOR = 2\n")
    said: list[str] = []
    run, record = sandbox_run(tree(tmp_path / "repo", {"requirements.txt": "needsnew==1.0\ntinydep==1.0\n"}),
                              made, said, install_project=False)
    assert [c["outcome"] for c in run["cases"]] == ["passed"], run["output_tail"]  # tinydep 1.0 (FACTOR 3) as pinned
    assert record["legacy_resolver"] == ["requirements.txt"]
    assert any("conflict" in w and "legacy resolver" in w for w in said)


def test_pins_that_conflict_only_once_one_moved_install_as_pip_installed_them_before_its_resolver(offline, tmp_path):
    """As sanic-1's freeze: the first refusal is a pin without a wheel that does not build; the version
    it moves to needs what another pin contradicts. Before, the legacy resolver was tried only at the
    first refusal, and the image failed with ResolutionImpossible."""
    wheels, made = offline
    sdist(wheels, "fastcalc", "1.0", "fastcalc/_speedups.c: error: command 'gcc' failed: No such file or directory")
    wheel(wheels, "fastcalc", "1.1", "VERSION = '1.1'\n", requires="tinydep>=2")
    wheel(wheels, "tinydep", "2.0", "FACTOR = 2\n")
    test = "import fastcalc\nimport tinydep\n\n\ndef test_pins():\n    assert (fastcalc.VERSION, tinydep.FACTOR) == ('1.1', 3)\n"
    run, record = sandbox_run(tree(tmp_path / "repo", {"requirements.txt": "fastcalc==1.0\ntinydep==1.0\n",
                                                       "tests/test_pins.py": test}), made, [], install_project=False)
    assert sorted(c["outcome"] for c in run["cases"]) == ["passed", "passed"], run["output_tail"]
    assert [(r["requirement"], r["with"]) for r in record["replaced"]] == [("fastcalc==1.0", "fastcalc==1.1")]
    assert record["legacy_resolver"] == ["requirements.txt"]


def test_a_test_dependency_found_fits_the_pins_instead_of_replacing_them(offline, tmp_path):
    """As fastapi-7's: the Pipfile's dev packages, unpinned, took the newest anyio, which needs a newer
    typing_extensions than the bug's freeze pins: pytest then failed to load anyio's plugin. The
    packages found are installed under the pins as constraints: the version that fits them."""
    wheels, made = offline
    wheel(wheels, "needsnew", "1.0", "VERSION = '1.0'\n")
    wheel(wheels, "needsnew", "2.0", "VERSION = '2.0'\n", requires="tinydep>=2")
    wheel(wheels, "tinydep", "2.0", "FACTOR = 2\n")
    test = "import needsnew\nimport tinydep\n\n\ndef test_pins():\n    assert (needsnew.VERSION, tinydep.FACTOR) == ('1.0', 3)\n"
    for files, kw in (({"requirements.txt": "tinydep==1.0\n"}, {}), ({}, {"deps": ["tinydep==1.0"]})):
        repo = tree(tmp_path / f"repo{len(kw)}", {**files, "requirements-test.txt": "needsnew\n", "tests/test_pins.py": test})
        run, record = sandbox_run(repo, made, [], install_project=False, **kw)
        assert sorted(c["outcome"] for c in run["cases"]) == ["passed", "passed"], run["output_tail"]
        assert record["installed"] == [{"requirement": "needsnew", "source": "requirements-test.txt"}]


def test_a_project_whose_packages_live_in_lib_is_imported_from_the_tree_not_the_installed_copy(offline, tmp_path):
    """As ansible's (`package_dir={'': 'lib'}`): `pip install .` put a copy of the buggy lib/ into the
    image, and the tests imported it, so the tree's fix was never seen (ansible-1, -4: failed with
    the human fix)."""
    from repair_agent.sandbox import DockerSandbox

    wheels, made = offline
    setup = "from setuptools import setup\n\nsetup(name='calcpkg', version='1.0', packages=['calc'], package_dir={'': 'lib'})\n"
    test = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    repo = tree(tmp_path / "repo", {"setup.py": setup, "lib/calc/__init__.py": "def add(a, b):\n    return a - b\n",
                                    "tests/test_add.py": test, "requirements.txt": "tinydep==1.0\n"})
    said: list[str] = []
    made.append(env_tag(repo, BASE_IMAGE))
    box = DockerSandbox(repo, image=BASE_IMAGE, log=said.append)
    try:
        before = box.run_tests(["tests/test_add.py"], timeout=120)
        (repo / "lib/calc/__init__.py").write_text("def add(a, b):\n    return a + b\n")  # the fix, in the tree
        after = box.run_tests(["tests/test_add.py"], timeout=120)
        record = dependency_record(box.client, box.image)
    finally:
        box.close()
    assert record["tree_paths"] == ["/workspace/lib"] and record["uninstalled"] == ["calcpkg"], record
    assert [c["outcome"] for c in before["cases"]] == ["failed"], before["output_tail"]
    assert [c["outcome"] for c in after["cases"]] == ["passed"], after["output_tail"]
    assert any("imported from the tree (lib)" in w for w in said)


def test_a_removed_pytest_api_that_a_conftest_calls_is_given_back(offline, tmp_path):
    """As thefuck's conftest of 2018 (its autouse fixture calls `request.node.get_marker`, which pytest
    4.1 removed): without the compat plugin every test errors in that fixture."""
    wheels, made = offline
    conftest = ("import pytest\n\n\n@pytest.fixture\ndef _four():\n    return 4\n\n\n"
                "four = pytest.fixture(name='four')(_four)\n\n\n"  # a fixture of a fixture: httpie's conftest of 2020
                "@pytest.fixture(autouse=True)\ndef functional(request):\n"
                "    if request.node.get_marker('functional'):\n        pytest.skip('functional tests are off')\n\n\n"
                "@pytest.fixture\ndef three(request):\n    return request.getfuncargvalue('tmp_path') and 3\n")
    test = ("import pytest\nimport tinydep\n\n\ndef test_factor(three, four):\n    assert tinydep.FACTOR == three == four - 1\n\n\n"
            "@pytest.mark.functional\ndef test_functional():\n    assert False\n")
    said: list[str] = []
    repo = tree(tmp_path / "repo", {"tests/conftest.py": conftest, "tests/test_calc.py": test,
                                    "requirements.txt": "tinydep==1.0\n"})
    for use_worker in (True, False):  # the warm worker's pytest, and `docker exec`'s
        run, record = sandbox_run(repo, made, said, use_worker=use_worker)
        assert sorted((c["id"].split("::")[1], c["outcome"]) for c in run["cases"]) == [
            ("test_factor", "passed"), ("test_functional", "skipped")], run["output_tail"]
    assert record["pytest_addopts"] == ["-p", "repair_agent_pytest_compat"]
    assert any("a fixture already" in w for w in said)
    assert "note: the tests call Node.get_marker (removed in pytest 4.1) (tests/conftest.py): the sandbox's " \
           "pytest gets it back (repair_agent_pytest_compat)" in said

def test_an_old_testcase_that_refuses_runtest_is_collected(offline, tmp_path):
    """As tornado's AsyncTestCase before 5.1 (tornado/testing.py): its __init__ wraps
    `getattr(self, methodName)`, and pytest 8 makes an instance with "runTest" to collect the class:
    without the compat plugin the module fails at collection."""
    wheels, made = offline
    testing = ("import unittest\n\n\nclass AsyncTestCase(unittest.TestCase):\n"
               "    def __init__(self, methodName='runTest'):\n        super().__init__(methodName)\n"
               "        setattr(self, methodName, getattr(self, methodName))\n")
    test = ("import tinydep\n\nfrom tests.testing import AsyncTestCase\n\n\nclass CalcTest(AsyncTestCase):\n"
            "    def setUp(self):\n        self.factor = 3\n\n"
            "    def test_factor(self):\n        self.assertEqual(tinydep.FACTOR, self.factor)\n")
    said: list[str] = []
    repo = tree(tmp_path / "repo", {"tests/__init__.py": "", "tests/testing.py": testing, "tests/test_calc.py": test,
                                    "requirements.txt": "tinydep==1.0\n"})
    run, record = sandbox_run(repo, made, said)
    assert [(c["id"], c["outcome"]) for c in run["cases"]] == [
        ("tests/test_calc.py::CalcTest::test_factor", "passed")], run["output_tail"]
    assert record["pytest_addopts"] == ["-p", "repair_agent_pytest_compat"]
    assert any("pytest 8 collects with 'runTest'" in w and "tests/testing.py" in w for w in said)


def test_noses_with_setup_hooks_run_around_their_test(offline, tmp_path):
    """As tqdm's tests of 2020 (`@with_setup(pretest, posttest)` from nose; pytest 8 dropped nose):
    without the compat plugin `pretest` never runs and the second test sees what the first left;
    and `pretest` calls sys.setcheckinterval, which Python 3.9 removed (a no-op since 3.2)."""
    wheels, made = offline
    test = ("import sys\n\nimport tinydep\n\nBARS = []\n\n\ndef with_setup(setup, teardown):  # what nose.tools.with_setup sets\n"
            "    def decorate(f):\n        f.setup, f.teardown = setup, teardown\n        return f\n    return decorate\n\n\n"
            "def pretest():\n    sys.setcheckinterval(100)\n    BARS.clear()\n\n\ndef posttest():\n    BARS.append('closed')\n\n\n"
            "@with_setup(pretest, posttest)\ndef test_first():\n    BARS.append(tinydep.FACTOR)\n    assert BARS == [3]\n\n\n"
            "@with_setup(pretest, posttest)\ndef test_second():\n    assert BARS == []\n")
    said: list[str] = []
    repo = tree(tmp_path / "repo", {"tests/test_bars.py": test, "requirements.txt": "tinydep==1.0\n"})
    for use_worker in (True, False):  # the warm worker's pytest, and `docker exec`'s
        run, record = sandbox_run(repo, made, said, use_worker=use_worker)
        assert sorted((c["id"], c["outcome"]) for c in run["cases"] if "test_bars" in c["id"]) == [
            ("tests/test_bars.py::test_first", "passed"), ("tests/test_bars.py::test_second", "passed")], run["output_tail"]
    assert record["pytest_addopts"] == ["-p", "repair_agent_pytest_compat"]
    assert any("nose's with_setup" in w and "tests/test_bars.py" in w for w in said)
    assert any("sys.setcheckinterval (removed in Python 3.9)" in w for w in said)


def test_a_fixture_called_directly_runs_as_before_pytest_4(offline, tmp_path):
    """As thefuck's tests of 2017 (`@pytest.mark.parametrize('command', [did_not_match('foo')])`, the
    fixture defined in tests/rules/conftest.py): pytest 4 made such a call an error at collection,
    and one such module stopped the whole suite's session."""
    wheels, made = offline
    conftest = "import pytest\n\n\n@pytest.fixture\ndef doubled(x=2):\n    return 2 * x\n"
    test = ("import pytest\nimport tinydep\n\nfrom tests.conftest import doubled\n\n\n"
            "@pytest.mark.parametrize('value', [doubled(3)])\ndef test_value(value):\n"
            "    assert value == tinydep.FACTOR * 2\n")
    said: list[str] = []
    repo = tree(tmp_path / "repo", {"tests/__init__.py": "", "tests/conftest.py": conftest,
                                    "tests/test_called.py": test, "requirements.txt": "tinydep==1.0\n"})
    run, record = sandbox_run(repo, made, said)
    assert [(c["id"], c["outcome"]) for c in run["cases"] if "test_called" in c["id"]] == [
        ("tests/test_called.py::test_value[6]", "passed")], run["output_tail"]
    assert record["pytest_addopts"] == ["-p", "repair_agent_pytest_compat"]
    assert any("a fixture called directly (an error since pytest 4.0) (tests/test_called.py)" in w for w in said)



@pytest.mark.slow
def test_a_pin_that_breaks_the_sandboxs_pytest_is_moved_for_it_with_a_note(tmp_path, docker_ready):
    """Against PyPI (the build's container reaches it): black's and luigi's BugsInPy freezes pin
    typing-extensions 3.7.4, and on bullseye's Python 3.9 the sandbox's pytest needs exceptiongroup,
    which imports typing_extensions' `Self` (4.6): pytest did not import and no test ran (black-1)."""
    base = "repair-agent/base:bullseye"
    said: list[str] = []
    repo = tree(tmp_path / "repo", {"requirements.txt": "typing-extensions==3.7.4.1\n",
                                    "tests/test_calc.py": "def test_runs():\n    assert True\n"})
    run, record = run_on_base(repo, base, log=said.append)
    assert [c["outcome"] for c in run["cases"]] == ["passed"], run["output_tail"]
    assert any(m.startswith("typing-extensions 3.7.4.1 -> 4.") for m in record["runner"]), record["runner"]
    assert any(w.startswith("note: the repository's pins broke the sandbox's pytest") for w in said)


@pytest.mark.slow
def test_a_real_pin_without_a_wheel_for_the_sandboxs_python_moves_to_the_nearest_release_with_one(tmp_path,
                                                                                                 docker_ready):
    """Against PyPI itself (the one test here that reaches an index: the dependency build's
    container does): ujson 1.35 is a C extension published as a source distribution only, which
    does not build on the plain bookworm base (no compiler); 5.5.0 is its oldest release with a
    wheel for Python 3.11."""
    made: list[str] = []
    said: list[str] = []
    test = "import ujson\n\n\ndef test_dumps():\n    assert ujson.dumps([1, 'a']) == '[1,\"a\"]'\n"
    repo = tree(tmp_path / "repo", {"requirements.txt": "ujson==1.35\n", "tests/test_calc.py": test})
    try:
        run, record = sandbox_run(repo, made, said, install_project=False)
    finally:
        for tag in made:
            with contextlib.suppress(Exception):
                docker_client().images.remove(tag, force=True)
    assert [c["outcome"] for c in run["cases"]] == ["passed"], run["output_tail"]
    assert record["replaced"] == [{"requirement": "ujson==1.35", "with": "ujson==5.5.0", "source": "requirements.txt",
                                   "why": "no wheel of the pinned version for this Python"}]
    assert "note: ujson==1.35 has no wheel for this Python; ujson==5.5.0 instead (requirements.txt)" in said


def test_a_change_to_the_installer_is_a_new_dependency_image(tmp_path, monkeypatch):
    """An image built before a fix to install_deps.py kept the fault the fix removed (its key named
    only the tree's files and the tools): the installer's text is part of the key."""
    from repair_agent.sandbox import images

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.txt").write_text("tinydep==1.0\n")
    before = dependency_key(repo, BASE_IMAGE)
    copy = tmp_path / "install_deps.py"
    copy.write_bytes(images.INSTALLER_SOURCE.read_bytes())
    monkeypatch.setattr(images, "INSTALLER_SOURCE", copy)
    assert dependency_key(repo, BASE_IMAGE) == before  # the same text, the same image
    copy.write_bytes(copy.read_bytes() + b"\n# a fix\n")
    assert dependency_key(repo, BASE_IMAGE) != before
