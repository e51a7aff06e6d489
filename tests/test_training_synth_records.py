"""The data builder: `traces synth` turns the mutants a repository's tests catch into records
shaped as the agent's infill prompt, and refuses benchmark code (QuixBugs, HumanEval, BugsInPy).

The prompt check asks the agent's own infill source (search.infill.candidates, through the real
OpenAI client) to fill each record's line of the mutant; its model is a SCRIPTED server on
loopback (tests/scripted_server.py) that records the prompts it is sent, named like a Qwen model
so the qwen2.5-coder profile's fill-in-the-middle layout is used. Its answers matter not.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from helpers import CLI, fixture_repo, git
from scripted_server import ScriptedServer

from repair_agent.bench.datasets import quixbugs_dir
from repair_agent.config import Settings
from repair_agent.errors import BadInput
from repair_agent.fix import run_fix
from repair_agent.llm.client import OpenAIModel
from repair_agent.llm.profiles import load_profile
from repair_agent.search import SearchContext
from repair_agent.search.infill import candidates
from repair_agent.training import synth
from repair_agent.training.benchmarks import code_refusal

TEST = "from bits.count import {name}\n\n\ndef test_it():\n    assert {name}({arg}) == {want}\n"


def quixbugs(program: str) -> dict:
    path = quixbugs_dir() / "quixbugs_python.jsonl"
    return next(r for r in map(json.loads, path.read_text().splitlines()) if r["id"] == program)


def tiny_repo(root: Path, source: str, name: str, arg: str, want: str) -> Path:
    (root / "bits").mkdir(parents=True)
    (root / "bits" / "__init__.py").write_text("")
    (root / "bits" / "count.py").write_text(source)
    (root / "tests").mkdir()
    (root / "tests" / "test_count.py").write_text(TEST.format(name=name, arg=arg, want=want))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def test_a_repository_holding_a_quixbugs_program_is_refused(tmp_path):
    """The fixed program, reformatted, commented and under another file name: still QuixBugs."""
    fixed = quixbugs("bitcount")["fixed_source"]
    disguised = "# my bit helpers\n" + fixed.replace("count = 0", "count = 0  # none yet").replace("\n\n\n", "\n\n")
    repo = tiny_repo(tmp_path / "repo", disguised, "bitcount", "127", "7")
    with pytest.raises(BadInput, match=r"benchmark code \(quixbugs:bitcount \(bits/count.py\)\)"):
        synth.synth(repo, tmp_path / "out", max_mutants=2, log=lambda m: None)
    proc = subprocess.run([*CLI, "traces", "synth", str(repo), "--out", str(tmp_path / "out2")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "quixbugs:bitcount" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out2" / "infill.jsonl").exists()


def test_humaneval_and_bugsinpy_code_is_refused(tmp_path):
    he = "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold for a in numbers)\n"
    assert code_refusal(he) == "humanevalfix:has_close_elements"
    assert code_refusal("def first(items):\n    return items[0]\n", "mylist/core.py") == ""
    assert code_refusal("class Box:\n    def has_close_elements(self):\n        return 1\n") == ""  # a method
    assert code_refusal("def f():\n    return 1\n", "youtube_dl/utils.py").startswith("bugsinpy:youtube-dl")
    # a repository that is a BugsInPy project by its package, whatever its files hold
    repo = tiny_repo(tmp_path / "repo", "def double(n):\n    return n * 2\n", "double", "2", "4")
    (repo / "pyproject.toml").write_text('[project]\nname = "tqdm"\nversion = "0"\n')
    with pytest.raises(BadInput, match="bugsinpy:tqdm"):
        synth.synth(repo, tmp_path / "out", max_mutants=2, log=lambda m: None)


def test_the_sources_licence_is_read_for_the_data_card(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nlicense = {text = "BSD-3-Clause"}\n')
    assert synth.licence_of(tmp_path) == "BSD-3-Clause (pyproject.toml)"
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "LICENSE").write_text("\nMIT License\n\nCopyright ...\n")
    assert synth.licence_of(tmp_path) == "MIT License (LICENSE)"


def test_a_clean_repository_yields_records_shaped_as_the_agents_infill_prompt(tmp_path, docker_ready):
    repo = fixture_repo("synth_repo", tmp_path / "synth_repo")
    out = tmp_path / "out"
    summary = synth.synth(repo, out, max_mutants=12, seed=0, sandbox_kind="docker", log=lambda m: None)
    kept = [json.loads(line) for line in (out / "mutants.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in (out / "infill.jsonl").read_text().splitlines()]
    assert records and summary["infill_records"] == len(records) <= len(kept)
    assert summary["licence"] == "unknown"  # the fixture states none: the data card must say so
    assert len({(json.dumps(r["prompt"]), r["completion"]) for r in records}) == len(records)
    profile = load_profile("qwen2.5-coder")
    for rec in records:
        row = next(r for r in kept if r["id"] == rec["metadata"]["task"])
        mutant_repo = Path(row["repo"])
        buggy = (mutant_repo / row["file"]).read_text()
        # the answer is the original text of the masked line(s)
        assert rec["completion"] in row["original"] and rec["completion"] not in buggy
        assert rec["metadata"]["profile"] == "qwen2.5-coder" and rec["metadata"]["dataset"] == "synth"
        with ScriptedServer([["    pass"]] * 10, model="qwen2.5-coder-0.5b") as srv:
            # the search tells the model how the test fails: the record must say it alike
            assert row["failure"] and "# A test fails:" in rec["prompt"]
            ctx = SearchContext(root=mutant_repo, settings=Settings(infill_samples=1),
                                model=OpenAIModel(srv.base_url, None), profile=profile, log=lambda m: None,
                                failure=row["failure"])
            list(candidates({"file": row["file"], "line": rec["metadata"]["line"]}, ctx))
            sent = [r["body"]["prompt"] for r in srv.requests if r["body"].get("n")]
        assert rec["prompt"] in sent, textwrap.shorten(rec["prompt"], 200)


def test_the_agents_search_fixes_of_mutants_become_synth_infill_records(tmp_path, docker_ready):
    """The agent (the mutation search alone, no model) repairs the kept mutants; each fix it finds
    is exported from its run as an infill record labelled synth, the hole at the mutant's line."""
    repo = fixture_repo("synth_repo", tmp_path / "synth_repo")
    out = tmp_path / "out"

    def agent(mutant_repo: Path, runs_root: Path) -> dict:
        settings = Settings(sandbox="docker", strategies="mutate", test_timeout_s=120)
        return run_fix(mutant_repo, settings, runs_root=runs_root, log=lambda m: None)

    summary = synth.synth(repo, out, max_mutants=4, seed=0, sandbox_kind="docker", run_agent=agent,
                          log=lambda m: None)
    kept = [json.loads(line) for line in (out / "mutants.jsonl").read_text().splitlines()]
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    fixed = [r for r in kept if r["agent_status"] == "fixed"]
    assert fixed and summary["agent"]["traces"] == len(traces) == len(fixed)  # every fix here is one line
    for rec in traces:
        row = next(r for r in fixed if r["id"] == rec["metadata"]["task"])
        meta = rec["metadata"]
        assert (meta["kind"], meta["source"], meta["dataset"]) == ("infill", "synth", "synth")
        assert meta["fix_source"] == "mutate"
        assert meta["file"] == row["file"] and row["start"] <= meta["line"] <= row["end"]
        assert rec["prompt"].startswith("<|fim_prefix|>") and rec["completion"].strip() in row["original"]
