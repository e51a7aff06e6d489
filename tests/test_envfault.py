"""An environment fault is not a bug to fix: it ends the run at reproduce, exit 2, no model request.

The first tests classify real pytest runs (the local sandbox, no Docker, no model). The Docker tests
run `repair-agent fix` end to end on git repositories made here; the model is a SCRIPTED server on
loopback (tests/scripted_server.py), there to show whether it was asked at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import git
from scripted_server import ScriptedServer, answer

from repair_agent.bench.datasets import load_repos
from repair_agent.bench.runner import run_benchmark
from repair_agent.config import Settings
from repair_agent.envfault import env_fault
from repair_agent.sandbox import LocalSandbox, dependency_key
from repair_agent.sandbox.images import packages

CORE = "def second(items):\n    return items[2]\n"
TEST = ("{imports}\nfrom mylib.core import second\n\n\ndef test_second():\n    assert second([4, 5, 6]) == 5\n\n\n"
        "def test_second_of_two():\n    assert second([1, 2]) == 2\n")


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def classify(tmp_path: Path, files: dict[str, str]) -> str:
    tree = write(tmp_path / "tree", {"mylib/__init__.py": "", "mylib/core.py": CORE, **files})
    box = LocalSandbox(tree)
    try:
        run = box.run_tests([], timeout=120)
    finally:
        box.close()
    return env_fault(run, tree)


def test_a_missing_package_is_the_environment(tmp_path):
    fault = classify(tmp_path, {"tests/test_core.py": TEST.format(imports="import not_installed_pkg_q7")})
    assert "`not_installed_pkg_q7`" in fault and "tests/test_core.py" in fault
    assert "--deps not_installed_pkg_q7" in fault and "dependency files" in fault


def test_a_name_or_module_the_repository_lacks_is_the_code(tmp_path):
    assert classify(tmp_path, {"tests/test_core.py": TEST.format(imports="from mylib.core import third")}) == ""
    assert classify(tmp_path, {"tests/test_core.py": TEST.format(imports="import mylib.extra")}) == ""
    assert classify(tmp_path, {"tests/test_core.py": TEST.format(imports="")}) == ""  # a plain failing test


def test_a_missing_fixture_plugin_a_conftest_import_and_a_parse_error(tmp_path):
    fault = classify(tmp_path / "a", {"tests/test_core.py": "def test_x(no_such_plugin_fixture):\n    pass\n"})
    assert "fixture `no_such_plugin_fixture`" in fault and "--deps PKG" in fault
    fault = classify(tmp_path / "b", {"tests/conftest.py": "import yaml_not_here_q7\n",
                                      "tests/test_core.py": TEST.format(imports="")})
    assert "`yaml_not_here_q7`" in fault and "tests/conftest.py" in fault
    fault = classify(tmp_path / "c", {"mylib/core.py": "def second(items:\n    return items[1]\n",
                                      "tests/test_core.py": TEST.format(imports="")})
    assert "mylib/core.py line 1 does not parse" in fault and "--image" in fault


def test_a_pytest_usage_error(tmp_path):
    fault = classify(tmp_path, {"pytest.ini": "[pytest]\naddopts = --cov-q7=mylib\n",
                                "tests/test_core.py": TEST.format(imports="")})
    assert "pytest rejects its command line (unrecognized arguments: --cov-q7=mylib)" in fault


def test_deps_key_the_dependency_image(tmp_path):
    assert packages("six, attrs") == packages(["attrs", "six"]) == ["attrs", "six"]
    assert packages(["blis>=0.4.0,<0.5.0", "six"]) == packages("six, blis>=0.4.0,<0.5.0") == [
        "blis>=0.4.0,<0.5.0", "six"]  # a comma between version specifiers stays (spacy-1's pins)
    assert dependency_key(tmp_path, "img") == dependency_key(tmp_path, "img", [])  # old images stay valid
    assert dependency_key(tmp_path, "img", "six") != dependency_key(tmp_path, "img")
    assert dependency_key(tmp_path, "img", "six,attrs") == dependency_key(tmp_path, "img", ["attrs", "six"])
    with pytest.raises(Exception, match="not pip options"):
        packages(["--index-url=http://example.invalid"])


# -- end to end, in Docker ----------------------------------------------------------------------
CLI = [sys.executable, "-m", "repair_agent"]
RIGHT = "def second(items):\n    return items[1]\n"


def make_git_repo(root: Path, test_imports: str) -> Path:
    write(root, {"mylib/__init__.py": "", "mylib/core.py": CORE,
                 "tests/test_core.py": TEST.format(imports=test_imports)})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def fix(repo, server, *args, runs_root, tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run([*CLI, "fix", str(repo), "--base-url", server.base_url, "--run-dir", str(runs_root),
                           "--strategies", "refine", "--sandbox", "docker", "--rounds", "1", "--json", str(out),
                           *args], capture_output=True, text=True, timeout=900)
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_missing_package_exits_2_without_a_model_request_and_deps_fix_it(tmp_path, runs_root, docker_ready):
    repo = make_git_repo(tmp_path / "repo", "import six")
    with ScriptedServer([[answer(RIGHT)]]) as srv:
        proc, result = fix(repo, srv, runs_root=runs_root, tmp_path=tmp_path)
        assert proc.returncode == 2, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "`six`" in errors[0] and "--deps six" in errors[0], proc.stderr
        assert srv.requests == [] and result is None  # the scripted model was never asked
        proc, result = fix(repo, srv, "--deps", "six", runs_root=runs_root, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "fixed" and "+    return items[1]" in result["patch"]
    assert len(srv.requests) == 1


def test_a_function_the_repository_lacks_is_still_a_code_fault(tmp_path, runs_root, docker_ready):
    repo = make_git_repo(tmp_path / "repo", "from mylib.core import third\n\n\ndef test_third():\n"
                                            "    assert third([4, 5, 6]) == 6\n")
    added = RIGHT + "\n\ndef third(items):\n    return items[2]\n"
    with ScriptedServer([[answer(added, "The module lacks `third`.")]]) as srv:
        proc, result = fix(repo, srv, runs_root=runs_root, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "fixed" and "+def third(items):" in result["patch"]
    assert len(srv.requests) == 1


def test_bench_records_env_error_apart(tmp_path, docker_ready):
    repo = make_git_repo(tmp_path / "repo", "import not_installed_pkg_q7")
    data = tmp_path / "repos.jsonl"
    commit = git(repo, "rev-parse", "HEAD").strip()
    data.write_text(json.dumps({"task_id": "needs-a-dep", "repo": str(repo), "commit": commit,
                                "test_command": "tests/test_core.py"}) + "\n")
    out = tmp_path / "out"
    with ScriptedServer([]) as srv:
        summary = run_benchmark(load_repos(data), Settings(base_url=srv.base_url, sandbox="docker",
                                                           strategies="refine"), out, log=lambda m: None)
        assert srv.requests == []
    rec = json.loads((out / "records.jsonl").read_text())
    assert rec["status"] == "env_error" and "not_installed_pkg_q7" in rec["error"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["env_errors"] == 1 and saved["tasks"] == 1 and saved["fix_rate"] is None
    assert "environment error, not scored" in (out / "report.md").read_text()
