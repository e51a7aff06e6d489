"""A user's repository as it is, and the commands as a user runs them: every command ends quietly
when its reader goes away, `ci` takes the flags `fix` takes and never the repository's own
known failures, the sandbox's Python is the repository's, and a run that never needs the model
never starts it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import CLI, fixture_repo, git
from typer.testing import CliRunner

from repair_agent.bench import report, runner
from repair_agent.ci.pr_text import candidates_markdown, pr_body
from repair_agent.cli import app
from repair_agent.deciding_test import as_new_file, deciding_test
from repair_agent.llm.llamacpp import SERVER_MODULE
from repair_agent.sandbox.releases import python_for

SHELL_CLI = " ".join(shlex.quote(part) for part in CLI)


def shell(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`script` through a real shell; it echoes the pipeline's statuses last."""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout)


def test_explain_into_head_exits_141_quietly(make_repo, runs_root, tmp_path):
    """`explain ... 2>&1 | head -1`: the reader goes after the first log line while the run goes on;
    `explain ... | head -n 0`: the result page finds no reader. Both exit 141 and say nothing more."""
    repo = make_repo("passing")
    explain = f"{SHELL_CLI} explain {repo} --sandbox local --run-dir {runs_root}"
    err = tmp_path / "stderr.txt"
    proc = shell(f'{explain} 2>&1 | head -1; echo "status ${{PIPESTATUS[0]}}"')
    first, status = proc.stdout.splitlines()
    assert first.startswith("run ") and status == "status 141", proc.stdout + proc.stderr
    proc = shell(f'{explain} 2>{err} | head -n 0; echo "status ${{PIPESTATUS[0]}}"')
    assert proc.stdout.splitlines() == ["status 141"], proc.stdout + proc.stderr
    log = err.read_text()
    assert log.startswith("run ") and "Traceback" not in log and "error" not in log.lower(), log
    assert list(runs_root.glob("*/scratch")) == []  # the runs' trees are gone, their records stay
    assert len(list(runs_root.glob("*/run.json"))) == 2


def no_docker_env() -> dict:
    """DOCKER_HOST points nowhere: a run stops (exit 3) at the sandbox, after run.json records its settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIR_AGENT_")}
    return {**env, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "NO_PROXY": "*"}


def test_explain_takes_the_sandbox_flags_of_fix(make_repo, runs_root):
    proc = subprocess.run([*CLI, "explain", str(make_repo("wrong_index")), "--run-dir", str(runs_root),
                           "--sandbox", "docker", "--image", "repair-agent/base:trixie", "--deps", "attrs,idna",
                           "--known-failures", "tests/test_core.py::test_first", "--no-build", "--test-timeout", "90",
                           "--no-worker", "--index-url", "http://127.0.0.1:9/simple"],
                          env=no_docker_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "Docker engine not reachable" in proc.stderr, proc.stderr
    (run,) = runs_root.iterdir()
    s = json.loads((run / "run.json").read_text())["settings"]
    assert (s["sandbox"], s["image"], s["deps"], s["known_failures"]) == \
        ("docker", "repair-agent/base:trixie", ["attrs,idna"], ["tests/test_core.py::test_first"])
    assert (s["build_image"], s["test_timeout_s"], s["use_worker"], s["use_trace"]) == (False, 90, False, True)


def test_bench_takes_deps_image_and_no_build(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(runner, "run_benchmark", lambda tasks, settings, out, **kw: seen.update(settings=settings) or {})
    monkeypatch.setattr(report, "print_summary", lambda *a, **kw: None)
    res = CliRunner().invoke(app, ["bench", "quixbugs", "--ids", "gcd", "--out", str(tmp_path), "--deps", "attrs",
                                   "--image", "repair-agent/base:bullseye", "--no-build", "--no-worker"])
    assert res.exit_code == 0, res.output
    s = seen["settings"]
    assert (s.deps, s.image, s.build_image, s.use_worker) == (["attrs"], "repair-agent/base:bullseye", False, False)


# ---- the sandbox's Python, from the repository ---------------------------------------------------
PINNED_39 = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "mylist"
version = "0.1"
requires-python = ">=3.9,<3.10"

[tool.setuptools]
packages = ["mylist"]
"""


@pytest.mark.parametrize("files, release, why", [
    ({}, "bookworm", "the repository names no Python: the default"),
    ({"pyproject.toml": PINNED_39}, "bullseye", 'requires-python ">=3.9,<3.10" in pyproject.toml'),
    ({"pyproject.toml": '[project]\nrequires-python = ">=3.10"\n'}, "bookworm",
     'requires-python ">=3.10" in pyproject.toml'),  # the oldest it supports
    ({"pyproject.toml": '[project]\nrequires-python = ">=3.6,<3.9"\n'}, "bullseye",
     'requires-python ">=3.6,<3.9" in pyproject.toml (no base has a Python it allows)'),
    ({"setup.cfg": "[options]\npython_requires = >=3.12\n"}, "trixie", 'requires-python ">=3.12" in setup.cfg'),
    ({"setup.py": 'setup(python_requires=">=3.11", classifiers=["Programming Language :: Python :: 3.9"])'},
     "bookworm", 'requires-python ">=3.11" in setup.py'),  # requires-python before the classifiers
    ({"setup.py": 'setup(classifiers=["Programming Language :: Python :: 3.7", '
                  '"Programming Language :: Python :: 3.8"])'}, "bullseye", "classifiers in setup.py: Python 3.7, 3.8"),
    ({"pyproject.toml": '[project]\nclassifiers = ["Programming Language :: Python :: 3.11", '
                        '"Programming Language :: Python :: 3.13"]\n'},
     "bookworm", "classifiers in pyproject.toml: Python 3.11, 3.13"),
    ({".python-version": "3.13.1\n"}, "trixie", ".python-version: Python 3.13"),
    ({"tox.ini": "[tox]\nenvlist = py3{10,11,12}, lint\n"}, "bookworm", "tox.ini envlist: Python 3.10, 3.11, 3.12"),
    ({"tox.ini": "[tox]\nenvlist = py39-django{22,32}\n"}, "bullseye", "tox.ini envlist: Python 3.9"),
    ({"tox.ini": "not [[ an ini", "pyproject.toml": "not [[ toml"}, "bookworm",
     "the repository names no Python: the default"),
])
def test_the_python_is_the_oldest_the_repository_supports(files, release, why, tmp_path):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert python_for(tmp_path) == (release, why)
    assert python_for(tmp_path, "3.12") == ("trixie", "--python 3.12 (no base has it: the closest newer)")
    assert python_for(tmp_path, "3.9") == ("bullseye", "--python 3.9")


def fix_json(repo, runs_root, out, *args, env=None, timeout=120):
    return subprocess.run([*CLI, "fix", str(repo), "--run-dir", str(runs_root), "--strategies", "mutate",
                           "--json", str(out), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("args, message", [
    (["--python", "3"], "--python 3: give a version X.Y, e.g. 3.9"),
    (["--python", "3.9", "--image", "python:3.9-slim"],
     "--python 3.9 and --image python:3.9-slim exclude each other: the image has its own Python"),
])
def test_a_bad_python_is_refused_before_a_run_directory(args, message, make_repo, runs_root, tmp_path):
    proc = fix_json(make_repo("passing"), runs_root, tmp_path / "r.json", *args)
    assert proc.returncode == 2 and f"error: {message}" in proc.stderr, proc.stderr
    assert not runs_root.exists()


def test_the_local_sandbox_says_it_ran_this_machines_python(make_repo, runs_root, tmp_path):
    repo = make_repo("passing")
    (repo / "pyproject.toml").write_text(PINNED_39)
    out = tmp_path / "r.json"
    proc = fix_json(repo, runs_root, out, "--sandbox", "local", "--python", "3.9")
    assert proc.returncode == 0, proc.stderr
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    result = json.loads(out.read_text())
    assert (result["python"], result["python_reason"]) == (here, "the local sandbox runs this machine's Python")
    assert f"python {here}: the local sandbox runs" in proc.stderr
    assert "--python 3.9 is for the Docker sandbox" in proc.stderr or here == "3.9"


@pytest.mark.slow
def test_a_repository_pinned_to_39_runs_on_bullseye(tmp_path, runs_root, docker_ready):
    """requires-python ">=3.9,<3.10": on bookworm's 3.11 the project would not even install. The
    bullseye base is built on first use (about a minute) where it is missing."""
    repo = fixture_repo("wrong_index", tmp_path / "repo")
    (repo / "pyproject.toml").write_text(PINNED_39)
    git(repo, "add", "pyproject.toml")
    git(repo, "commit", "-q", "-m", "pin Python 3.9")
    out = tmp_path / "r.json"
    proc = fix_json(repo, runs_root, out, "--sandbox", "docker", timeout=900)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert (result["status"], result["python"], result["sandbox"]) == ("fixed", "3.9", "docker")
    assert result["python_reason"] == 'requires-python ">=3.9,<3.10" in pyproject.toml'
    assert "items[1]" in result["patch"]
    (run,) = runs_root.iterdir()
    records = [json.loads(ln) for ln in (run / "records.jsonl").read_text().splitlines()]
    (sandbox,) = [r for r in records if r["event"] == "sandbox"]
    assert (sandbox["image"], sandbox["python"]) == ("repair-agent/base:bullseye", "3.9")


# ---- the model starts when it is first asked ------------------------------------------------------
def children_while_running(proc: subprocess.Popen) -> list[str]:
    """The command lines of `proc`'s child processes, polled until it ends."""
    seen: dict[int, str] = {}
    while proc.poll() is None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if ppid == proc.pid and cmdline:  # empty: between fork and exec, or a zombie
                    seen[int(stat.parent.name)] = cmdline
            except (OSError, ValueError, IndexError):  # gone meanwhile
                pass
        time.sleep(0.02)
    return list(seen.values())


@pytest.mark.model
def test_an_environment_fault_starts_no_model_server(make_repo, runs_root, tmp_path):
    """The embedded default (no --base-url, every strategy): a test module imports a package the
    sandbox lacks, so the run ends at reproduce, exit 2, and the llama.cpp server never starts."""
    repo = make_repo("wrong_index")
    test = repo / "tests" / "test_core.py"
    test.write_text("import not_installed_pkg_q7  # noqa: F401\n" + test.read_text())
    git(repo, "commit", "-q", "-am", "a dependency the sandbox lacks")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIR_AGENT_")}
    proc = subprocess.Popen([*CLI, "fix", str(repo), "--run-dir", str(runs_root), "--sandbox", "local", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    children = children_while_running(proc)
    err = proc.stderr.read()
    assert proc.returncode == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "not_installed_pkg_q7" in errors[0], err
    assert any("pytest" in c or "warm_worker" in c for c in children), children  # the watch sees the tests run
    assert not any(SERVER_MODULE in c for c in children), children
    assert "serving" not in err


# ---- a disagreement becomes a test ---------------------------------------------------------------
def disagreeing(call, chosen, other, kind="patches disagree"):
    """A result as run_fix shapes it, with two plausible patches of stats.py that disagree on `call`."""
    plausible = [{"file": "stats.py", "line": 10, "note": n, "patch": "diff"} for n in ("`+` -> `-`", "`1` -> `0`")]
    return {"run_id": "r1", "tests_before": {"failing": ["tests/test_stats.py::test_even"]},
            "search": {"plausible": plausible},
            "disagreement": {"kind": kind, "function": "median", "input": call,
                             "outcomes": {"patch #1": chosen, "patch #2": other}}}


def test_the_deciding_input_and_the_chosen_result_become_a_test(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_stats.py").write_text("from pkg.stats import median as m, median\n")
    ok, raised = {"kind": "ok", "value": 1.5, "objects": []}, {"kind": "raise", "type": "IndexError"}
    test = deciding_test(disagreeing({"args": [[1, 2]], "kwargs": {"key": None}}, ok, raised), tmp_path)
    assert test["path"] == "tests/test_median_deciding_input.py"
    text = test["text"]
    assert "from pkg.stats import median\n" in text  # as the failing test imports it
    assert "    assert median([1, 2], key=None) == 1.5\n" in text
    assert "#   patch #2 (`1` -> `0` at stats.py:10) raises IndexError" in text
    assert "The chosen patch (`+` -> `-` at stats.py:10) returns 1.5." in text
    compile(text, "t.py", "exec")
    (tmp_path / test["path"]).write_text("taken")  # a second one does not overwrite it
    test = deciding_test(disagreeing({"args": [[]]}, raised, ok), tmp_path)
    assert test["path"] == "tests/test_median_deciding_input_2.py"
    assert "import pytest" in test["text"] and "    with pytest.raises(IndexError):\n        median([])" in test["text"]
    assert "\n+    with pytest.raises(IndexError):\n" in as_new_file(test["path"], test["text"])
    # nothing a literal can write, or no disagreement between patches: no test
    assert deciding_test(disagreeing({"args": [{"$obj": 0}], "objects": [{"type": "P", "attrs": {}}]}, ok, raised),
                         tmp_path) is None
    assert deciding_test(disagreeing({"args": [[1]]}, {"kind": "ok", "value": {"$repr": "<P>"}}, raised),
                         tmp_path) is None
    assert deciding_test(disagreeing({"args": [[1]]}, {"kind": "raise", "type": "StatsError"}, ok), tmp_path) is None
    assert deciding_test(disagreeing({"args": [[1]]}, ok, raised, kind="docstring example"), tmp_path) is None


def median_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "median"
    repo.mkdir()
    for f in (Path(__file__).parents[1] / "examples" / "median").glob("*.py"):
        (repo / f.name).write_text(f.read_text())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the demo's example")
    return repo


@pytest.mark.slow
def test_the_demos_disagreement_becomes_a_test_that_makes_it_high(tmp_path, runs_root, docker_ready):
    """examples/median: the 3 plausible patches disagree on median([1, 2]). fix writes the test,
    prints its path, and --branch --add-tests commits it with the fix; run again with the test added
    (and nothing else), the same patch comes with confidence high."""
    repo = median_repo(tmp_path)
    out = tmp_path / "first.json"
    proc = fix_json(repo, runs_root, out, "--sandbox", "docker", "--branch", "decided", "--add-tests", timeout=600)
    assert proc.returncode == 0, proc.stderr
    first = json.loads(out.read_text())
    assert first["confidence"] == "low" and first["disagreement"]["text"].startswith("median([1, 2]):")
    written = Path(first["deciding_test"]["file"])
    assert written.parent.parent == runs_root and written.name == first["deciding_test"]["path"]
    assert f"deciding test: {written}" in proc.stdout
    assert "    assert median([1, 2]) == 1.5\n" in written.read_text()
    assert git(repo, "show", "decided:" + written.name) == written.read_text()  # with the fix, on the branch
    assert git(repo, "show", "decided:stats.py") != git(repo, "show", "main:stats.py")
    (repo / written.name).write_text(written.read_text())
    git(repo, "add", written.name)
    git(repo, "commit", "-q", "-m", "the deciding test")
    out = tmp_path / "second.json"
    proc = fix_json(repo, runs_root, out, "--sandbox", "docker", timeout=600)
    assert proc.returncode == 0, proc.stderr
    second = json.loads(out.read_text())
    assert second["confidence"] == "high", second["confidence_reason"]
    assert second["patch"] == first["patch"] and "deciding_test" not in second


def test_ci_suggests_the_deciding_test_and_never_adds_it(tmp_path):
    """The pull request's body (and the job summary of a fix held back) shows the test as a
    suggestion; the branch carries the fix's patch alone."""
    result = disagreeing({"args": [[1, 2]]}, {"kind": "ok", "value": 1.5}, {"kind": "raise", "type": "IndexError"})
    test = deciding_test(result, tmp_path)
    written = tmp_path / "run" / "test_median_deciding_input.py"
    written.parent.mkdir()
    written.write_text(test["text"])
    result.update(status="fixed", patch="diff --git a/stats.py b/stats.py\n", root_cause="r", confidence="low",
                  confidence_reason="they disagree", deciding_test={"file": str(written), "path": test["path"]})
    for page in (pr_body(result, "0" * 40, "main"), candidates_markdown(result, "high")):
        assert "not added: check its expected value (the chosen patch's), then add it as " \
               "`tests/test_median_deciding_input.py`" in page
        assert "```python\n" + test["text"].rstrip("\n") + "\n```" in page
    written.unlink()  # the run directory gone: no suggestion, no error
    assert "not added" not in pr_body(result, "0" * 40, "main")
