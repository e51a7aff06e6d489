"""`traces.export`: run records -> one PyX-R record per validated fix, deduplicated, decontaminated.

The run comes from a real repair: `run_fix` on the wrong_index fixture, tests in Docker, the model a
SCRIPTED server (tests/scripted_server.py) that answers wrong in round 0 and right in round 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import RIGHT, WRONG, fixture_repo
from scripted_server import ScriptedServer, answer

from repair_agent.training import export as traces
from repair_agent.bench.datasets import quixbugs_dir
from repair_agent.config import Settings
from repair_agent.fix import run_fix


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory, docker_ready) -> tuple[Path, dict]:
    """(runs_root, result) of one real repair: a failed candidate, then the validated fix."""
    base = tmp_path_factory.mktemp("traces")
    repo = fixture_repo("wrong_index", base / "wrong_index")
    runs_root = base / "runs"
    with ScriptedServer([[answer(WRONG)], [answer(RIGHT, "It reads index 2, not 1.")]]) as srv:
        result = run_fix(repo, Settings(base_url=srv.base_url, sandbox="docker", samples=1, use_sbfl=False, strategies="refine",
                                        test_timeout_s=120), runs_root=runs_root, log=lambda m: None)
    assert result["status"] == "fixed" and result["fixed_round"] == 1
    return runs_root, result


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def copy_run(runs_root: Path, run_id: str, dest_root: Path, new_id: str | None = None) -> Path:
    dest = dest_root / (new_id or run_id)
    shutil.copytree(runs_root / run_id, dest)
    return dest


def test_one_record_per_validated_fix(fixed_run, tmp_path):
    runs_root, result = fixed_run
    out = tmp_path / "data.jsonl"
    stats = traces.export([runs_root], out)
    (rec,) = read(out)
    assert stats["records"] == 1 and stats["fixed_candidates"] == 1 and stats["runs_with_proposals"] == 1
    assert set(rec) == {"fault", "response", "metadata"}
    # the fault is round 1's refine instruction, with the buggy code and the failed test
    assert "### Problem" in rec["fault"] and "### Failed Test" in rec["fault"]
    assert "return items[2]" in traces.buggy_code(rec["fault"])
    events = read(runs_root / result["run_id"] / "records.jsonl")
    round1 = next(e for e in events if e["event"] == "propose" and e["round"] == 1)
    assert rec["fault"] == round1["messages"][-1]["content"]
    # the response is the passing answer (monologue + [Refined] code), never the failed one
    assert "return items[1]" in rec["response"] and "[Refined]" in rec["response"]
    assert "### Root Cause Analysis" in rec["response"] and "It reads index 2, not 1." in rec["response"]
    assert "return items[0]" not in rec["response"]
    assert rec["metadata"] == {"source_run": result["run_id"], "source": "user", "task": str(Path(events[0]["repo"])),
                               "model": "scripted-model", "round": 1, "index": 0, "dataset": "",
                               "validated": True}


def test_failed_candidates_never_become_records(fixed_run, tmp_path):
    """A run whose only fix is dropped from its records yields nothing, though it has candidates."""
    runs_root, result = fixed_run
    run = copy_run(runs_root, result["run_id"], tmp_path / "runs")
    kept = [line for line in (run / "records.jsonl").read_text().splitlines()
            if not (json.loads(line)["event"] == "validate"
                    and json.loads(line)["candidate"]["status"] == "fixed")]
    (run / "records.jsonl").write_text("\n".join(kept) + "\n")
    stats = traces.export([run], tmp_path / "out.jsonl")
    assert stats["records"] == 0 and stats["runs_with_proposals"] == 1
    assert (tmp_path / "out.jsonl").read_text() == ""


def test_dedupe_on_normalized_buggy_code(fixed_run, tmp_path):
    runs_root, result = fixed_run
    other = tmp_path / "elsewhere"
    run = copy_run(runs_root, result["run_id"], other, "20990101-000000-abcdef")
    # the same bug again, with other whitespace and comments in the buggy code: still a duplicate
    lines = (run / "records.jsonl").read_text().splitlines()
    redone = []
    for line in lines:
        ev = json.loads(line)
        if ev["event"] == "propose":
            user = ev["messages"][-1]
            code = traces.buggy_code(user["content"])
            user["content"] = user["content"].replace(code, code.replace("return items[2]",
                                                                         "return   items[ 2 ]  # hmm"))
        redone.append(json.dumps(ev))
    (run / "records.jsonl").write_text("\n".join(redone) + "\n")
    out = tmp_path / "data.jsonl"
    # a run dir given twice (directly and through its folder) counts once
    stats = traces.export([runs_root, runs_root / result["run_id"], other], out)
    assert stats["runs"] == 2 and stats["records"] == 1 and stats["duplicates"] == 1
    assert read(out)[0]["metadata"]["source_run"] == result["run_id"]


def bench_folder(runs_root: Path, run_id: str, root: Path, dataset: str | None, task: str = "second") -> Path:
    """A benchmark output folder as the runner leaves it: OUT/records.jsonl + OUT/runs/RUN_ID."""
    out = root / "bench-out"
    run = copy_run(runs_root, run_id, out / "runs")
    info = json.loads((run / "run.json").read_text())
    info["repo"] = str(out / "work" / task / "repo")
    (run / "run.json").write_text(json.dumps(info))
    (out / "work").mkdir()
    if dataset:
        (out / "records.jsonl").write_text(json.dumps({"task_id": task, "dataset": dataset, "run_id": run_id,
                                                       "status": "fixed"}) + "\n")
    return out


def test_benchmark_runs_are_left_out_unless_included(fixed_run, tmp_path):
    runs_root, result = fixed_run
    bench = bench_folder(runs_root, result["run_id"], tmp_path, "quixbugs")
    out = tmp_path / "data.jsonl"
    stats = traces.export([bench], out)
    assert stats["records"] == 0 and stats["excluded"] == {"quixbugs": 1} and out.read_text() == ""
    assert traces.export([bench], out, include_benchmarks=["humanevalfix"])["excluded"] == {"quixbugs": 1}
    stats = traces.export([bench], out, include_benchmarks=["QuixBugs"])
    (rec,) = read(out)
    assert stats["excluded"] == {}
    assert rec["metadata"]["dataset"] == "quixbugs" and rec["metadata"]["source"] == "benchmark"
    assert rec["metadata"]["task"] == "second"
    # the user's own run of the same bug survives; the benchmark's is left out
    stats = traces.export([bench, runs_root], out)
    (rec,) = read(out)
    assert rec["metadata"]["dataset"] == "" and rec["metadata"]["source"] == "user"
    assert stats["excluded"] == {"quixbugs": 1}


def test_an_unlabelled_benchmark_run_is_left_out(fixed_run, tmp_path):
    """An interrupted task: no runner record names it, but it lives in a benchmark folder."""
    runs_root, result = fixed_run
    bench = bench_folder(runs_root, result["run_id"], tmp_path, None)
    stats = traces.export([bench], tmp_path / "a.jsonl", include_benchmarks=["quixbugs"])
    assert stats["records"] == 0 and stats["excluded"] == {"unknown": 1}
    assert traces.export([bench], tmp_path / "a.jsonl", include_benchmarks=["unknown"])["records"] == 1
    # moved out of its folder, its repo path still names the benchmark work folder
    moved = tmp_path / "moved"
    shutil.copytree(bench / "runs", moved)
    (bench / "records.jsonl").write_text(json.dumps({"task_id": "second", "dataset": "humanevalfix"}) + "\n")
    stats = traces.export([moved], tmp_path / "b.jsonl")
    assert stats["records"] == 0 and stats["excluded"] == {"humanevalfix": 1}


def test_a_run_holding_a_shipped_quixbugs_program_is_left_out(fixed_run, tmp_path):
    """A run anywhere whose buggy code is a QuixBugs program is dropped, labels or not."""
    runs_root, result = fixed_run
    run = copy_run(runs_root, result["run_id"], tmp_path / "runs")
    bitcount = next(json.loads(line) for line in (quixbugs_dir() / "quixbugs_python.jsonl").open()
                    if '"id": "bitcount"' in line)["buggy_source"]
    shown = "# python_programs/bitcount.py:2-7 (bitcount)\n" + "\n".join(bitcount.strip().splitlines()[:6])
    lines = []
    for line in (run / "records.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev["event"] == "propose":
            user = ev["messages"][-1]
            user["content"] = user["content"].replace(traces.buggy_code(user["content"]), shown + "\n")
        lines.append(json.dumps(ev))
    (run / "records.jsonl").write_text("\n".join(lines) + "\n")
    stats = traces.export([run], tmp_path / "a.jsonl")
    assert stats["records"] == 0 and stats["excluded"] == {"quixbugs": 1}
    assert traces.export([run], tmp_path / "b.jsonl", include_benchmarks=["quixbugs"])["records"] == 1
    assert read(tmp_path / "b.jsonl")[0]["metadata"]["source"] == "user"


def test_humaneval_and_bugsinpy_code_in_a_run_is_left_out(fixed_run, tmp_path):
    """HumanEval by an entry point's name; BugsInPy by the package of the file the context shows."""
    runs_root, result = fixed_run
    cases = {"humanevalfix": "# he/task.py:1-2 (below_zero)\ndef below_zero(ops):\n    return sum(ops) < 0\n",
             "bugsinpy": "# youtube_dl/utils.py:8-10 (second)\ndef second(items):\n    return items[2]\n"}
    for name, shown in cases.items():
        run = copy_run(runs_root, result["run_id"], tmp_path / name)
        lines = []
        for line in (run / "records.jsonl").read_text().splitlines():
            ev = json.loads(line)
            if ev["event"] == "propose":
                user = ev["messages"][-1]
                user["content"] = user["content"].replace(traces.buggy_code(user["content"]), shown)
            lines.append(json.dumps(ev))
        (run / "records.jsonl").write_text("\n".join(lines) + "\n")
        stats = traces.export([run], tmp_path / f"{name}.jsonl")
        assert stats["records"] == 0 and stats["excluded"] == {name: 1}


def test_cli_leaves_benchmarks_out_by_default(fixed_run, tmp_path):
    runs_root, result = fixed_run
    bench = bench_folder(runs_root, result["run_id"], tmp_path, "quixbugs")
    out = tmp_path / "data.jsonl"

    def export(*extra: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "repair_agent", "traces", "export", str(bench), "--out", str(out),
                               *extra], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return " ".join(proc.stderr.split())

    said = export()
    assert "0 record(s) from 1 run(s)" in said and "excluded: {'quixbugs': 1}" in said
    assert "1 record(s) from 1 run(s)" in export("--include-benchmark", "quixbugs")
    assert read(out)[0]["metadata"]["source"] == "benchmark"


def test_loads_with_datasets(fixed_run, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    runs_root, result = fixed_run
    out = tmp_path / "data.jsonl"
    traces.export([runs_root], out)
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 1 and set(ds.column_names) == {"fault", "response", "metadata"}
    assert ds[0]["metadata"]["round"] == 1 and "return items[1]" in ds[0]["response"]


def test_normalize_ignores_formatting_comments_and_docstrings():
    a = "# mod.py:1-3 (f)\ndef f(x):\n    \"\"\"Doc.\"\"\"\n    return x+1  # add\n"
    b = "def f( x ):\n\n    return x + 1\n"
    assert traces.normalize(a) == traces.normalize(b)
    assert traces.normalize(a) != traces.normalize("def f(x):\n    return x - 1\n")
    # a fragment that does not parse still normalizes its whitespace and comments
    assert traces.normalize("    x  =  1  # c\n  y = 2") == traces.normalize("x = 1\ny = 2")
