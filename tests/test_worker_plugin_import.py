"""A pytest plugin that imports the project at start-up (pytest-sanic imports sanic) must not make
the warm worker test the image's installed copy of the project: the worker's warm-up ran the plugin
outside the tree, so `import sanic` found site-packages, and every candidate kept that module
(sanic-1's human fix passed under `docker exec`, failed under the worker). Under `python -m pytest`
in the workspace the plugin imports the tree's copy; the worker must do the same.

Here the project is one module, `calcmod`; the image gets a released copy of it (correct) as the
dependency of a plugin that imports it, both from a folder of wheels (no network)."""

from __future__ import annotations

import pytest
from helpers import git, outcomes, write_repo
from test_env_image import offline, wheel  # noqa: F401 (offline: the fixture)
from test_worker import boxes, worker_run  # noqa: F401 (boxes: the fixture)

PLUGIN = "import pytest\n\nimport calcmod\n\n\n@pytest.fixture\ndef plugin_add():\n    return calcmod.add\n"
CORRECT = "def add(a, b):\n    return a + b\n"
BUGGY = CORRECT.replace("a + b", "a - b")
TESTS = """\
from calcmod import add


def test_add():
    assert add(1, 2) == 3


def test_plugin_add(plugin_add):
    assert plugin_add(2, 2) == 4
"""
PASSED = {"test_add": "passed", "test_plugin_add": "passed"}
FAILED = {"test_add": "failed", "test_plugin_add": "failed"}


@pytest.mark.docker
def test_a_plugin_that_imports_the_project_sees_the_candidates_code(tmp_path, offline, boxes):
    wheels, made = offline
    wheel(wheels, "calcmod", "1.0", CORRECT)  # the released copy: it would pass every test
    wheel(wheels, "pytest_calcmod", "1.0", PLUGIN, entry_points="[pytest11]\ncalcmod = pytest_calcmod\n",
          requires="calcmod")
    repo = write_repo(tmp_path / "repo", {"calcmod.py": BUGGY, "tests/test_calc.py": TESTS,
                                          "requirements.txt": "pytest_calcmod==1.0\n"})
    git(repo, "init", "-q")
    worker, exec_ = boxes(repo), boxes(repo, use_worker=False)
    made.append(worker.image)
    fix = {"calcmod.py": CORRECT}
    for overlay, want in (({}, FAILED), ({}, FAILED), (fix, PASSED), ({}, FAILED), (fix, PASSED)):
        assert outcomes(exec_.run_tests([], overlay=overlay)) == want
        run = worker_run(worker, [], overlay=overlay)
        assert outcomes(run) == want, run["output_tail"][-2000:]
