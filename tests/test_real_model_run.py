"""`repair-agent fix` against a REAL model: llama.cpp's server with SmolLM2-135M on loopback.

SmolLM2 is far too weak to repair code; these tests check that whatever it writes is handled
(parsed, recorded, never applied half-way), and that a server dying mid-run ends the run with
exit 3 and loses nothing, so that `--resume` on a restarted server finishes it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from helpers import tree_hash
from model_server import running_server, smollm_gguf  # noqa: F401  (fixture)

CLI = [sys.executable, "-m", "repair_agent", "fix"]  # with --strategies refine: the model's loop
STATUSES = {"no_code", "truncated", "not_applicable", "test_edit", "failed", "passed_failing", "fixed", "skipped",
            "prompt_too_long"}
pytestmark = pytest.mark.model


def test_real_output_is_parsed_and_recorded(smollm_gguf, make_repo, tmp_path, docker_ready):  # noqa: F811
    repo = make_repo("wrong_index")
    before = tree_hash(repo)
    out = tmp_path / "r.json"
    with running_server() as server:
        proc = subprocess.run([*CLI, str(repo), "--base-url", server.base_url, "--sandbox", "docker", "--strategies", "refine",
                               "--rounds", "2", "--samples", "2", "--json", str(out), "--run-dir",
                               str(tmp_path / "runs")], capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(out.read_text())
    cands = [c for r in result["rounds"] for c in r["candidates"]]
    assert len(cands) == 3 and {c["status"] for c in cands} <= STATUSES
    assert all(c["patch"] == "" for c in cands if c["status"] in ("no_code", "truncated", "not_applicable"))
    assert result["tokens"]["completion"] > 0 and result["model"] == "smollm2-135m"
    assert tree_hash(repo) == before


def test_server_killed_mid_run_then_resume_finishes(smollm_gguf, make_repo, tmp_path, docker_ready):  # noqa: F811
    repo = make_repo("wrong_index")
    runs = tmp_path / "runs"
    with running_server() as server:
        proc = subprocess.Popen([*CLI, str(repo), "--base-url", server.base_url, "--sandbox", "docker", "--strategies", "refine",
                                 "--rounds", "3", "--samples", "2", "--run-dir", str(runs)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            records = list(runs.glob("*/records.jsonl"))
            if records and '"event": "propose"' in records[0].read_text():
                break
            time.sleep(0.1)
    # leaving the block killed the server while the run was between rounds
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "error:" in err
    (run_dir,) = runs.iterdir()
    kept = (run_dir / "records.jsonl").read_text()
    assert '"event": "propose"' in kept and '"event": "result"' not in kept
    with running_server() as server:
        again = subprocess.run([*CLI, str(repo), "--base-url", server.base_url, "--resume", run_dir.name, "--strategies", "refine",
                                "--run-dir", str(runs)], capture_output=True, text=True, timeout=600)
    assert again.returncode in (0, 1), again.stderr
    final = (run_dir / "records.jsonl").read_text()
    assert final.startswith(kept)  # nothing recorded before the crash was lost or rewritten
    assert '"event": "result"' in final and json.loads((run_dir / "result.json").read_text())["run_id"] == run_dir.name


def test_prompts_longer_than_the_context_end_the_rounds_and_keep_the_fix(smollm_gguf, make_repo, tmp_path,  # noqa: F811
                                                                          docker_ready):
    """A server with a 256-token context: no refine prompt fits, so the loop ends after its first round
    with the reason, exit 1 (before: PromptTooLong ended the run, exit 3); and a fix the search found
    is kept, its root cause written from the traces, when the explanation's prompt does not fit (before:
    the fix was lost with the run)."""
    repo = make_repo("wrong_index")
    with running_server(n_ctx=256) as server:
        def fix(name, *args):
            out = tmp_path / f"{name}.json"
            proc = subprocess.run([*CLI, str(repo), "--base-url", server.base_url, "--sandbox", "docker", *args,
                                   "--json", str(out), "--run-dir", str(tmp_path / "runs")],
                                  capture_output=True, text=True, timeout=600)
            return proc, json.loads(out.read_text()) if out.exists() else None

        proc, refined = fix("refine", "--strategies", "refine", "--rounds", "3", "--samples", "2")
        assert proc.returncode == 1, proc.stderr
        assert [[c["status"] for c in r["candidates"]] for r in refined["rounds"]] == [["prompt_too_long"]]
        assert refined["stop_reason"].startswith("the prompt does not fit the model's context")
        proc, found = fix("mutate", "--strategies", "mutate,refine")
        assert proc.returncode == 0, proc.stderr
        assert found["status"] == "fixed" and found["source"] == "mutate"
        assert "the explanation's prompt does not fit the model's context" in found["root_cause"]
