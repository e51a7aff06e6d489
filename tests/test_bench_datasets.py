"""Benchmark datasets: QuixBugs (shipped), HumanEvalFix (fixture), real-repo bugs (local repo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import git
import pytest

from repair_agent.bench.datasets import (
    load_dataset,
    load_humanevalfix,
    load_quixbugs,
    load_repos,
    quixbugs_bug_lines,
    quixbugs_dir,
)
from repair_agent.bench.tasks import Task

FIXTURES = Path(__file__).parent / "fixtures"
HEF = FIXTURES / "humanevalfix_sample.jsonl"
PY = str(Path(sys.executable))
QUICK = ["gcd", "flatten", "is_valid_parenthesization"]
FORBIDDEN_KEYS = {"fixed_source", "diff", "code_diff", "bug_lines", "bug_lines_changed",
                  "bug_lines_insert_after", "bug_lines_raw", "fix_kind", "pytest_command_fixed",
                  "fixed_path", "legacy_graph_test_driver", "fixed_correct_flag",
                  "fixed_in_place", "canonical_solution", "fixed_passes"}


def pytest_in(repo: Path, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    # No plugin autoload (the venv's plugins cost a second per start); pytest-timeout by name.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "pytest_timeout", "--timeout=5", *args],
                          cwd=repo, capture_output=True, text=True, timeout=timeout, env=env)


def all_keys(obj) -> set[str]:
    keys: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            keys.add(k)
            keys |= all_keys(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            keys |= all_keys(v)
    return keys


def raw_quixbugs() -> dict[str, dict]:
    with open(quixbugs_dir() / "quixbugs_python.jsonl") as f:
        return {r["id"]: r for r in map(json.loads, filter(str.strip, f))}


# ------------------------------------------------------------------------------ QuixBugs

def test_shipped_data_and_license():
    d = quixbugs_dir()
    assert (d / "quixbugs_python.jsonl").is_file() and (d / "support_files.json").is_file()
    assert "Copyright 2017-2019 James Koppel" in (d / "LICENSE").read_text()
    assert "4257f44b0ff1181dedaedee6a447e133219fcebf" in (d / "README.md").read_text()


def test_quixbugs_tasks_never_hold_the_fix():
    raw = raw_quixbugs()
    tasks = load_quixbugs()
    assert len(tasks) == 40 and len({t.task_id for t in tasks}) == 40
    for t in tasks:
        r = raw[t.task_id]
        assert t.dataset == "quixbugs"
        assert t.test_args == [f"python_testcases/test_{t.task_id}.py"]
        assert not any(p.startswith("correct_python_programs") for p in t.files)
        assert set(t.files) >= {"conftest.py", "python_testcases/load_testdata.py",
                                "python_testcases/node.py", "python_programs/node.py",
                                r["buggy_path"], r["test_path"]}
        assert t.files[r["buggy_path"]] == r["buggy_source"]
        assert not (all_keys(t.to_dict()) & FORBIDDEN_KEYS)
        dumped = json.dumps(t.to_dict())
        assert json.dumps(r["fixed_source"].strip())[1:-1] not in dumped
        assert json.dumps(r["diff"])[1:-1] not in dumped
        for content in t.files.values():
            assert r["fixed_source"].strip() not in content
        assert t.failing_tests and all(x.startswith(r["test_path"] + "::")
                                       for x in t.failing_tests)
    assert load_quixbugs(ids=["gcd"])[0].problem.startswith("Input:")
    assert "Bitcount" in load_quixbugs(ids=["bitcount"])[0].problem


def test_quixbugs_select_and_bug_lines():
    assert [t.task_id for t in load_quixbugs(ids=["sqrt", "gcd"])] == ["sqrt", "gcd"]
    assert len(load_quixbugs(limit=3)) == 3
    with pytest.raises(ValueError):
        load_quixbugs(ids=["no_such_program"])
    lines = quixbugs_bug_lines()
    assert len(lines) == 40
    assert lines["bitcount"] == {"file": "python_programs/bitcount.py", "lines": [5],
                                 "changed": [5], "insert_after": []}
    assert load_dataset("quixbugs", limit=2)[1].task_id == "breadth_first_search"


def test_all_quixbugs_materialize(tmp_path):
    for t in load_quixbugs():
        d = t.materialize(tmp_path / t.task_id)
        repo = git.Repo(d)
        assert len(list(repo.iter_commits())) == 1
        assert not repo.is_dirty(untracked_files=True)
        assert repo.head.commit.author.name == "repair-agent bench"
        for rel, content in t.files.items():
            assert (d / rel).read_text() == content
        assert not (d / "correct_python_programs").exists()
    with pytest.raises(FileExistsError):
        load_quixbugs(ids=["gcd"])[0].materialize(tmp_path / "gcd")


@pytest.mark.parametrize("pid", QUICK)
def test_quick_quixbugs_fail_on_buggy_code(tmp_path, pid):
    t = load_quixbugs(ids=[pid])[0]
    d = t.materialize(tmp_path / pid)
    res = pytest_in(d, t.test_args)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "error" not in res.stdout.splitlines()[-1]  # failures, not collection errors
    failed = {ln.split(" ")[1] for ln in res.stdout.splitlines() if ln.startswith("FAILED ")}
    assert failed == set(t.failing_tests)
    # The shipped tests pass once the fix is in place: the rebuilt folder is sound.
    (d / t.meta["program_path"]).write_text(raw_quixbugs()[pid]["fixed_source"])
    assert pytest_in(d, t.test_args).returncode == 0
    # Test runs leave the tree clean (.gitignore covers caches).
    git.Repo(d).git.checkout("--", ".")
    assert not git.Repo(d).is_dirty(untracked_files=True)


# ------------------------------------------------------------------------------ HumanEvalFix

def test_humanevalfix_fail_on_buggy_code_and_canonical_is_gone(tmp_path):
    raw = [json.loads(x) for x in HEF.read_text().splitlines() if x.strip()]
    tasks = load_humanevalfix(HEF)
    assert [t.task_id for t in tasks] == ["Python/900", "Python/901", "Python/902"]
    for r, t in zip(raw, tasks):
        canonical = r["canonical_solution"]
        assert canonical.strip() not in json.dumps(t.to_dict())
        assert canonical.strip() not in repr(t)
        assert "canonical_solution" not in all_keys(t.to_dict())
        assert t.problem == ""  # HumanEvalFix-Tests: no description by default
        d = t.materialize(tmp_path / t.task_id.replace("/", "_"))
        for f in d.rglob("*"):
            if f.is_file() and ".git" not in f.relative_to(d).parts:
                assert canonical.strip() not in f.read_text()
        res = pytest_in(d, t.test_args)
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"FAILED {t.failing_tests[0]}" in res.stdout
        # The same tests pass on the canonical solution (the fixture is sound).
        prog = d / t.meta["program_path"]
        prog.write_text(r["declaration"] + canonical)
        assert pytest_in(d, t.test_args).returncode == 0


def test_humanevalfix_options():
    t = load_humanevalfix(HEF, ids=["Python/902"], with_docs=True)[0]
    assert t.problem.startswith("Return the largest absolute difference")
    assert t.meta["variant"] == "docs" and t.meta["entry_point"] == "max_gap"
    assert "check(max_gap)\n" in t.files["test_max_gap.py"]
    assert len(load_humanevalfix(HEF, limit=2)) == 2
    assert load_dataset("humanevalfix", HEF, ids=["Python/901"])[0].task_id == "Python/901"
    with pytest.raises(ValueError):
        load_dataset("humanevalfix")


# ------------------------------------------------------------------------------ real repos

def make_source_repo(path: Path) -> tuple[str, str]:
    path.mkdir()
    repo = git.Repo.init(path)
    actor = git.Actor("t", "t@example.invalid")
    (path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (path / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n"
                                       "    assert add(2, 2) == 4\n")
    repo.index.add(["calc.py", "test_calc.py"])
    good = repo.index.commit("good", author=actor, committer=actor).hexsha
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    repo.index.add(["calc.py"])
    bad = repo.index.commit("bad", author=actor, committer=actor).hexsha
    (path / "calc.py").write_text("def add(a, b):\n    return a + b + 0\n")
    repo.index.add(["calc.py"])
    repo.index.commit("fixed later", author=actor, committer=actor)
    return good, bad


def test_repos_clone_at_commit(tmp_path):
    good, bad = make_source_repo(tmp_path / "src")
    data = tmp_path / "repos.jsonl"
    data.write_text(json.dumps({"task_id": "calc-1", "repo": "src", "commit": bad,
                                "test_command": "python -m pytest test_calc.py -x",
                                "failing_tests": ["test_calc.py::test_add"]}) + "\n")
    [t] = load_repos(data)
    assert t.test_args == ["test_calc.py", "-x"]
    assert t.meta["repo"] == str((tmp_path / "src").resolve())
    d = t.materialize(tmp_path / "work")
    assert git.Repo(d).head.commit.hexsha == bad
    assert "a - b" in (d / "calc.py").read_text()
    res = pytest_in(d, t.test_args)
    assert res.returncode == 1 and "FAILED test_calc.py::test_add" in res.stdout
    assert load_dataset("repos", data)[0].failing_tests == ["test_calc.py::test_add"]


def test_repos_plain_folder_is_copied(tmp_path):
    src = tmp_path / "plain"
    src.mkdir()
    (src / "m.py").write_text("X = 1\n")
    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps({"task_id": "p", "repo": str(src), "commit": None,
                                "test_command": ["-k", "x"], "failing_tests": []}) + "\n")
    [t] = load_repos(data)
    assert t.failing_tests is None and t.test_args == ["-k", "x"]
    d = t.materialize(tmp_path / "w")
    assert (d / "m.py").read_text() == "X = 1\n"
    assert len(list(git.Repo(d).iter_commits())) == 1


def test_repos_plain_folder_keeps_symlinks_even_dangling_ones(tmp_path):
    src = tmp_path / "plain"
    (src / "docs").mkdir(parents=True)
    (src / "m.py").write_text("X = 1\n")
    (src / "docs" / "gone.md").symlink_to("../_build/generated/gone.md")  # black's docs: built, not shipped
    (src / "alias.py").symlink_to("m.py")
    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps({"task_id": "p", "repo": str(src), "test_command": "m.py"}) + "\n")
    d = load_repos(data)[0].materialize(tmp_path / "w")
    assert os.readlink(d / "docs" / "gone.md") == "../_build/generated/gone.md"
    assert os.readlink(d / "alias.py") == "m.py"  # a link, not a second copy of the file
    assert "docs/gone.md" in git.Repo(d).git.ls_files()


def test_repos_test_command_is_split_once_with_its_quoting(tmp_path):
    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps({"task_id": "p", "repo": "x", "test_command": 'pytest t.py -k "not a"'}) + "\n")
    assert load_repos(data)[0].test_args == ["t.py", "-k", "not a"]


def test_task_rejects_unsafe_paths(tmp_path):
    t = Task("x", "quixbugs", {"../evil.py": ""}, [], None, "", {})
    with pytest.raises(ValueError):
        t.materialize(tmp_path / "x")
