"""The embedded default path: what `fix` starts with no --base-url (`open_model`: llama.cpp's server
on loopback, the model from `repair-agent models`), here with SmolLM2-135M, not a scripted server.

Its server answers `n` (repair_agent.llm.llama_server), so the samples of a prompt are one request;
its access log counts them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import pytest
from model_server import MODEL, requires_llama_cpp, smollm_gguf  # noqa: F401  (fixture)

from repair_agent.config import Settings
from repair_agent.llm.client import Sampling
from repair_agent.llm.factory import open_model

pytestmark = [pytest.mark.model, requires_llama_cpp]
ASK = [{"role": "user", "content": "Write a Python function that returns the sum of two numbers."}]


def test_embedded_server_gets_one_request_for_all_samples(smollm_gguf, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the server's log goes here
    heard: list[str] = []
    with open_model(Settings(model=MODEL), log=heard.append) as model:
        assert model.base_url.startswith("http://127.0.0.1:") and model.name == MODEL
        gen = model.generate(ASK, Sampling(n=3, temperature=1.0, top_p=0.95, max_tokens=24, seed=3))
        fim = model.complete("def add(a, b):\n", Sampling(n=4, temperature=0.8, max_tokens=12, seed=3, stop=["\n"]),
                             logprobs=True)  # as the search's infill asks
        assert model.batch_n is True  # the server answered n: no fallback to a request per sample
        (log,) = tmp_path.glob("repair-agent-llama.cpp-*.log")
        posts = re.findall(r'"POST /v1/(chat/completions|completions) HTTP/1\.1" (\d+)', log.read_text(errors="replace"))
    assert heard == [f"serving {smollm_gguf.name} with llama.cpp on loopback"]
    assert len(gen.completions) == 3 and all(c["text"].strip() for c in gen.completions)
    assert gen.requests == 1 and ("chat/completions", "200") in posts
    assert len({c["text"] for c in gen.completions}) > 1  # each with its own seed, else all alike
    assert gen.completion_tokens >= 3 and gen.prompt_tokens > 0
    assert len(fim.completions) == 4 and fim.requests == 1
    # completions: the logprobs probe (refused: the server keeps no logits) and one request for 4 samples
    assert [p for p in posts if p[0] == "completions"] == [("completions", "500"), ("completions", "200")]


@pytest.mark.docker
@pytest.mark.slow
def test_fix_without_base_url_serves_the_model_itself(smollm_gguf, make_repo, tmp_path, docker_ready):  # noqa: F811
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "repair_agent", "fix", str(make_repo("wrong_index")),
                           "--model", MODEL, "--sandbox", "docker", "--strategies", "refine", "--rounds", "2",
                           "--samples", "2", "--json", str(out), "--run-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "REPAIR_AGENT_MAX_TOKENS": "96"})  # short answers: a weak model
    assert proc.returncode in (0, 1), proc.stderr
    assert f"serving {smollm_gguf.name} with llama.cpp on loopback" in proc.stderr
    result = json.loads(out.read_text())
    assert result["model"] == MODEL and result["tokens"]["completion"] > 0
    # round 0: one greedy answer; round 1 (when round 0 did not fix it): --samples answers
    assert [len(r["candidates"]) for r in result["rounds"]] in ([1], [1, 2])
    (run,) = (tmp_path / "runs").iterdir()
    proposals = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()
                 if '"event": "propose"' in line]
    assert [len(p["responses"]) for p in proposals] == [p["sampling"]["n"] for p in proposals]
