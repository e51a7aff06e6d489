"""BugsInPy straight from a checkout: a small BugsInPy-shaped folder and a tiny project repository,
both made here (no BugsInPy data, no network). Its project is named `thefuck` only because the
loader's default is the dev set; none of its content comes from there."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import git
import pytest

from repair_agent.bench.bugsinpy import (DEV_PROJECTS, failing_tests, load_bugsinpy, read_info,
                                        reference_patch, requirements, unittest_id)
from repair_agent.bench.datasets import load_dataset
from repair_agent.bench.tasks import Task
from repair_agent.config import Settings, names_test
from repair_agent.errors import BadInput
from repair_agent.sandbox.releases import closest_release, release_for

ACTOR = git.Actor("t", "t@example.invalid")
BUGGY_SRC = "def add(a, b):\n    return a - b\n\n\ndef double(x):\n    return 2 * x\n"
FIXED_SRC = "def add(a, b):\n    return a + b\n\n\ndef double(x):\n    return 2 * x\n"
OLD_TEST = "from calc import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
NEW_TEST = ("import pytest\n\nfrom calc import add, double\n\n\ndef test_double():\n    assert double(2) == 4\n\n\n"
            "@pytest.mark.parametrize('a,b,s', [(1, 1, 2), (2, 3, 5)])\ndef test_add(a, b, s):\n"
            "    assert add(a, b) == s\n")
SIGNS_TEST = "from calc import add\n\n\ndef test_negative():\n    assert add(-1, 1) == 0\n"  # not the bug's test
REFERENCE = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a + b
 
 
 def double(x):
"""


def commit(repo: git.Repo, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        p = Path(repo.working_tree_dir) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    repo.index.add(list(files))
    return repo.index.commit(message, author=ACTOR, committer=ACTOR).hexsha


def make_project(path: Path) -> dict[str, str]:
    """A project whose history has a bug (buggy), its fix with a new test (fixed), and later work."""
    repo = git.Repo.init(path)
    commit(repo, {"calc.py": FIXED_SRC.replace("a + b", "a + b  # first"), "tests/test_calc.py": OLD_TEST,
                  ".gitignore": "secret_build.txt\n"}, "start")
    buggy = commit(repo, {"calc.py": BUGGY_SRC}, "a bug")
    fixed = commit(repo, {"calc.py": FIXED_SRC, "tests/test_calc.py": NEW_TEST, "tests/test_signs.py": SIGNS_TEST},
                   "the fix, with its test")
    commit(repo, {"calc.py": FIXED_SRC + "\n# later\n"}, "later")
    return {"buggy": buggy, "fixed": fixed}


def bug(folder: Path, project: str, n: int, info: dict[str, str], run_test: str, reqs: str = "",
        patch: str = REFERENCE) -> None:
    d = folder / "projects" / project / "bugs" / str(n)
    d.mkdir(parents=True)
    # BugsInPy's own quirks: a space before `=`, no newline at the end of the file
    (d / "bug.info").write_text("\n".join(f'{k}{" " if k == "fixed_commit_id" else ""}="{v}"'
                                          for k, v in info.items()))
    (d / "run_test.sh").write_text(run_test)
    (d / "requirements.txt").write_text(reqs)
    (d / "bug_patch.txt").write_text(patch)
    (folder / "projects" / project / "project.info").write_text(f'github_url="https://example.invalid/{project}"\n')


@pytest.fixture
def bugsinpy(tmp_path) -> tuple[Path, Path, dict]:
    data, repos = tmp_path / "BugsInPy", tmp_path / "repos"
    commits = make_project(repos / "thefuck")
    info = {"python_version": "3.11.2", "buggy_commit_id": commits["buggy"], "fixed_commit_id": commits["fixed"],
            "test_file": "tests/test_calc.py"}
    bug(data, "thefuck", 1, info, "pytest tests/test_calc.py::test_add\n",
        reqs="pkg-resources==0.0.0\nthefuck==3.1\npytest==5.4.2\npluggy==0.13.1\npytest-mock==3.1.0\nsix==1.15.0\n")
    bug(data, "thefuck", 2, info, "pytest tests/test_calc.py::test_double")  # passes on the buggy tree
    (data / "projects/thefuck/bugs/2/setup.sh").write_text("python setup.py install\npip3 install nose\n")
    bug(data, "black", 1, info, "pytest tests/test_calc.py::test_add")  # a held-out project
    return data, repos, commits


# -- the parts, one by one ------------------------------------------------------------------------
def test_bug_info_and_run_test_sh_are_read_as_bugsinpy_writes_them(tmp_path):
    f = tmp_path / "bug.info"
    f.write_text('python_version="3.7.0"\nbuggy_commit_id="abc"\nfixed_commit_id ="def"\ntest_file="a.py;b/c.py"')
    assert read_info(f) == {"python_version": "3.7.0", "buggy_commit_id": "abc", "fixed_commit_id": "def",
                            "test_file": "a.py;b/c.py"}
    assert failing_tests("pytest t/a.py::test_x\npython3 -m pytest t/a.py::C::test_y -q\n", ["t/a.py"]) == \
        ["t/a.py::test_x", "t/a.py::C::test_y"]
    # spaCy's run_test.sh says `py.test`, cookiecutter's `tox` (pytest under it): the same node ids
    assert failing_tests("py.test spacy/tests/test_errors.py::test_add_codes\ntox t/a.py::C::test_z", ["t/a.py"]) == \
        ["spacy/tests/test_errors.py::test_add_codes", "t/a.py::C::test_z"]
    assert failing_tests("python -m unittest -q test.test_utils.TestUtil.test_a test.test_utils.TestUtil.test_b\n",
                         ["test/test_utils.py"]) == ["test/test_utils.py::TestUtil::test_a",
                                                     "test/test_utils.py::TestUtil::test_b"]
    assert unittest_id("pkg.tests.test_m.TestM.test_z", []) == "pkg/tests/test_m.py::TestM::test_z"


def test_requirements_keep_the_projects_dependencies_only():
    text = "pkg-resources==0.0.0\nthe-fuck==1\nthe_Fuck==2\npytest==5.4.2\npluggy==0.13.1\ncoverage==5.1\n" \
           "pytest-mock==3.1.0\nsix==1.15.0  # a comment\n-e .\n\n"
    assert requirements(text, "the-fuck") == ["pytest-mock", "six==1.15.0"]


def test_a_failing_test_names_its_parametrized_cases():
    assert names_test("t.py::test_f", "t.py::test_f[1-2]") and names_test("t.py::C", "t.py::C::test_g")
    assert not names_test("t.py::test_f", "t.py::test_f2")
    s = Settings(failing_tests=["t.py::test_f"])
    assert not s.is_baseline("t.py::test_f[1-2]") and s.is_baseline("t.py::test_other")


def test_a_module_that_does_not_collect_fails_each_of_its_tests():
    from repair_agent.bench.reproducibility import still_passing

    def run(*failed):
        return {"cases": [{"id": f, "outcome": "error"} for f in failed]}

    targets = ["t/a.py::test_x", "t/a.py::C::test_y", "t/b.py::test_z"]
    assert still_passing(targets, run("t/a.py")) == ["t/b.py::test_z"]
    assert still_passing(targets, run("t/a.py::test_x[1]", "t/a.py::C")) == ["t/b.py::test_z"]
    assert still_passing(targets, run("t/a.py::test_xy")) == targets


@pytest.mark.parametrize("asked, release", [
    (dict(python_version="3.6.9"), "bullseye"), (dict(python_version="3.7.0"), "bullseye"),
    (dict(python_version="3.9"), "bullseye"), (dict(python_version="3.10.4"), "bookworm"),
    (dict(python_version="3.12"), "trixie"), (dict(python_version="3.14"), "trixie"),
    (dict(python_version="2.7.18"), "bullseye"),
    (dict(requires_python=">=3.10"), "bookworm"), (dict(requires_python=">=3.6,<3.10"), "bullseye"),
    (dict(requires_python=">=3.12"), "trixie"), (dict(requires_python="<3.0"), "bookworm"),
    (dict(requires_python="not a spec"), "bookworm"),
    (dict(classifiers=["Programming Language :: Python :: 3.6", "Programming Language :: Python :: 3.8"]),
     "bullseye"),
    (dict(classifiers=["Programming Language :: Python :: 3 :: Only"]), "bookworm"),
    (dict(python_version="3.7", requires_python=">=3.12"), "bullseye"),  # the recorded Python comes first
    ({}, "bookworm"),
])
def test_the_release_closest_to_the_python_asked_for(asked, release):
    assert release_for(**asked) == release


def test_base_tags_say_their_release_and_compiler():
    from repair_agent.bench.reproducibility import task_settings
    from repair_agent.sandbox.releases import base_tag, read_base_tag

    assert base_tag("bullseye") == "repair-agent/base:bullseye"
    assert base_tag("trixie", compiler=True) == "repair-agent/base:trixie-cc"
    assert read_base_tag("repair-agent/base:bullseye-cc") == ("bullseye", True)
    assert read_base_tag("repair-agent/base:bookworm") == ("bookworm", False)
    assert read_base_tag("repair-agent/base:test-1234") is None and read_base_tag("python:3.9") is None
    task = Task("p-1", "bugsinpy", {}, ["t.py"], ["t.py::t"], "", {"release": "bullseye", "deps": ["six==1"]})
    s = task_settings(task, Settings(deps=["extra"]))
    assert s.image == "repair-agent/base:bullseye-cc" and s.deps == ["extra", "six==1"] and not s.install_project
    assert task_settings(task, Settings(image="repair-agent/base:bookworm")).image == "repair-agent/base:bookworm"


def test_closest_release_is_never_older_than_asked_unless_none_is_new_enough():
    assert closest_release((3, 11)) == "bookworm" and closest_release((3, 13)) == "trixie"
    assert closest_release((4, 0)) == "trixie"


# -- the loader -----------------------------------------------------------------------------------
def test_loader_gives_the_dev_set_and_refuses_held_out_projects(bugsinpy):
    data, repos, commits = bugsinpy
    tasks = load_bugsinpy(data, repos)
    assert [t.task_id for t in tasks] == ["thefuck-1", "thefuck-2"]
    assert DEV_PROJECTS == ("thefuck", "tqdm", "youtube-dl")
    t = tasks[0]
    assert t.dataset == "bugsinpy" and t.test_args == ["tests/test_calc.py"]
    assert t.failing_tests == ["tests/test_calc.py::test_add"]
    assert t.meta["release"] == "bookworm" and t.meta["deps"] == ["pytest-mock", "six==1.15.0"]
    assert "a + b" not in json.dumps(t.to_dict()) and "bug_patch" not in json.dumps(t.to_dict())
    assert reference_patch(t) == REFERENCE  # the harness reads it from the checkout, when it asks
    # BugsInPy's recipe installs the project only where the bug's setup.sh does
    assert t.meta["install_project"] is False and tasks[1].meta["install_project"] is True
    with pytest.raises(BadInput, match="black: held out for evaluation"):
        load_bugsinpy(data, repos, projects=["black"])
    with pytest.raises(BadInput, match="held out"):
        load_bugsinpy(data, repos, ids=["black-1"])
    assert [t.task_id for t in load_bugsinpy(data, repos, projects=["black"], evaluation=True)] == ["black-1"]
    assert [t.task_id for t in load_dataset("bugsinpy", data, ids=["thefuck-2"], repos=repos)] == ["thefuck-2"]
    with pytest.raises(BadInput, match="not a BugsInPy checkout"):
        load_bugsinpy(repos, repos)


def test_a_task_is_the_buggy_tree_with_the_fixed_tests_and_no_later_history(bugsinpy, tmp_path):
    data, repos, commits = bugsinpy
    t = load_bugsinpy(data, repos, ids=["thefuck-1"])[0]
    d = t.materialize(tmp_path / "work")
    assert (d / "calc.py").read_text() == BUGGY_SRC  # the buggy code
    assert (d / "tests/test_calc.py").read_text() == NEW_TEST  # the fixed commit's test
    assert (d / ".gitignore").is_file()
    r = git.Repo(d)
    assert len(list(r.iter_commits("--all"))) == 1 and not r.is_dirty(untracked_files=True)
    for sha in (commits["fixed"], commits["buggy"]):  # neither the fix nor the clone's history came along
        with pytest.raises(git.GitCommandError):
            r.git.cat_file("-e", sha)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *t.failing_tests],
                         cwd=d, capture_output=True, text=True)
    assert res.returncode == 1 and "2 failed" in res.stdout  # both parametrized cases
    t.meta["repo"] = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="git clone https://example.invalid/thefuck"):
        t.materialize(tmp_path / "other")


def test_the_fixed_commits_test_folders_replace_the_buggy_ones(bugsinpy, tmp_path):
    from repair_agent.bench.bugsinpy import test_folders, with_fixed_test_folders

    data, repos, _ = bugsinpy
    task = load_bugsinpy(data, repos, ids=["thefuck-1"])[0]
    assert test_folders(task) == ["tests"]
    spread = Task("x", "bugsinpy", {}, [], None, "", {"test_files": ["tqdm/tests/a.py", "t.py", "src/b_test.py"]})
    assert test_folders(spread) == [".", "src", "tqdm/tests"]
    d = task.materialize(tmp_path / "work")
    assert not (d / "tests/test_signs.py").exists()  # not the bug's test file
    for _ in range(2):  # the second time nothing changes: still a commit, no error
        assert with_fixed_test_folders(task, d) == ["tests/test_calc.py", "tests/test_signs.py"]
        assert (d / "tests/test_signs.py").read_text() == SIGNS_TEST and not git.Repo(d).is_dirty(untracked_files=True)


def test_a_patch_is_correct_when_it_makes_the_human_fixs_program(bugsinpy, tmp_path):
    """BugsInPy has no reference program to run, only the human fix: the same syntax trees are
    correct (comments and layout aside); anything else is unknown, never false."""
    from repair_agent.bench.correctness import same_as_human_fix

    data, repos, _ = bugsinpy
    task = load_bugsinpy(data, repos, ids=["thefuck-1"])[0]
    layout = REFERENCE.replace("+    return a + b", "+    return (a +\n+            b)  # the fix")
    layout = layout.replace("@@ -1,5 +1,5 @@", "@@ -1,5 +1,6 @@")
    same = same_as_human_fix(task, layout, tmp_path / "same")
    assert same["correct"] is True and same["correct_reason"] == "the same program as the human fix in calc.py"
    other = same_as_human_fix(task, REFERENCE.replace("+    return a + b", "+    return b + a"), tmp_path / "other")
    assert other["correct"] == "unknown" and other["correct_reason"].startswith("calc.py differs from the human fix's")
    broken = same_as_human_fix(task, REFERENCE.replace("-    return a - b", "-    return a / b"), tmp_path / "broken")
    assert broken["correct"] == "unknown" and broken["correct_reason"].startswith("the patch does not apply")


def test_rescore_reads_the_clones_from_repos(bugsinpy, tmp_path):
    """`bench rescore --repos`: a BugsInPy run's fixes checked again, the clones where --repos says."""
    data, repos, _ = bugsinpy
    out = tmp_path / "out"
    out.mkdir()
    record = {"task_id": "thefuck-1", "dataset": "bugsinpy", "status": "fixed", "verified": True,
              "patch": REFERENCE, "rounds": [], "tokens": {"prompt": 0, "completion": 0}, "duration_s": 1.0}
    (out / "records.jsonl").write_text(json.dumps(record) + "\n")
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "bench", "rescore", str(out), "--data", str(data),
                           "--repos", str(repos)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (rescored,) = map(json.loads, (out / "records.jsonl").read_text().splitlines())
    assert rescored["correct"] is True and rescored["correct_reason"] == "the same program as the human fix in calc.py"
    assert json.loads((out / "summary.json").read_text())["correct"] == 1


# -- in the sandbox -------------------------------------------------------------------------------
@contextlib.contextmanager
def tools_only_image(tmp_path: Path):
    """The environment image of a project with no requirements file that is not installed: the test
    tools only. Removed afterwards when the test made it."""
    from repair_agent.sandbox import docker_client
    from repair_agent.sandbox.images import _image_exists, env_tag

    (tmp_path / "empty").mkdir()
    image = env_tag(tmp_path / "empty", "repair-agent/base:bookworm", [], install_project=False)
    made = not _image_exists(docker_client(), image)
    try:
        yield image
    finally:
        if made and _image_exists(docker_client(), image):
            docker_client().images.remove(image, force=True)


def test_the_projects_tests_can_say_that_a_plausible_patch_is_wrong(bugsinpy, tmp_path, docker_ready):
    """Beyond the bug's tests: the fixed commit's test folder, on the human fix and on the patch. A
    patch that passes the bug's tests and breaks another of the project's is wrong; one that breaks
    none is then run against the human fix on the calls those tests make, and more."""
    from repair_agent.bench.correctness import check
    from repair_agent.bench.reproducibility import task_settings

    data, repos, _ = bugsinpy
    (data / "projects/thefuck/bugs/1/requirements.txt").write_text("pytest==5.4.2\n")  # no install: no network
    task = load_bugsinpy(data, repos, ids=["thefuck-1"])[0]
    settings = task_settings(task, Settings(sandbox="docker", image="repair-agent/base:bookworm"))
    with tools_only_image(tmp_path):
        overfit = check(task, REFERENCE.replace("+    return a + b", "+    return abs(a) + abs(b)"), tmp_path / "w1",
                        settings=settings)  # add(1, 1) and add(2, 3) pass; add(-1, 1) does not
        other = check(task, REFERENCE.replace("+    return a + b", "+    return b + a"), tmp_path / "w2",
                      settings=settings)
    assert overfit["correct"] is False, overfit
    assert overfit["correct_reason"] == "1 of the project's tests that pass with the human fix fail with the " \
                                        "patch, twice: tests/test_signs.py::test_negative"
    assert other["correct"] is True, other
    assert other["correct_reason"].startswith("calc.py differs from the human fix's; the project's tests (4 pass "
                                              "with the human fix, in 2 modules) pass alike with the patch; agrees "
                                              "with the human fix on ")
    assert other["correct_inputs"]["seen"] >= 3 and other["correct_inputs"]["generated"] > 50


def test_bench_bugsinpy_runs_the_bug_that_reproduces_and_records_the_one_that_does_not(bugsinpy, tmp_path,
                                                                                        docker_ready):
    """The whole command: no model (the mutation search alone), the records, the environment."""
    data, repos, commits = bugsinpy
    (data / "projects/thefuck/bugs/1/requirements.txt").write_text("pytest==5.4.2\n")  # no install: no network
    info = {"python_version": "3.11.2", "buggy_commit_id": commits["buggy"], "fixed_commit_id": commits["fixed"],
            "test_file": "tests/test_calc.py"}
    bug(data, "thefuck", 3, info, "pytest tests/test_calc.py::test_add",  # a reference that is no fix
        patch=REFERENCE.replace("+    return a + b", "+    return a * b"))
    out = tmp_path / "out"
    with tools_only_image(tmp_path) as image:
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "bench", "bugsinpy", "--data", str(data),
                               "--repos", str(repos), "--out", str(out), "--strategies", "mutate",
                               "--sandbox", "docker", "--image", "repair-agent/base:bookworm"],
                              capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    records = {r["task_id"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    one, two = records["thefuck-1"], records["thefuck-2"]
    assert one["status"] == "fixed" and one["verified"] is True and "+    return a + b" in one["patch"]
    assert one["correct"] is True and one["correct_reason"] == "the same program as the human fix in calc.py"
    env = one["environment"]
    assert env["reproduced"] is True and env["reproduce"] == "fails on the buggy code, passes with the reference fix"
    assert env["python"].startswith("3.11.") and env["base"] == "repair-agent/base:bookworm" and env["image"] == image
    assert env["failing_on_buggy"] == ["tests/test_calc.py::test_add[1-1-2]", "tests/test_calc.py::test_add[2-3-5]"]
    assert env["failing_with_reference"] == [] and isinstance(env["image_build_s"], float)
    assert two["status"] == "not_reproduced" and two["rounds"] == []
    assert two["error"] == "passes on the buggy code: tests/test_calc.py::test_double"
    three = records["thefuck-3"]
    assert three["status"] == "not_reproduced" and three["rounds"] == []
    assert three["error"].startswith("fails with the reference fix: tests/test_calc.py::test_add (")
    assert three["environment"]["failing_with_reference"] == ["tests/test_calc.py::test_add[1-1-2]",
                                                              "tests/test_calc.py::test_add[2-3-5]"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["not_reproduced"] == 2 and summary["fixed"] == 1 and summary["fix_rate"] == 1.0
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "bench", "bugsinpy", "--data", str(data),
                           "--repos", str(repos), "--projects", "black", "--out", str(tmp_path / "o2")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "error: black: held out for evaluation" in proc.stderr, proc.stderr


def test_bench_repos_checks_that_the_bug_shows_and_records_its_environment(tmp_path, docker_ready):
    """`bench repos`: the task's failing_tests and test_command are what reproduce runs; a task whose
    named test passes on its commit is recorded as not reproduced, and the agent never runs on it."""
    from repair_agent.bench.datasets import load_repos
    from repair_agent.bench.runner import run_benchmark

    commits = make_project(tmp_path / "proj")
    data = tmp_path / "repos.jsonl"
    data.write_text("".join(json.dumps({"task_id": tid, "repo": "proj", "commit": commits["buggy"],
                                        "test_command": "python -m pytest tests/test_calc.py -k 'not nothing'",
                                        "failing_tests": [test]}) + "\n"
                            for tid, test in (("passes", "tests/test_calc.py::test_double"),
                                              ("no-such-test", "tests/test_calc.py::test_add"))))
    out = tmp_path / "out"
    run_benchmark(load_repos(data), Settings(sandbox="docker", test_timeout_s=60, strategies="mutate"), out,
                  log=lambda m: None)
    records = {r["task_id"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    # test_add is not in the buggy commit's own tests (only the fixed commit has it): nothing ran for it
    assert records["passes"]["status"] == "not_reproduced" and records["passes"]["rounds"] == []
    assert records["passes"]["error"] == "passes on the buggy code: tests/test_calc.py::test_double"
    env = records["passes"]["environment"]
    assert env["python"].startswith("3.11.") and env["image"].startswith("repair-agent/env:")
    assert env["failing_on_buggy"] == [] and env["failing_with_reference"] is None
    # a named test that the commit lacks: pytest refuses the command line, and the record says so
    # (env_error while the run ends with pytest's usage-error exit 4; merged with main's zygote worker it
    # ended with exit 1 and no cases, so envfault's usage rule did not fire: not_reproduced, with the reason)
    assert records["no-such-test"]["status"] in ("env_error", "not_reproduced"), records["no-such-test"]["error"]
    assert "not found: " in records["no-such-test"]["error"] and "test_add" in records["no-such-test"]["error"]


def test_the_files_the_fixed_tests_read_come_along_but_no_new_test_module_and_no_source(tmp_path):
    """As cookiecutter-1's: the fixed commit's test reads a data file that the same commit adds (and
    black-2's tests/data/*.py inputs): the task's tree has it; the fix's own source and a new test
    module of that commit stay out."""
    data, repos = tmp_path / "BugsInPy", tmp_path / "repos"
    repo = git.Repo.init(repos / "thefuck")
    commit(repo, {"calc.py": BUGGY_SRC, "tests/test_calc.py": OLD_TEST}, "start")
    buggy = repo.head.commit.hexsha
    reads = "from pathlib import Path\n\nfrom calc import add\n\n\ndef test_add_file():\n" \
            "    a, b, s = map(int, (Path(__file__).parent / 'data' / 'sums.txt').read_text().split())\n" \
            "    assert add(a, b) == s\n"
    fixed = commit(repo, {"calc.py": FIXED_SRC, "tests/test_calc.py": reads, "tests/data/sums.txt": "2 3 5\n",
                          "tests/data/case_input.py": "x = 1\n", "tests/test_signs.py": SIGNS_TEST}, "the fix")
    bug(data, "thefuck", 1, {"python_version": "3.11.2", "buggy_commit_id": buggy, "fixed_commit_id": fixed,
                             "test_file": "tests/test_calc.py"}, "pytest tests/test_calc.py::test_add_file\n")
    t = load_bugsinpy(data, repos)[0]
    assert t.meta["test_support"] == ["tests/data/case_input.py", "tests/data/sums.txt"]
    d = t.materialize(tmp_path / "work")
    assert (d / "tests/data/sums.txt").read_text() == "2 3 5\n" and (d / "calc.py").read_text() == BUGGY_SRC
    assert not (d / "tests/test_signs.py").exists()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *t.failing_tests],
                         cwd=d, capture_output=True, text=True)
    assert res.returncode == 1 and "assert -1 == 5" in res.stdout  # the bug, not a missing file
