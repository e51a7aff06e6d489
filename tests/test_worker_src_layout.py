"""The warm test worker runs the candidate's code of a src-layout package (src/srcpkg/...), as
`docker exec` does, also where the package is installed into the sandbox's image: the worker started
before its workspace held src/, and Python had cached that missing path as one with nothing to
import (sys.path_importer_cache[...] = None), so that the zygote and every candidate imported the
installed copy (webcolors 25.10.0: no mutant failed a test under the worker, 41 tests failed under
docker exec), and the local worker found no package at all. A changed file reaches the preloaded
module that a symlink imported it through (a module is known by its file's resolved path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import git, write_repo
from test_worker import boxes, worker_run  # noqa: F401 (boxes: the fixture)

from repair_agent.sandbox import LocalSandbox

PYPROJECT = ('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
             '[project]\nname = "srcpkg-worker-test"\nversion = "1.0"\n')
CORE = "def add(a, b):\n    return a + b\n\n\ndef double(x):\n    return add(x, x)\n"
TESTS = """\
    import os

    import srcpkg
    from srcpkg.core import add, double


    def test_add():
        assert add(1, 2) == 3


    def test_double():
        assert srcpkg.double(2) == 4


    def test_imported_from_the_workspace():
        import srcpkg.core

        assert os.path.dirname(os.path.dirname(os.path.dirname(srcpkg.core.__file__))) == os.getcwd()
    """
BROKEN = {"src/srcpkg/core.py": CORE.replace("return a + b", "return a - b")}  # a body: the swap's case
NEW_NAME = {"src/srcpkg/core.py": CORE + "\n\nLIMIT = 1\n"}  # not only bodies: imported anew
PASSED = {"test_add": "passed", "test_double": "passed", "test_imported_from_the_workspace": "passed"}
FAILED = {**PASSED, "test_add": "failed", "test_double": "failed"}


def outcomes(run) -> dict[str, str]:
    """Each test's outcome; a module that did not import is one case named by its file."""
    return {c["id"].rpartition("::")[2]: c["outcome"] for c in run["cases"]}


def src_repo(root: Path, core: str = CORE) -> Path:
    repo = write_repo(root, {"pyproject.toml": PYPROJECT, "src/srcpkg/__init__.py": "from .core import add, double\n",
                             "src/srcpkg/core.py": core, "tests/test_core.py": TESTS})
    git(repo, "init", "-q")
    return repo


@pytest.mark.docker
def test_a_src_layout_package_installed_in_the_image_runs_the_candidates_code(tmp_path, boxes):
    """The image holds `pip install .` of the tree (the dependency image installs a pyproject's
    project): each candidate runs its own src/srcpkg/core.py under the worker, as under docker exec."""
    repo = src_repo(tmp_path / "repo")
    worker, exec_ = boxes(repo), boxes(repo, use_worker=False)
    assert "srcpkg/__init__.py" in exec_.run(["sh", "-c", "cd / && /opt/venv/bin/pip show -f srcpkg-worker-test"])[1]
    for overlay, want in (({}, PASSED), ({}, PASSED), (BROKEN, FAILED), ({}, PASSED), (NEW_NAME, PASSED),
                          (BROKEN, FAILED)):
        run = worker_run(worker, [], overlay=overlay)
        assert outcomes(run) == want, run["output_tail"][-2000:]
        assert outcomes(exec_.run_tests([], overlay=overlay)) == want
    assert worker.last["zygote"]
    # synth's way: the mutant is in the tree itself, and a fresh sandbox's first run is the worker's
    fresh = boxes(src_repo(tmp_path / "mutant", core=BROKEN["src/srcpkg/core.py"]))
    for _ in range(2):  # the plain child, then the zygote's
        assert outcomes(worker_run(fresh, [])) == FAILED


def test_the_local_worker_finds_a_src_layout_package(tmp_path):
    """The local sandbox installs nothing: under the worker, src/ is where the package is, or the
    tests do not import it at all (the runs without the worker find it through PYTHONPATH)."""
    worker_and_plain_agree(src_repo(tmp_path / "repo"), (({}, PASSED), ({}, PASSED), (BROKEN, FAILED), ({}, PASSED)))


def worker_and_plain_agree(repo, steps) -> None:
    """Each (overlay, outcomes) in turn, through the local worker and through plain runs: both give them."""
    worker, plain = LocalSandbox(repo, use_worker=True), LocalSandbox(repo, use_worker=False)
    try:
        for overlay, want in steps:
            run = worker_run(worker, [], overlay=overlay)
            assert outcomes(run) == want, run["output_tail"][-2000:]
            assert outcomes(plain.run_tests([], overlay=overlay)) == want
    finally:
        worker.close()
        plain.close()


def test_a_change_reaches_a_module_imported_through_a_symlink(tmp_path):
    """srcpkg at the root is a symlink to src/srcpkg (the root comes first on the path): the zygote's
    modules are /workspace/srcpkg/..., the candidate changes src/srcpkg/core.py, the same file."""
    repo = src_repo(tmp_path / "repo")
    os.symlink("src/srcpkg", repo / "srcpkg")
    linked = {**PASSED, "test_imported_from_the_workspace": "failed"}  # srcpkg/core.py: one folder less
    broken = {**linked, "test_add": "failed", "test_double": "failed"}
    worker_and_plain_agree(repo, (({}, linked), ({}, linked), (BROKEN, broken), ({}, linked)))


def test_a_link_that_now_points_elsewhere_imports_the_tree_anew(tmp_path):
    """src/srcpkg/core.py is a link to cores/plus.py, then (in the scratch tree) to cores/minus.py: the
    same Python files, but the zygote's module is the old target's, so the candidate imports anew."""
    repo = src_repo(tmp_path / "repo")
    write_repo(repo, {"cores/plus.py": CORE, "cores/minus.py": BROKEN["src/srcpkg/core.py"]})
    core = repo / "src/srcpkg/core.py"
    core.unlink()
    core.symlink_to("../../cores/plus.py")
    worker, plain = LocalSandbox(repo, use_worker=True), LocalSandbox(repo, use_worker=False)
    try:
        for _ in range(2):
            assert outcomes(worker_run(worker, [])) == outcomes(plain.run_tests([])) == PASSED
        core.unlink()
        core.symlink_to("../../cores/minus.py")
        run = worker_run(worker, [])
        assert outcomes(run) == FAILED, run["output_tail"][-2000:]
        assert outcomes(plain.run_tests([])) == FAILED
    finally:
        worker.close()
        plain.close()
