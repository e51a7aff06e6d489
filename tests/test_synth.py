"""Synthetic bugs: AST mutants of a passing repository, kept only when its tests catch them.

`synth` runs the tests in Docker; each kept mutant is checked again here with a plain pytest run of
its committed repository, and each discarded one is re-made and shown to pass.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FIXTURES, git
from scripted_server import ScriptedServer, answer

from repair_agent.training import synth
from repair_agent.config import Settings
from repair_agent.errors import BadInput
from repair_agent.fix import run_fix

REPO = FIXTURES / "synth_repo"


def pytest_fails(repo: Path) -> bool:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"], cwd=repo,
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                                            "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode in (0, 1, 2), proc.stdout + proc.stderr
    return proc.returncode != 0


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_mutants_are_one_edit_in_one_non_test_function(tmp_path):
    made = synth.mutants(REPO, max_mutants=40, seed=0)
    assert len(made) == 40 and len({m.id for m in made}) == 40
    assert {m.kind for m in made} == set(synth.KINDS)
    assert {m.function for m in made} == {"clamp", "running_total", "window_sums", "average"}
    assert all(m.file == "mathx/core.py" for m in made)  # never the tests
    source = (REPO / "mathx" / "core.py").read_text()
    for m in made:
        copy = tmp_path / m.id
        shutil.copytree(REPO, copy)
        m.apply(copy)
        new = (copy / "mathx" / "core.py").read_text()
        ast.parse(new)
        assert ast.dump(ast.parse(new)) != ast.dump(ast.parse(source))
        old_lines, new_lines = source.splitlines(), new.splitlines()
        # only the function's own lines changed
        assert old_lines[:m.start - 1] == new_lines[:m.start - 1]
        tail = len(old_lines) - m.end
        assert tail == 0 or old_lines[-tail:] == new_lines[-tail:]
        assert (copy / "tests" / "test_core.py").read_text() == (REPO / "tests" / "test_core.py").read_text()
    # seeded: the same seed gives the same mutants, another seed another order
    assert [m.id for m in synth.mutants(REPO, 10, seed=0)] == [m.id for m in made[:10]]
    assert [m.id for m in synth.mutants(REPO, 10, seed=1)] != [m.id for m in made[:10]]


def test_mutant_descriptions_match_the_edit():
    by_desc = {m.description: m for m in synth.all_mutants(REPO)}
    m = by_desc["clamp: line 6: `<` became `<=`"]
    assert "    if value <= low:\n" in m.source and m.kind == "comparison"
    m = by_desc["running_total: line 18: `+=` became `-=`"]
    assert "        total -= x\n" in m.source and m.kind == "operator"
    m = by_desc["window_sums: line 25: `i + k` became `i + k + 1`"]
    assert "items[i:i + k + 1]" in m.source and m.kind == "off_by_one"
    m = next(m for m in by_desc.values() if m.kind == "dropped_statement" and "out.append(total)" in m.description)
    assert "out.append" not in m.source and m.source.count("\n") == m.original.count("\n") - 1


def test_methods_are_mutated_in_place(tmp_path):
    (tmp_path / "box.py").write_text(
        "class Box:\n    def __init__(self, n):\n        self.n = n  # keep\n\n"
        "    @property\n    def double(self):\n        return self.n * 2\n")
    made = [m for m in synth.all_mutants(tmp_path) if m.function == "Box.double"]
    assert {m.kind for m in made} >= {"operator", "wrong_constant"}
    op = next(m for m in made if m.kind == "operator")
    assert op.start == 5 and op.source == "    @property\n    def double(self):\n        return self.n // 2\n"
    op.apply(tmp_path)
    assert "self.n = n  # keep" in (tmp_path / "box.py").read_text()  # the rest of the file as it was


def test_synth_keeps_only_mutants_that_fail_tests(make_repo, tmp_path, docker_ready):
    repo = make_repo("synth_repo")
    out = tmp_path / "out"
    summary = synth.synth(repo, out, max_mutants=8, sandbox_kind="docker", log=lambda m: None)
    kept, discarded = read(out / "mutants.jsonl"), read(out / "discarded.jsonl")
    assert summary["tried"] == 8 and summary["kept"] == len(kept) and summary["discarded"] == len(discarded)
    assert len(kept) + len(discarded) == 8
    assert kept and discarded  # `average` is untested: its mutants survive
    assert not {r["id"] for r in kept} & {r["id"] for r in discarded}
    for row in kept:
        # the recorded run had a failing test, and a plain pytest run of the committed mutant agrees
        assert row["failing"] and row["tests"]["failed"] + row["tests"]["errors"] >= 1
        mrepo = Path(row["repo"])
        assert mrepo == out / "mutants" / row["id"] / "repo"
        assert git(mrepo, "status", "--porcelain") == ""
        assert git(mrepo, "rev-parse", "HEAD").strip() == row["commit"]
        assert row["patch"].startswith("diff --git a/mathx/core.py")
        assert pytest_fails(mrepo)
    for row in discarded:
        assert "pass" in row["reason"] and not (out / "mutants" / row["id"]).exists()
        copy = tmp_path / "check" / row["id"]
        shutil.copytree(REPO, copy)
        synth.Mutant(**{k: row[k] for k in synth.Mutant.__dataclass_fields__}).apply(copy)
        assert not pytest_fails(copy)
    assert any(r["function"] == "average" for r in discarded)


def test_synth_refuses_a_repo_whose_tests_fail(make_repo, tmp_path, docker_ready):
    repo = make_repo("wrong_index")
    with pytest.raises(BadInput, match="must pass before mutating"):
        synth.synth(repo, tmp_path / "out", max_mutants=2, sandbox_kind="docker", log=lambda m: None)


def test_synth_with_the_agent_turns_repairs_into_traces(make_repo, tmp_path, docker_ready):
    """The agent (a scripted model that answers with the original function) repairs each kept
    mutant; the validated repairs come out as SFT records labelled `synth`."""
    repo = make_repo("synth_repo")
    out = tmp_path / "out"

    def agent(mutant_repo: Path, runs_root: Path) -> dict:
        row = next(r for r in read(out / "mutants.jsonl") if r["repo"] == str(mutant_repo))
        with ScriptedServer([[answer(row["original"])]]) as srv:
            return run_fix(mutant_repo, Settings(base_url=srv.base_url, sandbox="docker", rounds=1, samples=1, strategies="refine",
                                                 use_sbfl=False, test_timeout_s=120),
                           runs_root=runs_root, log=lambda m: None)

    summary = synth.synth(repo, out, max_mutants=4, seed=0, sandbox_kind="docker", run_agent=agent,
                          log=lambda m: None)
    kept = read(out / "mutants.jsonl")
    assert kept and summary["agent"]["fixed"] == len(kept) == summary["agent"]["traces"]
    records = read(out / "traces.jsonl")
    assert {r["metadata"]["task"] for r in records} == {r["id"] for r in kept}
    assert {(r["metadata"]["dataset"], r["metadata"]["source"]) for r in records} == {("synth", "synth")}
    for rec in records:
        row = next(r for r in kept if r["id"] == rec["metadata"]["task"])
        assert row["agent_status"] == "fixed" and row["run_id"] == rec["metadata"]["source_run"]
        assert row["original"].strip().splitlines()[-1].strip() in rec["response"]
